"""GANs on toy distributions (Goodfellow et al. 2014): a 1-D Gaussian and a 2-D ring of 8 Gaussians.

    python -m experiments.gan_toy --workdir runs/gan_toy                              # ring of 8 Gaussians
    python -m experiments.gan_toy --workdir runs/gan_toy_1d --config.problem=gauss1d  # N(4, 0.5^2)

Both use MLP players and the non-saturating generator loss (Algorithm 1 with
`k` discriminator updates per generator update). Problems:

* `ring8`: a mixture of 8 Gaussians with std `ring_std` on a circle of radius
  `ring_radius` (the 2-D benchmark of Metz et al. 2017). `results.json` has
  `modes_covered` (modes with at least `min_mode_samples` high-quality samples
  among `num_eval_samples`), `high_quality_fraction` (samples within 3 std of
  some mode) and the per-mode counts; `samples.png` is a scatter of G(z) over
  the modes and `training.png` the samples at several points of training.
* `gauss1d`: p_data = N(`gauss_mean`, `gauss_std`^2) learnt from uniform noise
  U(-1, 1) (the 1-D example of Goodfellow et al. 2014, Fig. 1). `results.json`
  has the mean and std of G(z); `training.png` shows p_data, the histogram of
  G(z) and D(x) at several points of training (the checkpoints kept in the
  workdir, plus step 0).

Both write `losses.png` (discriminator and generator losses against the step).
Samples are float32 [N, d] points (`Model.sample`).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax.data import toy
from gm_jax.models import gan
from gm_jax.training import checkpoint
from gm_jax.training.loop import run_keys

PROBLEMS = ("ring8", "gauss1d")
NOISES = ("auto", "normal", "uniform")


def get_config() -> ml_collections.ConfigDict:
    """Default: the ring of 8 Gaussians (radius 2, std 0.05), MLP players 3 x 128, batch 256, 4000 steps."""
    c = config_lib.base_config()
    c.problem = "ring8"  # ring8 | gauss1d
    c.noise = "auto"  # auto (normal for ring8, uniform for gauss1d) | normal | uniform
    c.z_dim = 2
    c.g_hidden = (128, 128, 128)
    c.d_hidden = (128, 128, 128)
    c.k = 1  # discriminator updates per generator update
    c.generator_loss = "non_saturating"  # non_saturating | saturating
    c.learning_rate = 1e-3  # both players (Adam)
    c.beta1 = 0.5
    c.num_steps = 4000
    c.batch_size = 256
    c.log_every = 100
    c.checkpoint_every = 1000  # the 1-D figure shows every kept checkpoint
    c.keep_checkpoints = 5
    c.ring_radius = 2.0
    c.ring_std = 0.05
    c.num_modes = 8
    c.gauss_mean = 4.0
    c.gauss_std = 0.5
    c.num_eval_samples = 2500
    c.min_mode_samples = 20  # a mode is covered with at least this many high-quality samples
    return c


class Experiment(gan.GANExperiment):
    name = "gan_toy"
    data_max = 1

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.problem not in PROBLEMS:
            raise ValueError(f"config.problem={config.problem!r}; valid choices: {list(PROBLEMS)}")
        if config.noise not in NOISES:
            raise ValueError(f"config.noise={config.noise!r}; valid choices: {list(NOISES)}")
        if config.z_dim < 1 or config.num_modes < 1 or config.ring_std <= 0 or config.gauss_std <= 0:
            raise ValueError("config.z_dim, num_modes, ring_std and gauss_std must be positive")
        self.dim = 2 if config.problem == "ring8" else 1
        self.data_shape = (self.dim,)
        noise = config.noise if config.noise != "auto" else ("normal" if config.problem == "ring8" else "uniform")
        z_dim = int(config.z_dim)
        if noise == "normal":
            def draw(k):
                return jax.random.normal(k, (z_dim,))
        else:
            def draw(k):
                return jax.random.uniform(k, (z_dim,), minval=-1.0, maxval=1.0)
        opt = gan.dcgan_optimizer(config.learning_rate, config.beta1)
        self.gan = gan.GAN(gan.MLPGenerator(tuple(config.g_hidden), self.dim), gan.MLPDiscriminator(tuple(config.d_hidden)),
                           opt, opt, draw, k=config.k, loss=config.generator_loss)

    # -- data -------------------------------------------------------------------------
    def centers(self) -> np.ndarray:
        """The ring's mode centres float [num_modes, 2]."""
        return toy.ring_centers(self.config.num_modes, self.config.ring_radius)

    def draw_data(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n points of p_data, float32 [n, d]."""
        c = self.config
        if c.problem == "gauss1d":
            return (c.gauss_mean + c.gauss_std * rng.standard_normal((n, 1))).astype(np.float32)
        return toy.ring_of_gaussians(rng, n, c.num_modes, c.ring_radius, c.ring_std)

    def train_batches(self, start_step: int = 0):
        """Fresh draws from p_data; batch s comes from `default_rng([seed, s])` (resumable)."""
        step = start_step
        while True:
            yield {"x": self.draw_data(np.random.default_rng([self.config.seed, step]), self.config.batch_size)}
            step += 1

    def real_inputs(self, batch):
        return jnp.asarray(batch["x"], jnp.float32), None

    def example_inputs(self):
        return jnp.zeros((1, self.dim), jnp.float32), None

    def check_data(self, x):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{self.name} ({self.config.problem}) expects float points [N, {self.dim}], "
                             f"got {x.dtype} {x.shape}")
        return jnp.asarray(x, jnp.float32)

    # -- sampling ---------------------------------------------------------------------
    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """x = G(z), z ~ p(z): float32 [num_samples, d] points."""
        return self.gan.generate(params["params"], params["batch_stats"], key, num_samples)

    # -- evaluation -------------------------------------------------------------------
    def ring_metrics(self, x: np.ndarray) -> dict:
        """Modes covered and the high-quality fraction (within 3 std of a mode) of points [N, 2]."""
        c = self.config
        d = np.linalg.norm(x[:, None, :] - self.centers()[None], axis=-1)
        nearest, dist = d.argmin(1), d.min(1)
        hq = dist <= 3 * c.ring_std
        counts = np.bincount(nearest[hq], minlength=c.num_modes)
        return {"modes_covered": int(np.sum(counts >= c.min_mode_samples)), "num_modes": int(c.num_modes),
                "high_quality_fraction": float(hq.mean()), "high_quality_per_mode": counts.tolist()}

    def evaluate(self, params, key: jax.Array) -> dict:
        x = np.asarray(jax.jit(self.sample, static_argnums=2)(params, key, self.config.num_eval_samples))
        if self.config.problem == "ring8":
            out = self.ring_metrics(x)
        else:
            out = {"sample_mean": float(x.mean()), "sample_std": float(x.std()),
                   "target_mean": float(self.config.gauss_mean), "target_std": float(self.config.gauss_std)}
        return {**out, "problem": self.config.problem, "num_eval_samples": int(self.config.num_eval_samples),
                "figures": ["samples.png", "training.png", "losses.png"]}

    def snapshots(self, workdir: Path) -> list[tuple[int, gan.GANState]]:
        """(step, state) at step 0 and every checkpoint kept in `workdir`."""
        init = self.init_state(run_keys(self.config.seed)["init"])
        out = [(0, init)]
        manager = checkpoint.checkpoint_manager(workdir, read_only=True)
        try:
            for step in sorted(manager.all_steps()):
                out.append((int(step), checkpoint.restore(manager, init, step)))
        finally:
            manager.close()
        return out

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        workdir = Path(workdir)
        c = self.config
        gan.save_loss_curves(workdir / "metrics.jsonl", workdir / "losses.png", title=f"gan_toy ({c.problem})")
        sample = jax.jit(self.sample, static_argnums=2)
        snaps = self.snapshots(workdir)
        fig, axes = plt.subplots(1, len(snaps), figsize=(3.2 * len(snaps), 3.2), squeeze=False)
        for ax, (step, state) in zip(axes[0], snaps):
            x = np.asarray(sample(self.params_of(state), key, c.num_eval_samples))
            if c.problem == "ring8":
                ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, label="G(z)")
                ax.scatter(*self.centers().T, marker="x", c="r", s=30, label="modes")
                lim = c.ring_radius * 1.6
                ax.set_xlim(-lim, lim)
                ax.set_ylim(-lim, lim)
                ax.set_aspect("equal")
            else:
                grid = np.linspace(c.gauss_mean - 5 * c.gauss_std - 2, c.gauss_mean + 5 * c.gauss_std + 2, 400)
                p = np.exp(-0.5 * ((grid - c.gauss_mean) / c.gauss_std) ** 2) / (c.gauss_std * np.sqrt(2 * np.pi))
                ax.plot(grid, p, "k--", label="p_data")
                ax.hist(x[:, 0], bins=60, range=(grid[0], grid[-1]), density=True, alpha=0.5, label="G(z)")
                d = jax.nn.sigmoid(self.gan.discriminate(state.d_params, state.d_batch_stats,
                                                         jnp.asarray(grid[:, None], jnp.float32)))
                ax.plot(grid, np.asarray(d), "b", label="D(x)")
                ax.set_ylim(0, max(1.05, p.max() * 1.1))
            ax.set_title(f"step {step}")
        axes[0][0].legend(loc="upper left", fontsize=7)
        fig.tight_layout()
        fig.savefig(workdir / "training.png", dpi=90)
        plt.close(fig)

        x = np.asarray(sample(params, key, c.num_eval_samples))
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        if c.problem == "ring8":
            ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, label="G(z)")
            ax.scatter(*self.centers().T, marker="x", c="r", s=40, label="modes")
            ax.set_aspect("equal")
        else:
            ax.hist(x[:, 0], bins=60, density=True, alpha=0.6, label="G(z)")
        ax.legend(fontsize=7)
        ax.set_title(f"gan_toy {c.problem}: {c.num_eval_samples} samples")
        fig.tight_layout()
        fig.savefig(workdir / "samples.png", dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("gan_toy")
