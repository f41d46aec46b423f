"""VAE on binarized MNIST (Kingma & Welling 2014), test NLL by the IWAE bound (Burda et al. 2016).

    python -m experiments.vae_mnist --workdir runs/vae_mnist [--paper] [--config.num_steps=500]

Trains on the 50,000 training images of the fixed binarization
(`binarized_mnist`, Larochelle & Murray 2011) by default, or on 8-bit `mnist`
with dynamic binarization (`--config.dataset=mnist`; a fresh Bernoulli draw
per pixel each time an image is seen, the setting of Burda et al. Table 1).
At the end it writes to the workdir:

* `results.json`: `test_neg_elbo_nats` (one-sample negative ELBO), `test_nll_nats`
  (IWAE estimate with `iwae_k` samples) and its `test_bits_per_dim`,
  `test_kl_nats`, `test_recon_nats`, `train_neg_elbo_nats` (on the first 10,000
  training images, for the generalisation gap), `train_wall_s`, ... all per image;
* `samples.png`: 8x8 Bernoulli means p(x | z) of z ~ N(0, I);
* `reconstructions.png`: rows of test images alternating with their
  reconstructions (Bernoulli means of p(x | z), z = mean of q(z | x));
* `interpolations.png`: decoder means along linear and spherical paths between the
  posterior means of test images; `completions.png`: the bottom halves of test
  images completed by pseudo-Gibbs sampling (`complete`, Rezende et al. 2014,
  App. F); `manifold.png` with `--config.latent_dim=2`: the data manifold
  (Kingma & Welling 2014, Fig. 4);
* in `results.json` also `test_imputation_*`: the error of imputing pixels missing
  at random from the test images (see `GaussianLatentExperiment.imputation_report`).

Learning with missing data, `--config.missing_fraction=0.5`: each training image
loses that fraction of its pixels, at random, once for the whole run (the same
pixels every epoch); the ELBO sums the reconstruction over the observed pixels
only, exact for the factorised decoder (`vae.neg_elbo(..., observed=...)`); the
encoder sees `vae.masked_input` (missing pixels 0, observed ones divided by the
observed share). The test NLL is still that of the complete test images.
"""
from __future__ import annotations

import jax
import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.models import vae
from gm_jax.recipes.latent import GaussianLatentExperiment, gaussian_latent_config


def get_config() -> ml_collections.ConfigDict:
    """Default config: a one-stochastic-layer MLP VAE with 50 latents (Burda et al. 2016, Sec. 5.1) and two
    hidden layers of 500 ReLU units (Kingma & Welling 2014's width), sized for about 10 minutes on a 2-core CPU."""
    c = gaussian_latent_config(config_lib.base_config())
    c.architecture = "mlp"  # mlp | conv
    c.hidden = (500, 500)  # mlp: hidden widths; conv: channels per stride-2 stage, e.g. (32, 64)
    c.latent_dim = 50
    c.num_steps = 50_000  # 100 epochs of the 50,000 training images at batch 100
    c.batch_size = 100
    c.learning_rate = 1e-3
    c.log_every = 500
    c.checkpoint_every = 5_000
    c.eval_batch_size = 500
    c.missing_fraction = 0.0  # > 0: that share of each training image's pixels is missing (at random, fixed)
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Burda et al. 2016 (IWAE), Sec. 5.1, the one-stochastic-layer VAE of Table 1: 784-200-200-50
    (two deterministic layers of 200 units, 50 latents), dynamically binarized MNIST, batch 20, Adam with
    lr 1e-3, 3,280 passes over the 60,000 images (Sec. 5.1: 3^i epochs at lr 1e-3 * 10^(-i/7), i = 0..7),
    test NLL with k = 5,000 samples. Differences here: ReLU in place of tanh and a constant learning rate
    (the decay schedule is not reproduced)."""
    return config_lib.apply_overrides(get_config(), {
        "dataset": "mnist", "hidden": (200, 200), "latent_dim": 50, "batch_size": 20, "learning_rate": 1e-3,
        "num_steps": 3280 * 60_000 // 20, "iwae_k": 5000}, "vae_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: one hidden layer of 8, 2 latents, IWAE with 2 samples, synthetic data."""
    c = get_config()
    c.data_dir = "synthetic"
    c.hidden, c.latent_dim, c.iwae_k = (8,), 2, 2
    c.batch_size, c.eval_batch_size = 8, 64
    return c


class Experiment(GaussianLatentExperiment):
    name = "vae_mnist"
    compute_dtypes = ("float32", "bfloat16")
    schema = {**GaussianLatentExperiment.schema, "architecture": Choice("mlp", "conv"),
              "hidden": Range(1, integer=True, each=True), "missing_fraction": Range(0.0, 1.0, hi_open=True)}
    factorised_decoder = True

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = vae.VAE(latent_dim=config.latent_dim, image_shape=self.data_shape,
                             architecture=config.architecture, hidden=tuple(config.hidden), dtype=self.compute_dtype)

    def init_params(self, key: jax.Array):
        return vae.init_params(self.model, key)

    def neg_elbo_terms(self, params, x, eps, observed=None):
        return vae.neg_elbo(self.model, params, x, eps, observed)

    def iwae_log_prob(self, params, x, key, num_samples):
        return vae.iwae_log_prob(self.model, params, x, key, num_samples)

    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """Ancestral samples: uint8 [num_samples, 28, 28, 1] with values in {0, 1}."""
        return vae.sample(self.model, params, key, num_samples)

    def grid_images(self, params, key):
        return vae.sample_probs(self.model, params, key, self.num_grid_samples)

    def reconstruct(self, params, x, key):
        """Bernoulli means p(x | z) at z = the mean of q(z | x): float32 [N, 28, 28, 1]."""
        return self.decode_means(params, self.encode_mean(params, x))

    def encode_mean(self, params, x):
        return self.model.apply({"params": params}, x, method=vae.VAE.encode)[0]

    def decode_means(self, params, z):
        return jax.nn.sigmoid(self.model.apply({"params": params}, z, method=vae.VAE.decode))

    def impute(self, params, x, mask):
        return vae.impute_probs(self.model, params, x, mask)

    def complete(self, params, key, x, mask, num_steps: int = 100):
        """Keep the observed pixels of x (uint8 or float [N, 28, 28, 1] in {0, 1}; `mask` of its shape or
        [28, 28, 1], bool or 0/1, 1 = observed) and sample the rest by pseudo-Gibbs (`vae.complete`):
        uint8 [N, 28, 28, 1]. Raises ValueError for a bad mask (`sampling.completion_mask`) or num_steps < 1."""
        return vae.complete(self.model, params, key, x, mask, num_steps)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("vae_mnist")
