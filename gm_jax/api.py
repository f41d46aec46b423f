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
import json
import os
import pkgutil
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections

from gm_jax import config as config_lib
from gm_jax.experiment import Experiment
from gm_jax.training import checkpoint
from gm_jax.training.loop import CONFIG_FILE, run_keys


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

    def sample(self, key: jax.Array, num_samples: int, **conditioning) -> jax.Array:
        """Draw `num_samples` examples with the model's sampler (jitted).

        Args:
          key: a PRNG key (`jax.random.key(...)`, or a legacy uint32[2] key).
          num_samples: positive int.
          **conditioning: the experiment's conditioning inputs (e.g. `labels`);
            see `experiment.conditioning`.

        Returns:
          Examples in the data's own form: for images, NHWC uint8 in
          [0, data_max] (0/1 for binary data, 0-255 for 8-bit data).
          The same key gives identical samples.

        Raises:
          ValueError: a bad key, a non-positive `num_samples`, or conditioning
            the experiment does not take or finds out of range
            (`experiment.check_conditioning`).
        """
        key = _check_key(key)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        conditioning = self.experiment.check_conditioning(num_samples, **conditioning)
        return self._sample(self.params, key, num_samples, **conditioning)

    def log_prob(self, x, key: jax.Array | None = None) -> jax.Array:
        """Log-likelihood of each example, in nats (jitted).

        Exact where the model has a tractable density; for latent-variable models
        an importance-weighted estimate that needs `key` (see the experiment).
        Inputs larger than `config.eval_batch_size` are evaluated in batches of
        that size (batch i with `fold_in(key, i)`) to bound memory.

        Args:
          x: [N, *data_shape] examples in the data's own form (for images uint8
            or bool NHWC with values in [0, data_max]).
          key: PRNG key, required by estimators that sample.

        Returns:
          float32 [N], nats per example.

        Raises:
          ValueError: wrong shape, dtype or value range of `x`; missing or bad `key`.
          NotImplementedError: the model has no explicit density (e.g. a GAN).
        """
        x = self.experiment.check_data(x)
        if key is None:
            if self.experiment.log_prob_needs_key:
                raise ValueError(f"{self.experiment.name}.log_prob is a sampling estimate and needs a PRNG key")
            key = jax.random.key(0)
        key = _check_key(key)
        size = self.config.eval_batch_size  # bounds memory; batch i uses fold_in(key, i)
        return jnp.concatenate([self._log_prob(self.params, x[i:i + size], jax.random.fold_in(key, i // size))
                                for i in range(0, len(x), size)])


def _check_key(key) -> jax.Array:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if key.dtype == jnp.uint32 and key.shape == (2,):
        return jax.random.wrap_key_data(key)
    raise ValueError(
        f"expected a single PRNG key (jax.random.key(seed)), got an array of shape {key.shape} and dtype {key.dtype}"
    )


def create(name: str, seed: int = 0, paper: bool = False, **config_overrides) -> Model:
    """Build experiment `name` with freshly initialised parameters.

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
    experiment = build(name, paper=paper, seed=seed, **config_overrides)
    return Model(experiment, experiment.params_of(experiment.init_state(run_keys(seed)["init"])), step=0)


def load(workdir: str | os.PathLike, step: int | None = None) -> Model:
    """Restore a trained model from `workdir` (its latest checkpoint, or `step`).

    Raises:
      FileNotFoundError: `workdir` has no config.json or no checkpoint.
      ValueError: the config or checkpoint cannot be read (corrupt, or from an
        incompatible version of the experiment).
    """
    workdir = Path(workdir)
    config_path = workdir / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: {workdir} is not a gm_jax run directory")
    try:
        saved = json.loads(config_path.read_text())
        name, values = saved["experiment"], saved["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{config_path} is not a valid gm_jax run config: {e}") from e
    module = get_experiment_module(name)
    experiment = module.Experiment(config_lib.apply_overrides(module.get_config(), _flatten(values), name))
    target = jax.eval_shape(experiment.init_state, run_keys(experiment.config.seed)["init"])
    manager = checkpoint.checkpoint_manager(workdir, read_only=True)
    try:
        state = checkpoint.restore(manager, target, step)
    finally:
        manager.close()
    return Model(experiment, experiment.params_of(state), step=int(state.step))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out

