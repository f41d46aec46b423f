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

import functools
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training.train_state import TrainState

from gm_jax import config as config_lib
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

    def __init__(self, config: ml_collections.ConfigDict):
        config_lib.validate(config, self.name, self.schema)
        self.config = config

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

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        raise NotImplementedError(f"{type(self).__name__} must define loss_fn (or override update)")

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """One training update: `(state, batch, keys [B], axis_name) -> (state, metrics)`.

        Default: one optimizer step on `loss_fn` (`gm_jax.training.loss_update`).
        Override for other updates (a GAN's two-player step, batch statistics);
        under pmap `axis_name` is `"batch"` and the update must average over it
        (see `gm_jax.training.steps`). Metrics must include `"loss"`.
        """
        return loss_update(self.loss_fn)(state, batch, keys, axis_name)

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

    def check_score_conditioning(self, num_examples: int, **conditioning) -> dict:
        """Check `log_prob_per_position`'s conditioning (concrete values, before jit); default: none taken.

        Raises:
          ValueError: a name the experiment does not take, or (overrides) a bad or missing value.
        """
        if conditioning:
            raise ValueError(f"{self.name}.log_prob_per_position takes no conditioning, got {sorted(conditioning)}")
        return {}

    # -- data and evaluation ----------------------------------------------------
    def train_batches(self, start_step: int = 0) -> Iterator[dict]:
        raise NotImplementedError(f"{type(self).__name__} must define train_batches")

    def evaluate(self, params, key: jax.Array) -> dict:
        """Final test metrics (names carry their units). Default: none."""
        return {}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        """Figures and files written at the end of training. Default: none."""

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
