"""VQ-VAE with a learned Gated PixelCNN prior (van den Oord et al. 2017) on binarized MNIST, both stages in one run.

    python -m experiments.vqvae_mnist --workdir runs/vqvae_mnist [--paper] [--config.conditional=True]

Steps 1 .. `vqvae_steps` train the VQ-VAE (a 7x7 grid of codes from K = 64
codes of dimension 16, the EMA codebook, beta = 0.25, dead codes restarted);
the remaining steps train the Gated PixelCNN prior over the 7x7 code grid on
the frozen encoder's codes (`gm_jax.recipes.latent`).

Data: the fixed binarization `binarized_mnist` (Larochelle & Murray 2011),
with a Bernoulli decoder, so that the bound is in nats per image on the same
test set as the library's VAE and Gated PixelCNN figures (8-bit MNIST with a
discretized decoder would give bits/dim comparable with nothing else here).
`--config.conditional=True` makes the prior class-conditional and trains on
dynamically binarized 8-bit `mnist`, which has labels.

Writes `results.json` (`test_nll_nats`: minus the bound log p(x | z_q(x)) +
log p(z_q(x)); `test_recon_nats`, `test_prior_nats`, `codebook_usage`,
`code_perplexity`, `test_pixel_error_rate`), `samples.png` (Bernoulli means of
decoded prior samples, cached sampler) and `reconstructions.png`.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.models import vqvae
from gm_jax.recipes.latent import VQVAEExperiment, vqvae_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: 64 hidden channels, one residual block, K = 64 codes of 16 dimensions, batch 64;
    4,000 VQ-VAE steps, then 6,000 prior steps (6 gated layers of 64 features, 5x5 kernels)."""
    c = vqvae_config(config_lib.base_config())
    c.vqvae_steps = 4000
    c.num_steps = 10_000
    c.batch_size = 64
    c.learning_rate = 1e-3
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """van den Oord et al. 2017, Sec. 4.1 (`vqvae.PAPER`: 256 channels, two residual blocks, K = 512, beta 0.25,
    Adam 2e-4, batch 128, 250,000 steps; the paper has no MNIST model, this applies its CIFAR10 recipe), then
    100,000 prior steps of a 15-layer, 128-feature Gated PixelCNN."""
    return config_lib.apply_overrides(get_config(), {
        **vqvae.PAPER, "code_dim": 64, "num_steps": vqvae.PAPER["vqvae_steps"] + 100_000, "prior_features": 128,
        "prior_layers": 15, "prior_output_features": 256, "prior_learning_rate": 3e-4}, "vqvae_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 4 hidden channels, K = 4 codes of 2 dimensions, a 1-layer prior; 1 VQ-VAE step, synthetic data."""
    return config_lib.apply_overrides(get_config(), {
        "data_dir": "synthetic", "hidden": 4, "num_residual": 1, "num_codes": 4, "code_dim": 2, "vqvae_steps": 1,
        "prior_features": 4, "prior_layers": 1, "prior_kernel_size": 3, "prior_output_features": 4,
        "batch_size": 8, "eval_batch_size": 64}, "vqvae_mnist")


class Experiment(VQVAEExperiment):
    name = "vqvae_mnist"


if __name__ == "__main__":
    from gm_jax.cli import main

    main("vqvae_mnist")
