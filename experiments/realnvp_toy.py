"""RealNVP (Dinh et al. 2017) on 2-D toy densities: two moons, 8 Gaussians, checkerboard.

    python -m experiments.realnvp_toy --workdir runs/realnvp_toy_moons                                    # two moons
    python -m experiments.realnvp_toy --workdir runs/realnvp_toy_8g --config.problem=eight_gaussians
    python -m experiments.realnvp_toy --workdir runs/realnvp_toy_cb --config.problem=checkerboard

The flow (`gm_jax.models.flows.realnvp_2d`): `num_layers` affine couplings on
alternating coordinates with MLP conditioners (s = scale * tanh(.)), each followed
by an actnorm (data-dependent init), standard normal base; exact log-likelihood
training on fresh draws of the data each step. Problems (all inside [-3, 3]^2):

* `two_moons`: two interleaved half circles, Gaussian noise `noise` (centred, radius 1.5 scale);
* `eight_gaussians`: 8 Gaussians of std `mode_std` on a circle of radius 2;
* `checkerboard`: uniform on the 8 black squares of a 4 x 4 board on [-2, 2]^2.

At the end it writes to the workdir:

* `results.json`: `test_nll_nats` (mean -log p(x) over `num_eval_points` fresh data
  points, nats per point), `density_integral` = the midpoint-rule integral of the
  learned density p(x) over the grid [-grid_limit, grid_limit]^2 with `grid_size`^2
  cells (must be 1 within 2% when the grid covers the learned mass),
  `grid_limit`, `grid_size`;
* `density.png`: data histogram, learned density on the grid, and model samples;
* `samples.png`: model samples over the data.

Samples (`Model.sample(key, n, temperature=1.0)`) are float32 [n, 2] points;
`Model.log_prob(x)` takes float [N, 2] points and is exact (no key needed).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax import config as config_lib
from gm_jax.data import toy
from gm_jax.experiment import Experiment as BaseExperiment
from gm_jax.models import flows

PROBLEMS = ("two_moons", "eight_gaussians", "checkerboard")


def get_config() -> ml_collections.ConfigDict:
    """Default: two moons, 8 couplings with 2 x 128 MLPs, batch 256, 4000 steps (about 1-2 minutes on CPU)."""
    c = config_lib.base_config()
    c.problem = "two_moons"  # two_moons | eight_gaussians | checkerboard
    c.num_layers = 8  # coupling layers
    c.hidden = 128
    c.mlp_layers = 2
    c.num_steps = 4000
    c.batch_size = 256
    c.learning_rate = 1e-3
    c.warmup_steps = 100
    c.lr_final_fraction = 0.05
    c.log_every = 200
    c.checkpoint_every = 4000
    c.eval_batch_size = 10_000
    c.noise = 0.08  # two_moons
    c.mode_std = 0.15  # eight_gaussians
    c.grid_limit = 4.0  # density grid [-grid_limit, grid_limit]^2
    c.grid_size = 400
    c.num_eval_points = 10_000
    c.init_batch_size = 1000  # data points for the actnorm data-dependent init
    return c


def draw(problem: str, rng: np.random.Generator, n: int, noise: float = 0.08, mode_std: float = 0.15) -> np.ndarray:
    """n points of the toy density `problem` (`gm_jax.data.toy`), float32 [n, 2]."""
    if problem == "two_moons":
        return toy.two_moons(rng, n, noise, scale=1.5)
    if problem == "eight_gaussians":
        return toy.ring_of_gaussians(rng, n, 8, 2.0, mode_std)
    if problem == "checkerboard":
        return toy.checkerboard(rng, n)
    raise ValueError(f"problem={problem!r}; valid choices: {list(PROBLEMS)}")


class Experiment(BaseExperiment):
    name = "realnvp_toy"
    data_shape = (2,)
    data_max = 1
    conditioning = ("temperature",)

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.problem not in PROBLEMS:
            raise ValueError(f"config.problem={config.problem!r}; valid choices: {list(PROBLEMS)}")
        if config.num_layers < 1 or config.hidden < 1 or config.grid_size < 2 or config.grid_limit <= 0:
            raise ValueError("config.num_layers, hidden must be >= 1, grid_size >= 2, grid_limit > 0")
        self.flow = flows.realnvp_2d(config.num_layers, config.hidden, config.mlp_layers)

    def draw_data(self, rng: np.random.Generator, n: int) -> np.ndarray:
        c = self.config
        return draw(c.problem, rng, n, c.noise, c.mode_std)

    def train_batches(self, start_step: int = 0):
        """Fresh draws; batch s from `default_rng([seed, s])` (resumable)."""
        step = start_step
        while True:
            yield {"x": self.draw_data(np.random.default_rng([self.config.seed, step]), self.config.batch_size)}
            step += 1

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

    def check_data(self, x):
        """Float points [N, 2], all finite, as float32. ValueError otherwise."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != 2 or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{self.name} expects float points of shape [N, 2], got {x.dtype} {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{self.name} expects finite points; got NaN or inf")
        return jnp.asarray(x, jnp.float32)

    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """Accepts `temperature` (a finite float >= 0, default 1.0). ValueError otherwise."""
        conditioning = super().check_conditioning(num_samples, **conditioning)
        return {"temperature": flows.check_temperature(conditioning.get("temperature", 1.0))}

    def sample(self, params, key, num_samples: int, temperature=1.0):
        """x = f^-1(z), z ~ N(0, temperature^2 I): float32 [num_samples, 2]."""
        return flows.sample(self.flow, params, key, num_samples, 2, temperature)

    # -- evaluation -----------------------------------------------------------------
    def grid(self):
        """Cell centres float32 [grid_size^2, 2] of [-L, L]^2, the cell area, and the 1-D centres."""
        c = self.config
        edges = np.linspace(-c.grid_limit, c.grid_limit, c.grid_size + 1)
        centres = (edges[:-1] + edges[1:]) / 2
        xx, yy = np.meshgrid(centres, centres)
        return np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32), (edges[1] - edges[0]) ** 2, centres

    def density_on_grid(self, params) -> tuple[np.ndarray, float]:
        """p(x) on the grid [grid_size, grid_size] (rows = y) and its midpoint-rule integral."""
        pts, area, _ = self.grid()
        lp = jax.jit(self.log_prob)
        vals = np.concatenate([np.asarray(lp(params, jnp.asarray(pts[i:i + 20_000])))
                               for i in range(0, len(pts), 20_000)])
        p = np.exp(vals.astype(np.float64))
        return p.reshape(self.config.grid_size, self.config.grid_size), float(p.sum() * area)

    def evaluate(self, params, key):
        c = self.config
        test = self.draw_data(np.random.default_rng([c.seed, 10 ** 9 + 1]), c.num_eval_points)
        nll = -float(np.mean(np.asarray(jax.jit(self.log_prob)(params, jnp.asarray(test)), np.float64)))
        _, integral = self.density_on_grid(params)
        return {"test_nll_nats": nll, "density_integral": integral, "problem": c.problem,
                "grid_limit": float(c.grid_limit), "grid_size": int(c.grid_size),
                "num_eval_points": int(c.num_eval_points), "figures": ["density.png", "samples.png"]}

    def write_artifacts(self, params, key, workdir: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        c = self.config
        workdir = Path(workdir)
        data = self.draw_data(np.random.default_rng([c.seed, 10 ** 9 + 2]), 20_000)
        x = np.asarray(jax.jit(self.sample, static_argnums=2)(params, key, 20_000))
        density, integral = self.density_on_grid(params)
        lim = c.grid_limit
        ext = (-lim, lim, -lim, lim)
        fig, axes = plt.subplots(1, 3, figsize=(12, 4))
        axes[0].hist2d(data[:, 0], data[:, 1], bins=200, range=[[-lim, lim], [-lim, lim]], cmap="viridis")
        axes[0].set_title("data (histogram)")
        axes[1].imshow(density, origin="lower", extent=ext, cmap="viridis")
        axes[1].set_title(f"learned density (integral {integral:.4f})")
        axes[2].hist2d(x[:, 0], x[:, 1], bins=200, range=[[-lim, lim], [-lim, lim]], cmap="viridis")
        axes[2].set_title("model samples (histogram)")
        for ax in axes:
            ax.set_aspect("equal")
        fig.suptitle(f"realnvp_toy {c.problem}")
        fig.tight_layout()
        fig.savefig(workdir / "density.png", dpi=90)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(data[:2000, 0], data[:2000, 1], s=2, alpha=0.4, label="data")
        ax.scatter(x[:2000, 0], x[:2000, 1], s=2, alpha=0.4, label="samples")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.legend(fontsize=7, markerscale=4)
        ax.set_title(f"realnvp_toy {c.problem}: 2000 samples")
        fig.tight_layout()
        fig.savefig(workdir / "samples.png", dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("realnvp_toy")
