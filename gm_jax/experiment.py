"""The experiment interface every model serves, and shared input checks.

An experiment bundles a config with pure functions (DESIGN.md, "flow of data"):

    init_params(key) -> params
    loss_fn(params, batch, keys) -> (loss, metrics)       # nats per example
    sample(params, key, num_samples, **conditioning) -> x # jittable, explicit key
    log_prob(params, x, key) -> [N] nats                  # jittable

plus the data it trains on (`train_batches`), its optimizer, a final
`evaluate` and `write_artifacts`. One training loop (`gm_jax.training.loop`)
and one notebook handle (`gm_jax.Model`) serve every experiment.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training.train_state import TrainState

from gm_jax import config as config_lib
from gm_jax.training.steps import loss_update


class Experiment:
    """Base class. Subclasses set `name`, `data_shape`, `data_max` and implement the pure functions."""

    name: str = "experiment"
    data_shape: tuple[int, ...] = ()  # shape of one example, e.g. (28, 28, 1)
    data_max: int = 255  # 1 for binary data, 255 for 8-bit data (uint8 either way)
    conditioning: tuple[str, ...] = ()  # keyword arguments `sample` accepts
    log_prob_needs_key: bool = False  # True for sampling estimates (IWAE)

    def __init__(self, config: ml_collections.ConfigDict):
        config_lib.validate(config, self.name)
        self.config = config

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

    def log_prob(self, params, x: jax.Array, key: jax.Array) -> jax.Array:
        raise NotImplementedError(f"{self.name} has no explicit density, so log_prob is not available")

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
        """Check a batch of examples in the data's own form and return it as a jax array.

        Args:
          x: integer or bool array [N, *data_shape] with values in [0, data_max].

        Raises:
          ValueError: wrong shape, a non-integer dtype, or values out of range.
        """
        x_np = np.asarray(x)
        what = f"{self.name} expects an array of shape [N, {', '.join(map(str, self.data_shape))}]"
        kind = "{0, 1}" if self.data_max == 1 else f"0..{self.data_max}"
        if x_np.ndim != len(self.data_shape) + 1 or x_np.shape[1:] != tuple(self.data_shape):
            raise ValueError(f"{what}; got shape {x_np.shape}")
        if not (np.issubdtype(x_np.dtype, np.integer) or x_np.dtype == bool):
            raise ValueError(f"{what} with an integer (uint8) or bool dtype and values in {kind}; got dtype {x_np.dtype}")
        if x_np.size and (x_np.min() < 0 or x_np.max() > self.data_max):
            raise ValueError(f"{what} with values in {kind}; got values in [{x_np.min()}, {x_np.max()}]")
        return jnp.asarray(x_np, jnp.uint8)
