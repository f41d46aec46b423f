"""The notebook-facing API: `gm_jax.create`, `gm_jax.load` and the `Model` handle.

    model = gm_jax.create("vae_mnist", seed=0, latent_dim=32)   # fresh parameters
    model = gm_jax.load("runs/vae_mnist")                         # latest checkpoint
    x = model.sample(jax.random.key(1), 16)                        # uint8 [16, 28, 28, 1]
    ll = model.log_prob(x, key=jax.random.key(2))                  # float32 [16], nats

Experiments are the modules of the top-level `experiments` package that define
`get_config()` and `Experiment`.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm.auto import tqdm

from gm_jax import config as config_lib
from gm_jax import cache, memory, sampling
from gm_jax.experiment import Experiment
from gm_jax.training import checkpoint, rundir
from gm_jax.training.loop import run_keys


def experiment_names() -> list[str]:
    """Names of the available experiments (modules of `experiments` with `get_config` and `Experiment`)."""
    import experiments

    names = []
    for info in pkgutil.iter_modules(experiments.__path__):
        if not info.name.startswith("_"):
            names.append(info.name)
    return sorted(names)


def get_experiment_module(name: str):
    """The module `experiments.<name>`.

    Raises:
      ValueError: `name` is not an experiment; the message lists the valid names.
    """
    valid = experiment_names()
    if name not in valid:
        raise ValueError(f"unknown experiment {name!r}; valid choices: {', '.join(valid)}")
    return importlib.import_module(f"experiments.{name}")


def get_config(name: str, paper: bool = False) -> ml_collections.ConfigDict:
    """The default config of experiment `name`, or its paper's hyperparameters (`get_paper_config()`).

    Raises:
      ValueError: unknown experiment name.
    """
    module = get_experiment_module(name)
    return module.get_paper_config() if paper else module.get_config()


def build(name: str, config: ml_collections.ConfigDict | None = None, paper: bool = False,
          **overrides) -> Experiment:
    """The `Experiment` object of `name` with its default config (the paper's with `paper=True`,
    or `config`) and `overrides`.

    Raises:
      ValueError: unknown experiment name, config key or value (naming the valid ones).
    """
    module = get_experiment_module(name)
    config = config_lib.apply_overrides(config if config is not None else get_config(name, paper), overrides, name)
    return module.Experiment(config)


class Model:
    """A trained or freshly initialised model: config, parameters, jitted sampler and density.

    Attributes:
      experiment: the `Experiment` (its pure functions and config).
      config: the experiment config (`ml_collections.ConfigDict`).
      params: the parameter pytree.
      step: the training step the parameters come from (0 when fresh).
    """

    def __init__(self, experiment: Experiment, params, step: int = 0):
        self.experiment = experiment
        self.params = params
        self.step = int(step)
        self._sample = experiment.jit_sample
        self._log_prob = experiment.jit_log_prob

    @property
    def config(self) -> ml_collections.ConfigDict:
        return self.experiment.config

    def __repr__(self) -> str:
        n = sum(x.size for x in jax.tree_util.tree_leaves(self.params))
        return f"Model({self.experiment.name!r}, step={self.step}, params={n:,})"

    def sample(self, key: jax.Array, num_samples: int, method: str | None = None, **conditioning) -> jax.Array:
        """Draw `num_samples` examples with the model's sampler (jitted).

        Bounded requests: the output's size is estimated first (`jax.eval_shape`
        of one chunk, no computation), and a request whose output alone exceeds
        the free memory (`gm_jax.memory.available_bytes`: the device's where it
        reports it, e.g. a GPU, else the host's) is refused before anything is
        drawn. A request larger than `config.eval_batch_size` is drawn in chunks
        of that size (at most two compiled shapes: the chunk and the remainder),
        chunk i with the key `fold_in(key, i)` and its rows of the per-sample
        conditioning (`labels`, `prompt` ids, `digit`, ...). The chunks are
        gathered in a host (NumPy) buffer, returned as one jax array on the
        default device (on the CPU backend the buffer itself, not a copy; with
        an accelerator the host's free memory is checked too). A progress bar
        over the samples appears when a chunked request runs for more than 2 s
        (off with `config.progress_bar=False`). A request of at most
        `eval_batch_size` is one call with `key` itself, so it is not the first
        chunk of a larger request with the same key.

        Args:
          key: a PRNG key (`jax.random.key(...)`, or a legacy uint32[2] key).
          num_samples: positive int (Python or NumPy integer).
          method: the sampler of an autoregressive model, one of
            `experiment.sample_methods` (e.g. "cached" | "naive": the same samples
            for the same key; None: `config.sampler`, else the first).
          **conditioning: the experiment's conditioning inputs (e.g. `labels`,
            or `prompt` and `length` for autoregressive models: the limits of
            `length` are in the experiment's `check_conditioning`);
            see `experiment.conditioning`.

        Returns:
          A jax array [num_samples, ...] of examples in the data's own form:
          for images, NHWC uint8 in [0, data_max] (0/1 for binary data, 0-255
          for 8-bit data). The same key and `eval_batch_size` give identical samples.

        Raises:
          ValueError: a bad `key`; `num_samples` not a positive int; a `method`
            the experiment does not have; conditioning the experiment does not
            take or finds out of range
            (`experiment.check_conditioning`); an output larger than the free
            memory (the message gives the estimate, the memory available and
            how many samples would fit).
        """
        key = _check_key(key)
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        num_samples = int(num_samples)
        conditioning = self.experiment.check_conditioning(num_samples, **conditioning)
        if method is not None:  # a static argument: each method compiles its own sampler
            conditioning["method"] = sampling.Static(self.experiment.sample_method(method))
        size = int(self.config.eval_batch_size)
        bounds = [(a, min(a + size, num_samples)) for a in range(0, num_samples, size)]
        first = bounds[0][1]
        chunk = self._sample.eval_shape(self.params, key, first, **_rows(conditioning, num_samples, 0, first))
        shape = (num_samples, *chunk.shape[1:])
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * chunk.dtype.itemsize
        what = f"{self.experiment.name}.sample(num_samples={num_samples}) returns {chunk.dtype} {list(shape)}"
        device = next(iter(key.devices()))
        memory.check_fits(num_samples * row_bytes, what, device, row_bytes, "samples of this size")
        if len(bounds) == 1:
            return self._sample(self.params, key, num_samples, **conditioning)
        if device.platform != "cpu":  # the chunks are gathered in host memory first
            memory.check_fits(num_samples * row_bytes, what + " (gathered on the host)", item_bytes=row_bytes,
                              items="samples of this size", host=True)
        out = memory.host_buffer(shape, chunk.dtype)  # aligned: on the CPU backend device_put uses it in place
        with tqdm(total=num_samples, desc=f"{self.experiment.name} sample", unit="sample", delay=2,
                  disable=not self.config.progress_bar, dynamic_ncols=True) as bar:
            for i, (a, b) in enumerate(bounds):
                out[a:b] = np.asarray(self._sample(self.params, jax.random.fold_in(key, i), b - a,
                                                   **_rows(conditioning, num_samples, a, b)))
                bar.update(b - a)
        return jax.device_put(out)

    def log_prob(self, x, key: jax.Array | None = None) -> jax.Array:
        """Log-likelihood of each example, in nats (jitted).

        Exact where the model has a tractable density; for latent-variable models
        an importance-weighted estimate that needs `key` (see the experiment).
        Inputs larger than `config.eval_batch_size` are evaluated in batches of
        that size (batch i with `fold_in(key, i)`, at most two compiled shapes)
        to bound memory, with a progress bar over the examples when that takes
        more than 2 s (off with `config.progress_bar=False`).

        Args:
          x: [N, *data_shape] examples in the data's own form (for images uint8
            or bool NHWC with values in [0, data_max]), N >= 1.
          key: PRNG key, required by estimators that sample.

        Returns:
          float32 [N], nats per example.

        Raises:
          ValueError: an empty `x`, or wrong shape, dtype or value range of `x`
            (`experiment.check_data`); missing or bad `key`.
          NotImplementedError: the model has no explicit density (e.g. a GAN).
        """
        x = self.experiment.check_data(x)
        if key is None:
            if self.experiment.log_prob_needs_key:
                raise ValueError(f"{self.experiment.name}.log_prob is a sampling estimate and needs a PRNG key")
            key = jax.random.key(0)
        key = _check_key(key)
        return self._batched(  # batch i uses fold_in(key, i)
            "log_prob", lambda i, a, b: self._log_prob(self.params, x[a:b], jax.random.fold_in(key, i)), x.shape[0])

    def log_prob_per_position(self, x, **conditioning) -> jax.Array:
        """log p(x_i | x_<i, c) of every position of an autoregressive model, in nats (jitted): the
        surprise map of an image, a text or a waveform. Summed over the positions it is the
        log-likelihood given the conditioning (the chain rule); batched like `log_prob`.

        Args:
          x: [N, *data_shape] examples in the data's own form (as for `log_prob`).
          **conditioning: what the experiment's per-position terms are conditioned on
            (`experiment.check_score_conditioning`): `labels` for a class-conditional
            PixelCNN, `digit` and `speaker` for WaveNet (required there: the marginal
            over labels has no per-position terms).

        Returns:
          float32 nats, one value per predicted position: [N, 28, 28, 1] per sub-pixel
          (PixelCNN family), [N, 28, 28] per pixel (PixelCNN++, channels jointly),
          [N, T - 1] per token after the first (text), [N, T] per time step (JSB,
          audio).

        Raises:
          ValueError: bad `x` (`experiment.check_data`) or conditioning.
          NotImplementedError: the model is not autoregressive.
        """
        return self._per_position("log_prob_per_position", self.experiment.jit_log_prob_per_position, x,
                                  conditioning)

    def conditionals(self, x, **conditioning) -> dict[str, jax.Array]:
        """The distribution p(x_i | x_<i, c) of every position of an autoregressive model (jitted): the
        parameters of the family `experiment.conditionals_kind`, at the positions of
        `log_prob_per_position` (the log-probability of `experiment.conditionals_targets(x)` under them,
        by the formula of `gm_jax.distributions`, is `log_prob_per_position`); batched like `log_prob`.

        Args:
          x: [N, *data_shape] examples in the data's own form (as for `log_prob`).
          **conditioning: as for `log_prob_per_position` (`labels` for a class-conditional PixelCNN,
            `digit` and `speaker` for WaveNet, required there).

        Returns:
          {name: float32 array}, by `experiment.conditionals_kind`:
          "bernoulli": {"logits"} of the value 1, [N, 28, 28, 1] per sub-pixel (binary PixelCNN family),
            [N, T, 88] per time step and key (lstm_jsb: the keys independent given the past);
          "categorical": {"logits"} [..., V], unnormalised: [N, T - 1, V] for each token after the first
            (text; the n-gram's are log-probabilities), [N, T, C] per step (melody_jsb), [N, T, 256] mu-law
            classes per sample (WaveNet), [N, 28, 28, 1, V] per sub-pixel (a V-valued PixelCNN);
          "discretized_logistic_mixture" (PixelCNN++, K components): {"logit_weights" [N, 28, 28, K],
            "means", "log_scales" [N, 28, 28, C, K], and "coeffs" [N, 28, 28, 3, K] only when C = 3}, the
            arguments of `gm_jax.distributions.discretized_logistic_mixture_log_prob`.

        Raises:
          ValueError: bad `x` (`experiment.check_data`) or conditioning (`experiment.check_score_conditioning`).
          NotImplementedError: the model is not autoregressive.
        """
        return self._per_position("conditionals", self.experiment.jit_conditionals, x, conditioning)

    def _per_position(self, what: str, fn, x, conditioning: dict):
        """`fn(params, x, **conditioning)` after the input checks (`check_data`, `check_score_conditioning`),
        batched (`_batched`) with the per-example conditioning sliced alongside x."""
        x = self.experiment.check_data(x)
        conditioning = self.experiment.check_score_conditioning(x.shape[0], **conditioning)
        return self._batched(what, lambda i, a, b: fn(
            self.params, x[a:b], **{k: v[a:b] for k, v in conditioning.items()}), x.shape[0])

    def _batched(self, what: str, fn, n: int):
        """`fn(i, a, b)` on the batches [a, b) of `config.eval_batch_size` examples (batch i), concatenated
        (an array, or a dict of arrays concatenated key by key); one call when n fits one batch, a progress
        bar after 2 s otherwise."""
        size = int(self.config.eval_batch_size)  # bounds memory
        if n <= size:
            return fn(0, 0, n)
        parts = []
        with tqdm(total=n, desc=f"{self.experiment.name} {what}", unit="example", delay=2,
                  disable=not self.config.progress_bar, dynamic_ncols=True) as bar:
            for i, a in enumerate(range(0, n, size)):
                parts.append(jax.tree_util.tree_map(np.asarray, fn(i, a, min(a + size, n))))
                bar.update(min(a + size, n) - a)
        if isinstance(parts[0], dict):
            return {k: jnp.asarray(np.concatenate([p[k] for p in parts])) for k in parts[0]}
        return jnp.asarray(np.concatenate(parts))


def _rows(conditioning: dict, n: int, a: int, b: int) -> dict:
    """The conditioning of samples a..b-1 of n: values with a leading axis of n (labels, prompt ids [n, P],
    digits) sliced to [a:b]; scalars (temperature, ...) and `sampling.Static` values (length) unchanged."""
    if (a, b) == (0, n):
        return conditioning
    return {k: v if isinstance(v, sampling.Static) or np.ndim(v) == 0 or np.shape(v)[0] != n
            else (v if hasattr(v, "shape") else np.asarray(v))[a:b] for k, v in conditioning.items()}


def _check_key(key) -> jax.Array:
    """`key` as a typed PRNG key: a scalar key (`jax.random.key(seed)`) or a legacy uint32[2] key.

    Raises:
      ValueError: anything else (None, an int seed, a batch of keys, ...), naming `key`.
    """
    expected = "key must be a single PRNG key (jax.random.key(seed), or a legacy uint32[2] key)"
    if key is None:
        raise ValueError(f"{expected}, got None")
    if not isinstance(key, jax.Array):
        try:
            key = jnp.asarray(key)
        except (TypeError, ValueError):
            raise ValueError(f"{expected}, got {type(key).__name__} {key!r:.80}") from None
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    if key.shape == () and jnp.issubdtype(key.dtype, jnp.integer):
        raise ValueError(f"{expected}, got the integer {int(key)}: pass jax.random.key({int(key)})")
    raise ValueError(f"{expected}, got an array of shape {key.shape} and dtype {key.dtype}")


def create(name: str, seed: int = 0, paper: bool = False, **config_overrides) -> Model:
    """Build experiment `name` with freshly initialised parameters.

    Fast on a second call: the initialisation is jitted (`Experiment.jit_init_state`, the same
    function training starts from) and compiled once into the persistent compilation cache, and the
    experiment's data-dependent setup (vocabulary, k-means clusters, PCA, initialisation batch) is
    computed once into the user cache (`gm_jax.cache`). `benchmarks/create.py` times it.

    Args:
      name: an experiment name, e.g. `"vae_mnist"` (see `experiment_names()`).
      seed: the config seed; the parameters are those step 0 of training with
        this seed would start from.
      paper: start from the paper's hyperparameters (`get_paper_config()`)
        instead of the default config.
      **config_overrides: config fields to change, e.g. `latent_dim=32`.

    Raises:
      ValueError: unknown experiment or config key (the message lists the valid ones).
    """
    cache.enable_compilation_cache()
    experiment = build(name, paper=paper, seed=seed, **config_overrides)
    return Model(experiment, experiment.params_of(experiment.jit_init_state(run_keys(seed)["init"])), step=0)


def load(workdir: str | os.PathLike, step: int | None = None) -> Model:
    """Restore a trained model from `workdir`: its newest intact checkpoint, or exactly `step`.

    The experiment is rebuilt from the run's `config.json` and data setup (`data_setup.npz`, when it
    has one), so no data is read. Every checkpoint is verified against its SHA-256 manifest and against the
    shapes `config.json` implies (`gm_jax.training.checkpoint`); with
    `step=None`, a newest step that fails is skipped with a `CheckpointWarning`
    and the next older intact one is loaded.

    Raises:
      FileNotFoundError: `workdir` has no config.json or no checkpoint (at `step`).
      ValueError: config.json is unreadable or names an unknown experiment or
        key; `step` (or every step) is corrupt or does not match the config.
    """
    cache.enable_compilation_cache()
    workdir = Path(workdir)
    saved = rundir.read_run_config(workdir)
    if saved is None:
        raise FileNotFoundError(f"{workdir / rundir.CONFIG_FILE} not found: {workdir} is not a gm_jax run directory")
    name = saved["experiment"]
    module = get_experiment_module(name)
    experiment = module.Experiment.with_data_setup(
        config_lib.apply_overrides(module.get_config(), rundir.flatten_config(saved["config"]), name),
        cache.read_arrays(workdir / rundir.SETUP_FILE))  # None for a run of an experiment without one
    target = experiment.abstract_state()
    with checkpoint.Checkpointer(workdir, read_only=True) as ckpt:
        state = ckpt.restore(target, step)
    return Model(experiment, experiment.params_of(state), step=int(state.step))
