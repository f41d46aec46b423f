"""Adversarial autoencoder on dynamically binarized MNIST (Makhzani et al. 2016), 2-D codes by default.

    python -m experiments.aae_mnist --workdir runs/aae_mnist [--config.prior=mixture] [--paper]
    python -m experiments.aae_mnist --workdir runs/aae_labels --config.prior=mixture_labels
    python -m experiments.aae_mnist --workdir runs/aae_gauss --config.posterior=gaussian

An autoencoder (deterministic MLP encoder, Bernoulli MLP decoder) whose codes z = E(x) are pushed
towards a prior p(z) by a discriminator on codes (`gm_jax.models.aae`). Each step: the reconstruction
phase (encoder + decoder on -log p(x | E(x))), then the regularisation phase (the discriminator tells
z ~ p(z) from E(x), then the encoder is updated to fool it, with the GAN losses of `gm_jax.models.gan`).

`--config.posterior`: `deterministic` (z = E(x), the default) or `gaussian` (q(z | x) = N(mu(x), sigma^2(x)),
sampled by the reparameterization in all three phases: Sec. 2 of the paper, second choice of q).

`--config.prior`: `gaussian` (N(0, I), the default: compare with a VAE's codes, below), `mixture` (10
elongated Gaussians on a circle of radius `mixture_radius`, Fig. 2b of the paper) or `mixture_labels` (the
same mixture, but the discriminator also sees the digit as a one-hot input and its prior sample for an
image of digit d comes from component d: Sec. 2.3 / Fig. 3-4; `--config.labelled_fraction` leaves the other
images unlabelled, the paper's Fig. 4 uses 10,000 of 60,000). With `mixture_labels`, `model.sample(key,
n, labels=...)` draws digits 0..9 from their components.

At the end it writes to the workdir `results.json` (`gm_jax.recipes.autoencoders.AAEExperiment.evaluate`:
`mmd2_mean` +- `mmd2_std`, the unbiased MMD^2 between the test codes and prior samples,
`test_recon_nll_nats`, MNIST-FID / MNIST-IS of 10,000 samples with the project's classifier from
`config.classifier_dir`), `samples.png`, `latent.png` (test codes coloured by digit beside the prior),
`reconstructions.png` and `losses.png`. `log_prob` is not available (no tractable density).

The VAE baseline of the same statistic: train `experiments.vae_mnist` with `--config.latent_dim=2
--config.dataset=mnist`, encode the test set (binarized as here) to the means of q(z | x) and call
`gm_jax.evaluation.two_sample.mmd2_to_prior` with an N(0, I) sampler and the same batch settings.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.models import aae
from gm_jax.recipes.autoencoders import AAEExperiment, aae_config


def get_config() -> ml_collections.ConfigDict:
    """Default (2-core CPU, about 10 minutes with evaluation): 2-D codes, an N(0, I) prior, encoder and decoder
    with two hidden layers of 500 ReLU units (the width of vae_mnist's default, for the comparison), a
    500-500 discriminator, Adam(1e-3) for every phase with a cosine decay to 0 (`lr_schedule`), batch 100,
    12,000 steps (20 epochs of the 60,000 training images)."""
    c = aae_config(config_lib.base_config())
    c.num_steps = 12_000
    c.batch_size = 100
    c.log_every = 200
    c.checkpoint_every = 4000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Makhzani et al. 2016, "Adversarial Autoencoders", Appendix A (MNIST): encoder, decoder and discriminator
    with two hidden layers of 1000 ReLU units, a linear encoder output, minibatches of 100 (`aae.PAPER`); the
    2-D codes of their Fig. 2. Differences: Adam with a cosine decay in place of their SGD with
    momentum and its learning-rate schedules, the default's step count (20 epochs), a Bernoulli reconstruction cost on dynamically binarized
    pixels in place of their Euclidean cost, flax's default initialisation."""
    return config_lib.apply_overrides(get_config(), aae.PAPER, "aae_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny networks (width 8), batch 8, 32 evaluation samples, small MMD batches, synthetic digits."""
    return config_lib.apply_overrides(get_config(), {
        "data_dir": "synthetic", "hidden": (8,), "disc_hidden": (8,), "batch_size": 8, "eval_batch_size": 16,
        "num_eval_samples": 32, "mmd_batch_size": 16, "mmd_num_batches": 2}, "aae_mnist")


class Experiment(AAEExperiment):
    name = "aae_mnist"


if __name__ == "__main__":
    from gm_jax.cli import main

    main("aae_mnist")
