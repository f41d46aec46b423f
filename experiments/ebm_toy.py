"""Energy-based model (Du & Mordatch 2019) on 2-D toy data: the ring of 8 Gaussians and two moons.

    python -m experiments.ebm_toy --workdir runs/ebm_toy_ring8                          # 8 Gaussians
    python -m experiments.ebm_toy --workdir runs/ebm_toy_moons --config.problem=moons   # two moons

An MLP energy E(x) trained by contrastive divergence with Langevin negatives
from a replay buffer and the energy-magnitude regulariser
(`gm_jax.models.ebm.EBMExperiment`). Data:

* `ring8`: fresh draws of `gan_toy`'s ring (8 Gaussians of std `ring_std` on
  a circle of radius `ring_radius`, equal weights), drawn with its sampler;
* `moons`: two interleaving half circles (the usual "two moons": (cos t, sin t)
  and (1 - cos t, 0.5 - sin t), t ~ U(0, pi), centred by (-0.5, -0.25)) plus
  Gaussian noise of std `moons_noise` (`gm_jax.data.toy.two_moons`).

Both are drawn from `default_rng([seed, step])` per batch (resumable).
`Model.sample` runs `sample_steps` Langevin steps from uniform noise on the
box [-box, box]^2 (float32 [N, 2]).

Writes `results.json`:

* ring8: `modes_covered` (modes with at least `min_mode_samples` of the
  `num_eval_samples` samples within 3 std of them), `high_quality_fraction`
  (fraction of samples within 3 std of some mode), per-mode counts (the
  metric of `gan_toy`, so the numbers compare);
* moons: `within_3sigma_fraction` (samples within 3 `moons_noise` of the
  noiseless curves) and how the samples split between the two moons;
* both: `grid_test_log_likelihood_nats`, the test log-likelihood of
  `num_eval_samples` fresh data points under exp(-E) normalised numerically on
  a 256 x 256 grid over the box (a 2-D-only check of the density the energy
  defines; `Model.log_prob` is not available for an EBM), and the same for the
  true density where known (ring8);

and figures `energy.png` (data, the energy landscape E(x) and the normalised
density exp(-E)/Z on the grid, with samples on top), `chains.png` (Langevin
chains from noise at several step counts) and `losses.png` (CD loss and mean
energies of data and negatives against the step).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax.data import toy
from gm_jax.models import ebm

PROBLEMS = ("ring8", "moons")


def get_config() -> ml_collections.ConfigDict:
    """Default: ring of 8 Gaussians (radius 2, std 0.1), MLP energy 3 x 128, 60 SGLD steps of eps 0.005 per update,
    3,000 updates of batch 128; samples by 2,000 SGLD steps from uniform noise."""
    c = config_lib.base_config()
    c.problem = "ring8"  # ring8 | moons
    c.hidden = (128, 128, 128)
    c.step_size = 0.005  # Langevin eps
    c.noise_scale = 1.0  # 1 = exact SGLD
    c.langevin_steps = 60  # per training update, from the replay buffer
    c.sample_steps = 2000  # Model.sample, from uniform noise
    c.buffer_size = 10000
    c.reinit_prob = 0.05
    c.alpha = 0.1  # energy-magnitude regulariser
    c.learning_rate = 1e-3
    c.beta1 = 0.0
    c.beta2 = 0.999
    c.grad_clip = 0.0  # global-norm clip of the gradient (0 = off)
    c.num_steps = 3000
    c.batch_size = 128
    c.log_every = 50
    c.checkpoint_every = 1000
    c.box = 3.0  # data box [-box, box]^2: noise range and Langevin clip
    c.ring_radius = 2.0
    c.ring_std = 0.1
    c.num_modes = 8
    c.moons_noise = 0.05
    c.num_eval_samples = 2500
    c.min_mode_samples = 20
    c.eval_batch_size = 2500
    return c


class Experiment(ebm.EBMExperiment):
    name = "ebm_toy"
    data_shape = (2,)

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.problem not in PROBLEMS:
            raise ValueError(f"config.problem={config.problem!r}; valid choices: {list(PROBLEMS)}")
        if config.box <= 0 or config.ring_std <= 0 or config.moons_noise <= 0:
            raise ValueError("config.box, ring_std and moons_noise must be positive")
        self.net = ebm.EnergyMLP(tuple(config.hidden))
        self.box = (-float(config.box), float(config.box))
        from experiments import gan_toy  # the ring sampler and its mode metrics live there

        self.ring = gan_toy.Experiment(config_lib.apply_overrides(gan_toy.get_config(), {
            "ring_radius": float(config.ring_radius), "ring_std": float(config.ring_std),
            "num_modes": int(config.num_modes), "min_mode_samples": int(config.min_mode_samples),
            "seed": int(config.seed)}, "gan_toy"))

    # -- data ---------------------------------------------------------------------------------
    def draw_data(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.config.problem == "ring8":
            return self.ring.draw_data(rng, n)
        return toy.two_moons(rng, n, self.config.moons_noise)

    def train_batches(self, start_step: int = 0):
        step = start_step
        while True:
            yield {"x": self.draw_data(np.random.default_rng([self.config.seed, step]), self.config.batch_size)}
            step += 1

    def positive(self, batch: dict) -> jax.Array:
        return jnp.asarray(batch["x"], jnp.float32)

    def check_data(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != 2 or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{self.name} expects float points [N, 2], got {x.dtype} {x.shape}")
        return jnp.asarray(x, jnp.float32)

    # -- evaluation -----------------------------------------------------------------------------
    def grid(self, n: int = 256):
        """Cell centres float32 [n*n, 2] of an n x n grid over the box, and the cell area."""
        lo, hi = self.box
        h = (hi - lo) / n
        g = lo + h * (np.arange(n) + 0.5)
        xx, yy = np.meshgrid(g, g)
        return np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32), h * h

    def grid_log_density(self, params, n: int = 256) -> tuple[np.ndarray, float]:
        """log exp(-E)/Z on the grid (Z by the midpoint rule over the box): float [n*n] and log Z."""
        pts, area = self.grid(n)
        e = np.asarray(jax.jit(self.energy)(params, pts), np.float64)
        log_z = float(np.log(area) + np.log(np.sum(np.exp(-(e - e.min())))) - e.min())
        return -e - log_z, log_z

    def grid_log_likelihood(self, params, x: np.ndarray, n: int = 256) -> float:
        """Mean log-likelihood (nats) of points x [N, 2] under the grid-normalised exp(-E) (nearest cell)."""
        lo, hi = self.box
        logp, _ = self.grid_log_density(params, n)
        ij = np.clip(((x - lo) / (hi - lo) * n).astype(int), 0, n - 1)
        return float(np.mean(logp[ij[:, 1] * n + ij[:, 0]]))

    def moons_metrics(self, x: np.ndarray) -> dict:
        upper, lower = toy.moon_curves()
        du = np.min(np.linalg.norm(x[:, None] - upper[None], axis=-1), 1)
        dl = np.min(np.linalg.norm(x[:, None] - lower[None], axis=-1), 1)
        near = np.minimum(du, dl) <= 3 * self.config.moons_noise
        return {"within_3sigma_fraction": float(near.mean()),
                "upper_moon_fraction": float(np.mean(near & (du < dl))),
                "lower_moon_fraction": float(np.mean(near & (dl <= du)))}

    def evaluate(self, params, key: jax.Array) -> dict:
        c = self.config
        x = np.asarray(jax.jit(self.sample, static_argnums=2)(params, key, c.num_eval_samples))
        test = self.draw_data(np.random.default_rng([c.seed, 10**9]), c.num_eval_samples)
        out = self.ring.ring_metrics(x) if c.problem == "ring8" else self.moons_metrics(x)
        out["grid_test_log_likelihood_nats"] = self.grid_log_likelihood(params, test)
        if c.problem == "ring8":
            from gm_jax.models import gmm

            k = c.num_modes
            covs = np.tile(np.eye(2) * c.ring_std**2, (k, 1, 1))
            true = gmm.make_params(np.full(k, 1 / k), self.ring.centers(), covs)
            out["true_test_log_likelihood_nats"] = float(np.mean(np.asarray(gmm.log_prob(true, test))))
        e_data = np.asarray(jax.jit(self.energy)(params, test))
        e_samp = np.asarray(jax.jit(self.energy)(params, x))
        return {**out, "mean_energy_data": float(e_data.mean()), "mean_energy_samples": float(e_samp.mean()),
                "problem": c.problem, "num_eval_samples": int(c.num_eval_samples),
                "sample_steps": int(c.sample_steps), "step_size": float(c.step_size),
                "noise_scale": float(c.noise_scale), "figures": ["energy.png", "chains.png", "losses.png"]}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        workdir = Path(workdir)
        c = self.config
        n = 256
        lo, hi = self.box
        pts, _ = self.grid(n)
        e = np.asarray(jax.jit(self.energy)(params, pts)).reshape(n, n)
        logp, _ = self.grid_log_density(params, n)
        x = np.asarray(jax.jit(self.sample, static_argnums=2)(params, key, c.num_eval_samples))
        data = self.draw_data(np.random.default_rng([c.seed, 10**9]), c.num_eval_samples)
        fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
        ext = (lo, hi, lo, hi)
        axes[0].scatter(data[:, 0], data[:, 1], s=1, alpha=0.4)
        axes[0].set_title(f"data ({c.problem})", fontsize=9)
        im = axes[1].imshow(e, origin="lower", extent=ext, cmap="viridis")
        fig.colorbar(im, ax=axes[1], fraction=0.046)
        axes[1].set_title("energy E(x)", fontsize=9)
        axes[2].imshow(np.exp(logp).reshape(n, n), origin="lower", extent=ext, cmap="magma")
        axes[2].scatter(x[:, 0], x[:, 1], s=1, c="c", alpha=0.5)
        axes[2].set_title(f"exp(-E)/Z on the grid + {c.num_eval_samples} Langevin samples "
                          f"({c.sample_steps} steps)", fontsize=9)
        for ax in axes:
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
        fig.tight_layout()
        fig.savefig(workdir / "energy.png", dpi=90)
        plt.close(fig)

        k0, k1 = jax.random.split(key)
        _, traj = jax.jit(lambda p, x0: self.chains(p, x0, k1, c.sample_steps, return_trajectory=True))(
            params, self.noise(k0, 1000))
        traj = np.asarray(traj)
        shown = [0, c.sample_steps // 20, c.sample_steps // 5, c.sample_steps // 2, c.sample_steps - 1]
        fig, axes = plt.subplots(1, len(shown), figsize=(3 * len(shown), 3))
        for ax, s in zip(axes, shown):
            ax.scatter(traj[s, :, 0], traj[s, :, 1], s=1)
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_aspect("equal")
            ax.set_title(f"Langevin step {s + 1}", fontsize=9)
        fig.tight_layout()
        fig.savefig(workdir / "chains.png", dpi=90)
        plt.close(fig)
        ebm.save_training_curves(workdir / "metrics.jsonl", workdir / "losses.png", title=f"ebm_toy ({c.problem})")


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ebm_toy")
