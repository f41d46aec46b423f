"""The experiment interface every model serves, and shared input checks.

An experiment bundles a config with pure functions (DESIGN.md, "flow of data"):

    init_params(key) -> params
    loss_fn(params, batch, keys) -> (loss, metrics)       # nats per example
    sample(params, key, num_samples, **conditioning) -> x # jittable, explicit key
    log_prob(params, x, key) -> [N] nats                  # jittable

plus the data it trains on (`train_batches`), its optimizer, a final
`evaluate` and `write_artifacts`. One training loop (`gm_jax.training.loop`)
and one notebook handle (`gm_jax.Model`) serve every experiment.

Two declarations replace hand-written checks:

* `data_kind` (one of `DATA_KINDS`) with `data_shape` (one example; `None`
  for a free length) and `num_values` (the vocabulary of `tokens`): the
  handle's input check `check_data` follows from them;
* `schema`: the experiment's config fields with their `Choice`s and `Range`s
  (`gm_jax.config`), checked with the shared fields when it is built.

The experiment families (likelihood models on images, sequences, adversarial,
energy-based, EM/classical) are subclasses in `gm_jax.recipes`; an experiment
module is `get_config()`, `get_paper_config()`, `get_test_config()` and a small
`Experiment` built on one of them.
"""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training.train_state import TrainState

from gm_jax import cache
from gm_jax import config as config_lib
from gm_jax import xla_cpu
from gm_jax.sampling import static_value
from gm_jax.training.steps import loss_update

# data kind -> (what one example holds, the dtype `check_data` returns)
DATA_KINDS = {
    "binary": ("integer or bool values in {0, 1}", jnp.uint8),
    "uint8": ("integer values in 0..255", jnp.uint8),
    "tokens": ("integer ids in [0, num_values)", jnp.int32),
    "float_points": ("finite floats", jnp.float32),
    "audio": ("finite float amplitudes in [-1, 1]", jnp.float32),
}


