"""Gaussian mixture model by EM on the 2-D ring of 8 Gaussians (the toy data of `gan_toy`).

    python -m experiments.gmm_toy --workdir runs/gmm_toy [--config.covariance_type=diag]

The data are `config.num_train` / `config.num_test` fixed draws of the ring of
`gan_toy` (8 isotropic Gaussians of std `ring_std` on a circle of radius
`ring_radius`, equal weights, `gm_jax.data.toy.ring_of_gaussians`) from
`default_rng([seed, 0])` (train) and `default_rng([seed, 1])` (test). One
training step is one full-batch EM iteration (`gm_jax.recipes.classical.RingGMMExperiment`);
`config.num_steps` is the number of EM iterations.

Writes `results.json`: `train_log_likelihood_nats` / `test_log_likelihood_nats`
(exact, nats per point), `true_test_log_likelihood_nats` (the generating
mixture's density on the same test points, the ceiling in expectation),
`mean_error_max` / `mean_error_mean` (Euclidean distance between fitted and
true means after matching components with the Hungarian algorithm,
`scipy.optimize.linear_sum_assignment`), `weights`; and figures
`ellipses.png` (data, fitted means and 1- and 2-sigma ellipses of each
component), `samples.png` (draws of the fitted generative process coloured by
component) and `log_likelihood.png` (training log-likelihood per EM iteration).
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Range
from gm_jax.recipes.classical import GMMExperiment, RingGMMExperiment

def get_config() -> ml_collections.ConfigDict:
    """Default: 8 full-covariance components, 50 EM iterations on 5,000 points of the ring (radius 2, std 0.1)."""
    c = config_lib.base_config()
    c.num_components = 8
    c.covariance_type = "full"  # full | diag
    c.reg_covar = 1e-6  # covariance floor added to the diagonal
    c.kmeans_iters = 10
    c.num_steps = 50  # EM iterations
    c.log_every = 1
    c.checkpoint_every = 50
    c.batch_size = 5000  # informational: every step uses the whole training set
    c.num_train = 5000
    c.num_test = 5000
    c.ring_radius = 2.0
    c.ring_std = 0.1
    c.num_modes = 8
    c.eval_batch_size = 5000
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """The default config. EM for Gaussian mixtures follows Bishop 2006 ("Pattern Recognition and Machine
    Learning", Sec. 9.2, Eq. 9.23-9.27) and k-means++ seeding Arthur & Vassilvitskii 2007; neither fixes a
    data set or sizes, and the ring of 8 Gaussians is the GAN literature's toy (Metz et al. 2017)."""
    return get_config()


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 200 train / 100 test points (batch size 200, informational)."""
    c = get_config()
    c.data_dir = "synthetic"  # the toy data are drawn, never read; kept for the contract
    c.num_train, c.num_test, c.batch_size, c.eval_batch_size = 200, 100, 200, 100
    return c


class Experiment(RingGMMExperiment):
    name = "gmm_toy"
    schema = {**GMMExperiment.schema, "num_train": Range(1, integer=True), "num_test": Range(1, integer=True),
              "ring_std": Range(0.0, lo_open=True), "num_modes": Range(1, integer=True), "ring_radius": Range(0.0)}


if __name__ == "__main__":
    from gm_jax.cli import main

    main("gmm_toy")
