"""PixelVAE (Gulrajani et al. 2017) on binarized MNIST: a VAE with a Gated PixelCNN decoder, test NLL by IWAE.

    python -m experiments.pixelvae_mnist --workdir runs/pixelvae_mnist [--paper]

The model (`gm_jax.models.pixelvae`): q(z | x) from a convolutional encoder,
z of 16 dimensions, s(z) upsampled to a 28x28 feature map that enters every
gated layer of a small Gated PixelCNN decoder p(x | z). Trained on the fixed
binarization `binarized_mnist` (50,000 training / 10,000 test images) on the
negative ELBO with a linear KL warm-up (the paper's code: the KL weight rises
from 0 to 1 over the first `kl_warmup_steps`). At the end it writes:

* `results.json`: `test_nll_nats` (the IWAE estimate with `iwae_k` samples: k
  PixelCNN passes per test image), `test_neg_elbo_nats`, `test_recon_nats`,
  `test_kl_nats` (the KL that shrinks when the decoder is strong: report it
  beside the NLL), `train_neg_elbo_nats` (first 10,000 training images);
* `samples.png`: 8x8 samples (z ~ N(0, I), pixels by the cached sampler);
* `reconstructions.png`: test images and samples of p(x | z) at z = the mean of q(z | x).
"""
from __future__ import annotations

import jax
import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.models import pixelvae
from gm_jax.recipes.latent import GaussianLatentExperiment, gaussian_latent_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: z of 16 dimensions (the paper's MNIST model), a 16-channel latent map, 4 gated layers of
    32 features with 5x5 kernels, batch 32, KL warm-up over 1,000 steps, IWAE with k = 10 at test time."""
    c = gaussian_latent_config(config_lib.base_config())
    c.latent_dim = 16
    c.encoder_channels = (32, 64)
    c.map_channels = (32, 64)
    c.map_features = 16
    c.features = 32
    c.num_layers = 4
    c.kernel_size = 5
    c.output_features = 64
    c.kl_warmup_steps = 1000
    c.sampler = "cached"  # cached | naive
    c.num_steps = 4000
    c.batch_size = 32
    c.learning_rate = 1e-3
    c.log_every = 100
    c.checkpoint_every = 1000
    c.iwae_k = 10  # k PixelCNN passes per test image (README: within 0.2 nats of k = 50)
    c.iwae_chunk = 10  # importance samples per PixelCNN pass (memory: iwae_chunk * eval_batch_size images)
    c.eval_batch_size = 100
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Gulrajani et al. 2017, binarized MNIST (Sec. 4.1; the authors' `mnist_pixelvae_train.py -L 12 -fs 5
    -dpx 16 -ldim 16`): 16 latent dimensions, a PixelCNN decoder of 12 gated layers of 16 features with 5x5
    kernels (the paper's first layer is 7x7; here every layer shares `kernel_size`), batch 100, Adam with lr
    1e-3, the KL weight warmed up linearly over 10,000 iterations; the encoder is the code's 32-32-64-64
    channels, here two stride-2 stages of (32, 64). Table 1: 79.66 nats (IWAE, 5,000 samples)."""
    return config_lib.apply_overrides(get_config(), {
        "latent_dim": 16, "features": 16, "num_layers": 12, "kernel_size": 5, "batch_size": 100,
        "learning_rate": 1e-3, "kl_warmup_steps": 10_000, "num_steps": 200_000, "iwae_k": 5000}, "pixelvae_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: z of 2, 4-channel maps, one gated layer of 4 features, IWAE with 2 samples, synthetic data."""
    c = get_config()
    c.data_dir = "synthetic"
    c.latent_dim, c.encoder_channels, c.map_channels, c.map_features = 2, (4, 4), (4, 4), 4
    c.features, c.num_layers, c.kernel_size, c.output_features = 4, 1, 3, 4
    c.kl_warmup_steps, c.iwae_k, c.iwae_chunk = 2, 2, 2
    c.batch_size, c.eval_batch_size = 8, 64
    return c


class Experiment(GaussianLatentExperiment):
    name = "pixelvae_mnist"
    sample_methods = ("cached", "naive")
    schema = {**GaussianLatentExperiment.schema, "encoder_channels": Range(1, integer=True, each=True),
              "map_channels": Range(1, integer=True, each=True), "map_features": Range(1, integer=True),
              "features": Range(1, integer=True), "num_layers": Range(1, integer=True),
              "kernel_size": Range(1, integer=True), "output_features": Range(1, integer=True),
              "sampler": Choice(*pixelvae.SAMPLERS), "iwae_chunk": Range(1, integer=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.kernel_size % 2 == 0:
            raise ValueError(f"config.kernel_size must be odd, got {config.kernel_size}")
        if len(config.encoder_channels) != 2 or len(config.map_channels) != 2:
            raise ValueError("config.encoder_channels and config.map_channels need two entries each (two stride-2 "
                             f"stages, 28 = 7 * 4), got {config.encoder_channels} and {config.map_channels}")
        self.model = pixelvae.PixelVAE(
            latent_dim=config.latent_dim, image_shape=self.data_shape, encoder_channels=tuple(config.encoder_channels),
            map_channels=tuple(config.map_channels), map_features=config.map_features, features=config.features,
            num_layers=config.num_layers, kernel_size=config.kernel_size, output_features=config.output_features)

    def init_params(self, key: jax.Array):
        return pixelvae.init_params(self.model, key)

    def neg_elbo_terms(self, params, x, eps):
        return pixelvae.neg_elbo(self.model, params, x, eps)

    def iwae_log_prob(self, params, x, key, num_samples):
        return pixelvae.iwae_log_prob(self.model, params, x, key, num_samples, self.config.iwae_chunk)

    def sample(self, params, key: jax.Array, num_samples: int, method=None) -> jax.Array:
        """Ancestral samples uint8 [num_samples, 28, 28, 1] in {0, 1}; `method`: "cached" | "naive" (default
        `config.sampler`; the same samples for the same key)."""
        return pixelvae.sample(self.model, params, key, num_samples, self.sample_method(method))

    def reconstruct(self, params, x, key):
        """x ~ p(x | z) at z = the mean of q(z | x) (cached sampler): uint8 [N, 28, 28, 1] in {0, 1}."""
        mean, _ = self.model.apply({"params": params}, x, method=pixelvae.PixelVAE.encode)
        return pixelvae.sample_given_z(self.model, params, key, mean, self.sample_method())


if __name__ == "__main__":
    from gm_jax.cli import main

    main("pixelvae_mnist")
