"""Conditional DCGAN on MNIST (Mirza & Osindero 2014, with the DCGAN players of Radford et al. 2016).

    python -m experiments.cgan_mnist --workdir runs/cgan_mnist

Both players see the digit label: the generator gets its one-hot code
concatenated to z, the discriminator as 10 constant input feature maps and
again beside its last features. Everything else is the DCGAN of
`experiments.dcgan_mnist` (`gm_jax.recipes.adversarial.DCGANExperiment`).

Sampling: `model.sample(key, n, labels=...)` with `labels` int [n] in 0..9
(default: 0, 1, ..., 9, 0, 1, ... cycling); uint8 [n, 28, 28, 1], 0..255.

`results.json` adds `label_accuracy`: the fraction of `num_eval_samples`
samples (labels cycling 0..9) that the project's MNIST classifier assigns to
the label they were generated for. `samples.png` is a 10x10 grid whose
column j holds samples generated for digit j.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.recipes.adversarial import DCGANExperiment


def get_config() -> ml_collections.ConfigDict:
    """The DCGAN config with G 64-32 / D 32-64 channels, constant Adam(2e-4, 0.5), batch 64,
    6,000 steps (6.4 epochs); labels condition both players."""
    c = config_lib.base_config()
    c.z_dim = 100
    c.g_channels = (64, 32)  # 7x7x64 -> 14x14x32 -> 28x28x1
    c.d_channels = (32, 64)  # 28x28x1 -> 14x14x32 -> 7x7x64
    c.k = 1  # discriminator updates per generator update
    c.pack = 1  # PacGAN packs are for the unconditional discriminator
    c.generator_loss = "non_saturating"  # non_saturating | saturating
    c.learning_rate = 2e-4  # both players
    c.beta1 = 0.5
    c.lr_decay = "none"  # none (DCGAN's constant rate) | linear (to 0 at num_steps)
    c.g_ema_decay = 0.0  # > 0: sample from a moving average of G (Yazici et al. 2019), an addition to the paper
    c.clusters = 0  # the digit labels condition the players, not k-means clusters
    c.num_steps = 6000
    c.batch_size = 64
    c.log_every = 100
    c.checkpoint_every = 2000
    c.keep_checkpoints = 5
    c.eval_batch_size = 500
    c.num_eval_samples = 10_000  # samples scored by MNIST-FID / MNIST-IS
    c.classifier_dir = ""  # "" = $GM_JAX_CLASSIFIER_DIR or <project>/runs/mnist_classifier
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Mirza & Osindero 2014 ("Conditional Generative Adversarial Nets", Sec. 4.1, MNIST): labels as one-hot
    inputs of both players, z of 100 dimensions, mini-batches of 100. Their players are MLPs trained by SGD
    with momentum and dropout, which are not reproduced: the players and the optimiser here are DCGAN's
    (Radford et al. 2016, Sec. 4: Adam 2e-4, beta1 0.5); the step count is the default's."""
    c = get_config()
    c.batch_size = 100
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny players, batch 8, 32 evaluation samples on synthetic digits (smoke-test classifier)."""
    c = get_config()
    c.data_dir = "synthetic"
    c.z_dim, c.g_channels, c.d_channels = 8, (8, 4), (4, 8)
    c.batch_size, c.eval_batch_size, c.num_eval_samples = 8, 16, 32
    return c


class Experiment(DCGANExperiment):
    name = "cgan_mnist"
    num_classes = 10
    conditioning = ("labels",)
    grid_samples, grid_cols, nn_samples, nn_pairs_per_row = 100, 10, 40, 5  # column j of samples.png: digit j


if __name__ == "__main__":
    from gm_jax.cli import main

    main("cgan_mnist")
