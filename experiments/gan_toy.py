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

import jax
import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.models import gan
from gm_jax.recipes.adversarial import GANExperiment, ToyGANExperiment

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


def get_paper_config() -> ml_collections.ConfigDict:
    """The ring of 8 Gaussians of Metz et al. 2017 ("Unrolled generative adversarial networks", App. A, the
    2-D mixture of Gaussians; as we read it): std 0.02 on a circle of radius 2, G with 2 hidden layers of 128
    (ReLU), D with 1 hidden layer of 128, 256-d N(0, I) noise, Adam with beta1 0.5, batch 512. Their G learns
    at 1e-4 and D at 1e-3; one rate serves both players here, so 1e-4. Their D uses ReLU (ours LeakyReLU 0.2);
    the paper's unrolling steps are not implemented (k = 1 plain GAN, their baseline). The number of steps
    is not a table entry; the default's 4,000 is kept."""
    c = get_config()
    c.ring_std = 0.02
    c.z_dim = 256
    c.g_hidden = (128, 128)
    c.d_hidden = (128,)
    c.learning_rate = 1e-4
    c.batch_size = 512
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 8-unit players, batch 16, 64 evaluation samples."""
    c = get_config()
    c.data_dir = "synthetic"  # the toy data are drawn, never read; kept for the contract
    c.g_hidden, c.d_hidden, c.batch_size, c.num_eval_samples, c.min_mode_samples = (8,), (8,), 16, 64, 2
    return c


class Experiment(ToyGANExperiment):
    name = "gan_toy"
    schema = {**GANExperiment.schema, "problem": Choice("ring8", "gauss1d"),
              "noise": Choice("auto", "normal", "uniform"), "z_dim": Range(1, integer=True),
              "num_modes": Range(1, integer=True), "ring_std": Range(0.0, lo_open=True),
              "gauss_std": Range(0.0, lo_open=True), "g_hidden": Range(1, integer=True, each=True),
              "d_hidden": Range(1, integer=True, each=True), "ring_radius": Range(0.0), "gauss_mean": Range(),
              "num_eval_samples": Range(1, integer=True), "min_mode_samples": Range(1, integer=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        dim = 2 if config.problem == "ring8" else 1
        self.data_shape = (dim,)
        noise = config.noise if config.noise != "auto" else ("normal" if config.problem == "ring8" else "uniform")
        z_dim = int(config.z_dim)
        if noise == "normal":
            def draw(k):
                return jax.random.normal(k, (z_dim,))
        else:
            def draw(k):
                return jax.random.uniform(k, (z_dim,), minval=-1.0, maxval=1.0)
        opt = gan.dcgan_optimizer(config.learning_rate, config.beta1)
        self.gan = gan.GAN(gan.MLPGenerator(tuple(config.g_hidden), dim), gan.MLPDiscriminator(tuple(config.d_hidden)),
                           opt, opt, draw, k=config.k, loss=config.generator_loss)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("gan_toy")