class Experiment:
    """Base class. Subclasses set `name`, `data_kind`, `data_shape` (and `num_values`, `schema`)
    and implement the pure functions."""

    name: str = "experiment"
    data_kind: str = "uint8"  # one of DATA_KINDS
    data_shape: tuple = ()  # shape of one example, e.g. (28, 28, 1); None = any length >= min_length
    num_values: int = 0  # tokens: the vocabulary size
    min_length: int = 1  # shortest free-length axis `check_data` accepts
    schema: dict = {}  # config key -> gm_jax.config.Choice | Range
    conditioning: tuple[str, ...] = ()  # keyword arguments `sample` accepts
    log_prob_needs_key: bool = False  # True for sampling estimates (IWAE)
    # Autoregressive samplers `Model.sample(method=...)` chooses between (same draws for the same key);
    # the default is `config.sampler` where the config has one, else the first.
    sample_methods: tuple[str, ...] = ()
    # Config keys that only shape evaluation, sampling and figures: a resumed run may change them
    # (with `gm_jax.training.rundir.RESUMABLE_KEYS`); every other key is part of the run's identity.
    resumable_keys: tuple[str, ...] = (
        "num_eval_samples", "num_eval_points", "eval_window", "eval_stride", "sample_length", "sample_temperature",
        "sample_prompt", "sample_seconds", "grid_size", "grid_samples", "grid_limit", "min_mode_samples",
        "classifier_dir", "top_words")

    # Data-dependent setup (a vocabulary, k-means clusters, a PCA basis, an initialisation batch): small
    # arrays computed from the training data by `compute_data_setup`, once per machine and values of the
    # config fields in `setup_fields` (the user cache, `gm_jax.cache`), and stored with every run
    # (`rundir.SETUP_FILE`), so that constructing or loading a model never reads the data.
    setup_fields: tuple[str, ...] = ()  # config keys the setup depends on (besides the data itself)
    setup_arrays: tuple[str, ...] = ()  # the names of its arrays; () = the experiment has no data setup
    # False where the initialisation is itself a fit to the data in NumPy (n-gram counts, LDA's corpus
    # statistics): `jit_init_state` is then `init_state` itself.
    jit_init: bool = True

    _data_setup: dict | None = None  # see `data_setup`
    _given_setup: dict | None = None  # set before `__init__` by `with_data_setup`, checked on first use

    # `config.compute_dtype` values the experiment implements (mixed precision: "bfloat16" where its model
    # takes a compute dtype, see `gm_jax.models.vae.VAE.dtype`, `gm_jax.models.transformer.GPT.dtype`).
    compute_dtypes: tuple[str, ...] = ("float32",)

    # XLA:CPU kernels for the train step's convolutions (`gm_jax.xla_cpu`): "xla" (the process default
    # `import gm_jax` sets) or "ynnpack" (YNNPACK's, for the steps measured faster with them).
    xla_cpu_convolutions: str = "xla"

    @property
    def compiler_options(self) -> dict:
        """XLA compiler options of the train step (`TrainStep(..., compiler_options=...)`), from
        `xla_cpu_convolutions`."""
        return xla_cpu.compiler_options(self.xla_cpu_convolutions)

    def __init__(self, config: ml_collections.ConfigDict):
        """Raises ValueError: a config value outside the schema, or a `compute_dtype` the experiment does not
        implement."""
        config_lib.validate(config, self.name, self.schema)
        dtype = config.get("compute_dtype", "float32")
        if dtype not in self.compute_dtypes:
            raise ValueError(f"config.compute_dtype={dtype!r}: {self.name} implements {list(self.compute_dtypes)} "
                             "(bfloat16 so far: vae_mnist, transformer_shakespeare)")
        self.config = config

    @property
    def compute_dtype(self):
        """`config.compute_dtype` as a jnp dtype (float32 where the config predates the field)."""
        return jnp.dtype(self.config.get("compute_dtype", "float32"))

    @classmethod
    def with_data_setup(cls, config: ml_collections.ConfigDict, data_setup: dict | None):
        """`cls(config)` using `data_setup` (a run's `data_setup.npz`; None: the user cache, else the data):
        the setup is in place before `__init__` runs, so a subclass's construction (a vocabulary's size)
        already uses it, and no subclass has to pass it along.

        Raises:
          ValueError: a `data_setup` without exactly `setup_arrays`; what `cls(config)` raises.
        """
        experiment = cls.__new__(cls)
        experiment._given_setup = None if data_setup is None else dict(data_setup)
        experiment.__init__(config)
        return experiment

    # -- data-dependent setup -----------------------------------------------------------
    def compute_data_setup(self) -> dict[str, np.ndarray]:
        """The data-dependent setup computed from the data: {name in `setup_arrays`: NumPy array}."""
        raise NotImplementedError(f"{type(self).__name__} declares setup_arrays but no compute_data_setup")

    def setup_key(self) -> dict:
        """What the setup depends on: the `setup_fields` values and the data location (TFDS_DATA_DIR)."""
        fields = {k: self.config[k] for k in self.setup_fields}
        return {**fields, "TFDS_DATA_DIR": os.environ.get("TFDS_DATA_DIR", "")}

    def _check_setup(self, setup: dict, what: str) -> dict[str, np.ndarray]:
        if sorted(setup) != sorted(self.setup_arrays):
            raise ValueError(f"{what} of {self.name} must hold the arrays {sorted(self.setup_arrays)}, "
                             f"got {sorted(setup)}")
        return {k: np.asarray(v) for k, v in setup.items()}

    def use_data_setup(self, setup: dict, source: str) -> None:
        """Use `setup` (a run's stored data setup, read from `source`) as this experiment's.

        Raises:
          ValueError: it lacks `setup_arrays`, or this experiment already holds a different setup (built
            from other data or by another version): the run cannot continue with this one.
        """
        setup = self._check_setup(dict(setup), source)
        if self._data_setup is None and self._given_setup is None:
            self._data_setup = setup
        elif not cache.setups_equal(self.data_setup, setup):
            raise ValueError(f"the data setup in {source} differs from the one {self.name} was built with "
                             f"(arrays {sorted(setup)}): the data or its preparation changed since the run began; "
                             "build the experiment with the run's setup (gm_jax.load) or start a new run")

    @property
    def data_setup(self) -> dict[str, np.ndarray]:
        """The data-dependent setup ({} when the experiment has none): given at construction
        (`with_data_setup`; checked here against `setup_arrays`, which an `__init__` may set), else read
        from the user cache (`gm_jax.cache.setup_cache_path`), else computed by `compute_data_setup` and
        written to the cache (an unreadable or stale cache entry is recomputed and replaced)."""
        if self._data_setup is None and self._given_setup is not None:
            self._data_setup = self._check_setup(self._given_setup, "the given data setup")
        if self._data_setup is None:
            if not self.setup_arrays:
                return {}
            path = cache.setup_cache_path(self.name, self.setup_key())
            setup = None
            with contextlib.suppress(ValueError):  # a corrupt cache entry is recomputed
                setup = cache.read_arrays(path)
            if setup is None or sorted(setup) != sorted(self.setup_arrays):
                setup = self.compute_data_setup()
                with contextlib.suppress(OSError):  # a read-only cache costs time, never the result
                    cache.write_arrays(path, setup)
            self._data_setup = self._check_setup(setup, "compute_data_setup()")
        return self._data_setup

    @property
    def data_max(self) -> int:
        """The largest value of one data entry: 1 (binary), 255 (uint8), num_values - 1 (tokens)."""
        return {"binary": 1, "uint8": 255, "tokens": self.num_values - 1}.get(self.data_kind, 1)

    # -- model ---------------------------------------------------------------
    def init_params(self, key: jax.Array):
        raise NotImplementedError(f"{type(self).__name__} must define init_params")

    def optimizer(self) -> optax.GradientTransformation:
        """Adam with the config's learning rate (override for other optimizers)."""
        return optax.adam(self.config.learning_rate)

    def init_state(self, key: jax.Array) -> TrainState:
        """A fresh TrainState (step 0) from `key`."""
        return TrainState.create(apply_fn=None, params=self.init_params(key), tx=self.optimizer())

    @functools.cached_property
    def jit_init_state(self):
        """`init_state` jitted (`jit_init`; else `init_state` itself): the step-0 state of training and of
        `gm_jax.create` alike, compiled once per configuration (and kept in the persistent compilation
        cache, `gm_jax.cache.enable_compilation_cache`)."""
        return jax.jit(self.init_state) if self.jit_init else self.init_state

    def abstract_state(self):
        """The step-0 state's structure, shapes and dtypes (`jax.ShapeDtypeStruct` leaves; nothing is
        computed): the restore target of a checkpoint. Default: `jax.eval_shape(init_state)`."""
        return jax.eval_shape(self.init_state, jax.random.key(0))  # shapes do not depend on the key

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        raise NotImplementedError(f"{type(self).__name__} must define loss_fn (or override update)")

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """One training update: `(state, batch, keys [B], axis_name) -> (state, metrics)`.

        Default: one optimizer step on `loss_fn` (`gm_jax.training.loss_update`).
        Override for other updates (a GAN's two-player step, batch statistics);
        under pmap and sharded `axis_name` is `"batch"` and the update must average over it
        (see `gm_jax.training.steps`). Metrics must include `"loss"`.
        """
        return loss_update(self.loss_fn)(state, batch, keys, axis_name)

    def update_stages(self) -> tuple[tuple[int, Callable], ...]:
        """The update of each training stage: ((first step, update function), ...), first steps increasing from 0.

        The training loop compiles one train step per stage and runs step s (0-based) with the stage that
        contains it, so a model trained in stages (the VQ-VAE, then its prior) runs each stage's own program:
        a `lax.cond` between stages inside one program runs 7-20x slower on XLA:CPU, which does not
        parallelise the computations nested in a conditional. Default: one stage, `update`.
        """
        return ((0, self.update),)

    def params_of(self, state):
        """The parameters a `Model` handle samples with, from a train state (default `state.params`)."""
        return state.params

    def sample(self, params, key: jax.Array, num_samples: int, **conditioning) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must define sample")

    def sample_method(self, method=None) -> str:
        """The sampler `method` names (a str, a `sampling.Static` or None: `config.sampler`, else the first
        of `sample_methods`).

        Raises:
          ValueError: the experiment has no choice of sampler, or `method` is not one of `sample_methods`.
        """
        method = static_value(method)
        if method is None:
            return self.config.get("sampler", None) or (self.sample_methods[0] if self.sample_methods else "")
        if not self.sample_methods:
            raise ValueError(f"{self.name} has a single sampler: method={method!r} applies only to "
                             "autoregressive models (sample_methods)")
        if method not in self.sample_methods:
            raise ValueError(f"method must be one of {list(self.sample_methods)} for {self.name}, got {method!r}")
        return method

    @functools.cached_property
    def jit_sample(self):
        """`sample` jitted once (`num_samples` static): the compiled sampler the handle and artifacts share."""
        return jax.jit(self.sample, static_argnums=2)

    @functools.cached_property
    def jit_log_prob(self):
        """`log_prob` jitted once."""
        return jax.jit(self.log_prob)

    def log_prob(self, params, x: jax.Array, key: jax.Array) -> jax.Array:
        raise NotImplementedError(f"{self.name} has no explicit density, so log_prob is not available")

    def log_prob_per_position(self, params, x: jax.Array, **conditioning) -> jax.Array:
        """log p(x_i | x_<i, c) of every position i of an autoregressive model, nats, float32 [N, ...]:
        summed over the positions it is the log-likelihood given the conditioning c (the chain rule).
        Default: not available (override in autoregressive experiments)."""
        raise NotImplementedError(f"{self.name} is not autoregressive: it has no per-position conditionals "
                                  "p(x_i | x_<i), so log_prob_per_position is not available")

    @functools.cached_property
    def jit_log_prob_per_position(self):
        """`log_prob_per_position` jitted once."""
        return jax.jit(self.log_prob_per_position)

    # The family of the per-position distributions `conditionals` returns (autoregressive models):
    # "bernoulli" ({"logits": [...]}: independent Bernoullis of the values 1), "categorical" ({"logits":
    # [..., V]}: unnormalised), "discretized_logistic_mixture" (the arguments of
    # `gm_jax.distributions.discretized_logistic_mixture_log_prob`); "" where there are none.
    conditionals_kind: str = ""

    def conditionals(self, params, x: jax.Array, **conditioning) -> dict[str, jax.Array]:
        """The distribution p(x_i | x_<i, c) of every position i of `log_prob_per_position` (the same
        positions), as the parameters of the `conditionals_kind` family: the log-probability of
        `conditionals_targets(x)` under them, by the formula of `gm_jax.distributions`, is
        `log_prob_per_position`. Default: not available (override in autoregressive experiments)."""
        raise NotImplementedError(f"{self.name} is not autoregressive: it has no per-position conditionals "
                                  "p(x_i | x_<i), so conditionals is not available")

    @functools.cached_property
    def jit_conditionals(self):
        """`conditionals` jitted once."""
        return jax.jit(self.conditionals)

    def conditionals_targets(self, x: jax.Array) -> jax.Array:
        """The values `conditionals` predicts, position for position, of examples x [N, ...] (checked by
        `check_data`). Default: x itself (images, piano rolls, melodies)."""
        return x

    def check_score_conditioning(self, num_examples: int, **conditioning) -> dict:
        """Check `log_prob_per_position`'s conditioning (concrete values, before jit); default: none taken.

        Raises:
          ValueError: a name the experiment does not take, or (overrides) a bad or missing value.
        """
        if conditioning:
            raise ValueError(f"{self.name}.log_prob_per_position (and .conditionals) takes no conditioning, got {sorted(conditioning)}")
        return {}

    # -- data and evaluation ----------------------------------------------------
    def global_batch_size(self) -> int:
        """Examples in each global training batch (`train_batches` with `rows=None`): `config.batch_size`;
        full-batch experiments (EM) override it with the training set's size."""
        return self.config.batch_size

    def train_batches(self, start_step: int = 0, rows: slice | None = None) -> Iterator[dict]:
        """Endless training batches from step `start_step` on, each a pure function of `(seed, step)`.

        Args:
          start_step: the index of the first batch (a resumed run starts where it stopped).
          rows: the rows of each global batch to read: this process's share in a multi-process run
            (`TrainStep.process_rows`); None: the whole batch. Only these rows are read (`gm_jax.data.pipeline`).

        Yields:
          dicts of arrays with a leading batch axis of `config.batch_size` (or the number of `rows`).
        """
        raise NotImplementedError(f"{type(self).__name__} must define train_batches")

    def evaluate(self, params, key: jax.Array) -> dict:
        """Final test metrics (names carry their units). Default: none."""
        return {}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        """Figures and files written at the end of training. Default: none."""

    # -- evaluation during training (config.eval_every; gm_jax.training.loop) --------------
    num_progress_samples: int = 16  # samples drawn at each evaluation during training

    def validate(self, params, key: jax.Array) -> dict[str, float]:
        """Validation metrics cheap enough to compute every `config.eval_every` steps during training.

        A subset version of `evaluate`, with the same metric functions: at most
        `config.num_validation_examples` validation examples (the families say which), names
        carrying the units and starting with `val_` (e.g. `val_nll_nats`, `val_bits_per_dim`).
        It must not change the training: it draws only from `key`, never from the training data
        iterator. Default: none ({}); the run then writes only samples.

        Returns:
          {name: Python float (or int)}, the numbers of one metrics.jsonl record.
        """
        return {}

    def progress_samples(self, params, key: jax.Array) -> jax.Array:
        """The samples written at each evaluation during training: `num_progress_samples` of them with the
        sampler's default conditioning (`check_conditioning`), in the data's own form (what `sample` returns)."""
        n = self.num_progress_samples
        return self.jit_sample(params, key, n, **self.check_conditioning(n))

    # -- input checks shared by the handle ----------------------------------------
    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """Check `sample`'s conditioning keyword arguments on concrete values, before jit.

        The default accepts exactly the names in `self.conditioning` and passes
        them through; experiments with conditioning override this to check
        shapes and ranges (e.g. labels in 0-9 of length `num_samples`) and may
        fill in defaults.

        Returns:
          the conditioning to pass to `sample`.

        Raises:
          ValueError: an unknown name or a bad value.
        """
        unknown = sorted(set(conditioning) - set(self.conditioning))
        if unknown:
            raise ValueError(
                f"{self.name} takes no conditioning {unknown}; valid: {list(self.conditioning) or 'none'}"
            )
        return conditioning

    def check_data(self, x) -> jax.Array:
        """Check a batch of examples in the data's own form (from `data_kind`, `data_shape`) and return it.

        Args:
          x: array [N, *data_shape], N >= 1: integer/bool for `binary`, `uint8`,
            `tokens`; float for `float_points`, `audio` (see `DATA_KINDS`).

        Returns:
          a jax array of the kind's dtype (uint8, int32 or float32).

        Raises:
          ValueError: wrong shape, no example (N = 0), wrong dtype or values (the
            message names what was expected).
        """
        if self.data_kind not in DATA_KINDS:
            raise ValueError(f"{self.name}: unknown data_kind {self.data_kind!r}; valid: {list(DATA_KINDS)}")
        values, dtype = DATA_KINDS[self.data_kind]
        if self.data_kind == "tokens":
            values = f"integer ids in [0, {self.num_values})"
        x_np = np.asarray(x)
        dims = ", ".join("T" if d is None else str(d) for d in self.data_shape)
        what = f"x: {self.name} expects an array of shape [N, {dims}] holding {values}"
        shape_ok = x_np.ndim == len(self.data_shape) + 1 and all(
            (n >= self.min_length) if d is None else n == d for n, d in zip(x_np.shape[1:], self.data_shape))
        if not shape_ok:
            free = f" (T >= {self.min_length})" if None in self.data_shape else ""
            raise ValueError(f"{what}{free}; got shape {x_np.shape}")
        if x_np.shape[0] == 0:
            raise ValueError(f"x is empty (shape {x_np.shape}): expected at least one example for {self.name}")
        if dtype == jnp.float32:
            if not np.issubdtype(x_np.dtype, np.floating):
                raise ValueError(f"{what}; got dtype {x_np.dtype}")
            if not np.all(np.isfinite(x_np)):
                raise ValueError(f"{what}; got NaN or inf")
            if self.data_kind == "audio" and x_np.size and np.abs(x_np).max() > 1:
                raise ValueError(f"{what}; got values in [{x_np.min()}, {x_np.max()}]")
            return jnp.asarray(x_np, jnp.float32)
        if not (np.issubdtype(x_np.dtype, np.integer) or x_np.dtype == bool):
            raise ValueError(f"{what}; got dtype {x_np.dtype}")
        if x_np.size and (x_np.min() < 0 or x_np.max() > self.data_max):
            raise ValueError(f"{what}; got values in [{x_np.min()}, {x_np.max()}]")
        return jnp.asarray(x_np, dtype)
