"""2-D (and 1-D) toy problems: fresh draws of a known density, and a normalising flow fitted to them.

* `ToyData`: a mixin for experiments whose data are float points drawn afresh every step
  (`data_kind = "float_points"`); the experiment defines `draw_data(rng, n)` from the
  samplers of `gm_jax.data.toy`, and batch s comes from `default_rng([seed, s])`.
* `ToyFlowExperiment`: exact maximum likelihood of a 2-D flow (`gm_jax.models.flows`) on such
  data; evaluation on a grid (`gm_jax.evaluation.toy`) and figures (`gm_jax.viz.toy`).
"""
from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import optax

from gm_jax.config import Range
from gm_jax.data import toy
from gm_jax.evaluation import toy as toy_eval
from gm_jax.experiment import Experiment
from gm_jax.models import flows
from gm_jax.viz import toy as toy_viz


class ToyData:
    """Mixin: float points [N, d] drawn afresh; subclasses define `draw_data(rng, n) -> float32 [n, d]`."""

    data_kind = "float_points"
    num_progress_samples = 500  # points of evaluation during training, drawn as a scatter plot

    def draw_data(self, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must define draw_data")

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        """Fresh draws from p_data; batch s comes from `default_rng([seed, s])` (resumable)."""
        return toy.fresh_batches(self.draw_data, self.config.seed, self.config.batch_size, start_step, rows)


class ToyFlowExperiment(ToyData, Experiment):
    """A 2-D flow `self.flow` (set by the subclass) trained by exact likelihood on fresh toy draws.

    Config fields used: `warmup_steps`, `lr_final_fraction` (Adam with warmup + cosine decay),
    `init_batch_size` (data points of the actnorm data-dependent init), `grid_limit`, `grid_size`
    (the density grid), `num_eval_points`.
    """

    data_shape = (2,)
    conditioning = ("temperature",)
    schema = {"warmup_steps": Range(0, integer=True), "lr_final_fraction": Range(0.0),
              "init_batch_size": Range(2, integer=True), "grid_limit": Range(0.0, lo_open=True),
              "grid_size": Range(2, integer=True), "num_eval_points": Range(1, integer=True)}
    flow = None

    def init_params(self, key):
        """Parameters with the actnorm data-dependent init on `init_batch_size` data points."""
        x = self.draw_data(np.random.default_rng([self.config.seed, 10 ** 9]), self.config.init_batch_size)
        return self.flow.init(key, jnp.asarray(x), method="forward_and_log_det")["params"]

    def optimizer(self):
        c = self.config
        warmup = max(1, min(c.warmup_steps, max(c.num_steps - 1, 1)))
        schedule = optax.warmup_cosine_decay_schedule(0.0, c.learning_rate, warmup, max(c.num_steps, warmup + 1),
                                                      c.learning_rate * c.lr_final_fraction)
        return optax.adam(schedule)

    def loss_fn(self, params, batch, keys):
        """-log p(x), nats per point."""
        return -flows.log_prob(self.flow, params, batch["x"]).mean(), {}

    def log_prob(self, params, x, key=None):
        """Exact log p(x), nats, float32 [N] for points x float32 [N, 2] (key unused)."""
        return flows.log_prob(self.flow, params, x)

    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """Accepts `temperature` (a finite float >= 0, default 1.0). ValueError otherwise."""
        conditioning = super().check_conditioning(num_samples, **conditioning)
        return {"temperature": flows.check_temperature(conditioning.get("temperature", 1.0))}

    def sample(self, params, key, num_samples: int, temperature=1.0):
        """x = f^-1(z), z ~ N(0, temperature^2 I): float32 [num_samples, 2]."""
        return flows.sample(self.flow, params, key, num_samples, 2, temperature)

    # -- evaluation -----------------------------------------------------------------
    def density_on_grid(self, params) -> tuple[np.ndarray, float]:
        """p(x) on the grid [grid_size, grid_size] (rows = y) and its midpoint-rule integral."""
        c = self.config
        pts, area, _ = toy_eval.grid(-c.grid_limit, c.grid_limit, c.grid_size)
        vals = np.concatenate([np.asarray(self.jit_log_prob(params, jnp.asarray(pts[i:i + 20_000])))
                               for i in range(0, len(pts), 20_000)])
        p = np.exp(vals.astype(np.float64))
        return p.reshape(c.grid_size, c.grid_size), toy_eval.density_integral(vals, area)

    def evaluate(self, params, key):
        c = self.config
        test = self.draw_data(np.random.default_rng([c.seed, 10 ** 9 + 1]), c.num_eval_points)
        nll = -float(np.mean(np.asarray(self.jit_log_prob(params, jnp.asarray(test)), np.float64)))
        _, integral = self.density_on_grid(params)
        return {"test_nll_nats": nll, "density_integral": integral, "problem": c.problem,
                "grid_limit": float(c.grid_limit), "grid_size": int(c.grid_size),
                "num_eval_points": int(c.num_eval_points), "figures": ["density.png", "samples.png"]}

    def validate(self, params, key) -> dict:
        """`val_nll_nats`: `evaluate`'s exact test NLL, nats per point, on `config.num_validation_examples` points
        drawn from `default_rng([seed, 10**9 + 1])`."""
        c = self.config
        x = self.draw_data(np.random.default_rng([c.seed, 10 ** 9 + 1]), c.num_validation_examples)
        return {"val_nll_nats": -float(np.mean(np.asarray(self.jit_log_prob(params, jnp.asarray(x)), np.float64)))}

    def write_artifacts(self, params, key, workdir: Path) -> None:
        c = self.config
        workdir = Path(workdir)
        data = self.draw_data(np.random.default_rng([c.seed, 10 ** 9 + 2]), 20_000)
        x = np.asarray(self.jit_sample(params, key, 20_000))
        density, integral = self.density_on_grid(params)
        toy_viz.save_density_comparison(workdir / "density.png", data, density, x, c.grid_limit, integral,
                                        f"{self.name} {c.problem}")
        toy_viz.save_samples_over_data(workdir / "samples.png", data, x, c.grid_limit,
                                       f"{self.name} {c.problem}: 2000 samples")

