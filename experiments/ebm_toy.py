"""Energy-based model (Du & Mordatch 2019) on 2-D toy data: the ring of 8 Gaussians and two moons.

    python -m experiments.ebm_toy --workdir runs/ebm_toy_ring8                          # 8 Gaussians
    python -m experiments.ebm_toy --workdir runs/ebm_toy_moons --config.problem=moons   # two moons

An MLP energy E(x) trained by contrastive divergence with Langevin negatives
from a replay buffer and the energy-magnitude regulariser
(`gm_jax.recipes.energy.ToyEBMExperiment`). Data (`gm_jax.data.toy`):

* `ring8`: the ring of `gan_toy` (8 Gaussians of std `ring_std` on a circle
  of radius `ring_radius`, equal weights, `gm_jax.data.toy.ring_of_gaussians`);
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

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.recipes.energy import EBMExperiment, ToyEBMExperiment

def get_config() -> ml_collections.ConfigDict:
    """Default: ring of 8 Gaussians (radius 2, std 0.1), MLP energy 3 x 128, 60 SGLD steps of eps 0.005 per update,
    3,000 updates of batch 128; samples by 2,000 SGLD steps from uniform noise."""
    c = config_lib.base_config()
    c.problem = "ring8"  # ring8 | moons
    c.negatives = "replay"  # replay (Du & Mordatch) | short_run (Nijkamp et al. 2019: every chain from noise)
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


def get_paper_config() -> ml_collections.ConfigDict:
    """The default config. Du & Mordatch 2019 ("Implicit Generation and Generalization in Energy-Based
    Models") train on images only and fix no 2-D setting; the algorithm's settings that carry over are
    already the default's (Algorithm 1: a replay buffer with 5% restarts from uniform noise, Adam with
    beta1 = 0, Sec. 3.3-3.4 and App. A)."""
    return get_config()


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: an 8-unit energy, 2 Langevin steps per update, 5 for samples, batch 16, 64 evaluation samples."""
    c = get_config()
    c.data_dir = "synthetic"  # the toy data are drawn, never read; kept for the contract
    c.hidden, c.langevin_steps, c.sample_steps, c.buffer_size = (8, 8), 2, 5, 64
    c.batch_size, c.num_eval_samples, c.eval_batch_size, c.min_mode_samples = 16, 64, 64, 2
    return c


class Experiment(ToyEBMExperiment):
    name = "ebm_toy"
    schema = {**EBMExperiment.schema, "problem": Choice("ring8", "moons"), "box": Range(0.0, lo_open=True),
              "num_modes": Range(1, integer=True), "ring_radius": Range(0.0),
              "min_mode_samples": Range(1, integer=True),
              "ring_std": Range(0.0, lo_open=True), "moons_noise": Range(0.0, lo_open=True),
              "hidden": Range(1, integer=True, each=True)}


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ebm_toy")
