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
  reconstructions (Bernoulli means of p(x | z), z = mean of q(z | x)).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.evaluation import likelihood
from gm_jax.models import vae
from gm_jax.recipes.images import DATASETS, ImageLikelihoodExperiment
from gm_jax.viz import images as viz_images


def get_config() -> ml_collections.ConfigDict:
    """Default config: a one-stochastic-layer MLP VAE with 50 latents (Burda et al. 2016, Sec. 5.1) and two
    hidden layers of 500 ReLU units (Kingma & Welling 2014's width), sized for about 10 minutes on a 2-core CPU."""
    c = config_lib.base_config()
    c.dataset = "binarized_mnist"  # binarized_mnist (fixed) | mnist (dynamic binarization)
    c.architecture = "mlp"  # mlp | conv
    c.hidden = (500, 500)  # mlp: hidden widths; conv: channels per stride-2 stage, e.g. (32, 64)
    c.latent_dim = 50
    c.num_steps = 50_000  # 100 epochs of the 50,000 training images at batch 100
    c.batch_size = 100
    c.learning_rate = 1e-3
    c.log_every = 500
    c.checkpoint_every = 5_000
    c.iwae_k = 500  # importance samples for test_nll_nats
    c.eval_batch_size = 500
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


class Experiment(ImageLikelihoodExperiment):
    name = "vae_mnist"
    compute_dtypes = ("float32", "bfloat16")
    data_kind = "binary"
    log_prob_needs_key = True
    train_eval_size = 10_000
    likelihood_note = {"discretization": likelihood.BINARY_PIXELS,
                       "nll_estimate": "test_nll_nats: the IWAE bound with iwae_k samples (Burda et al. 2016, "
                                       "Eq. 8), a stochastic lower bound on log p(x) tightening as iwae_k grows"}
    schema = {"dataset": Choice(*DATASETS), "architecture": Choice("mlp", "conv"),
              "hidden": Range(1, integer=True, each=True), "latent_dim": Range(1, integer=True),
              "iwae_k": Range(1, integer=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = vae.VAE(latent_dim=config.latent_dim, image_shape=self.data_shape,
                             architecture=config.architecture, hidden=tuple(config.hidden), dtype=self.compute_dtype)

    def init_params(self, key: jax.Array):
        return vae.init_params(self.model, key)

    def _elbo_terms(self, params, x, key):
        eps = jax.random.normal(key, (x.shape[0], self.config.latent_dim))
        return vae.neg_elbo(self.model, params, x, eps)

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """Negative ELBO, nats per image, averaged over the batch (keys: one per example)."""
        eps_keys, bin_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
        x = self.binarize_batch(batch["image"], bin_keys, jnp.float32)
        eps = jax.vmap(lambda k: jax.random.normal(k, (self.config.latent_dim,)))(eps_keys)
        terms = vae.neg_elbo(self.model, params, x, eps)
        return terms["neg_elbo"].mean(), {"recon": terms["recon"].mean(), "kl": terms["kl"].mean()}

    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """Ancestral samples: uint8 [num_samples, 28, 28, 1] with values in {0, 1}."""
        return vae.sample(self.model, params, key, num_samples)

    def log_prob(self, params, x: jax.Array, key: jax.Array) -> jax.Array:
        """IWAE estimate of log p(x) with `config.iwae_k` samples: float32 [N], nats."""
        return vae.iwae_log_prob(self.model, params, x, key, self.config.iwae_k)

    # -- evaluation: the ELBO terms and the IWAE NLL on the test set, the ELBO on 10,000 training images
    def eval_keys(self, key):
        bin_key, elbo_key, iwae_key = jax.random.split(key, 3)
        return {"binarize": bin_key, "test": (elbo_key, iwae_key), "train": elbo_key}

    def eval_terms(self, params, batch, key):
        elbo_key, iwae_key = key
        return {"nll": -self.log_prob(params, batch["image"], iwae_key),
                **self._elbo_terms(params, batch["image"], elbo_key)}

    def train_eval_terms(self, params, batch, key):
        return {"neg_elbo": self._elbo_terms(params, batch["image"], key)["neg_elbo"]}

    def extra_metrics(self, params, keys):
        return {"iwae_k": self.config.iwae_k}

    def grid_images(self, params, key):
        return vae.sample_probs(self.model, params, key, self.num_grid_samples)

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        super().write_artifacts(params, key, workdir)
        x = self.load("test", 32, key)["image"]
        mean, _ = self.model.apply({"params": params}, jnp.asarray(x, jnp.float32), method=vae.VAE.encode)
        recon = jax.nn.sigmoid(self.model.apply({"params": params}, mean, method=vae.VAE.decode))
        viz_images.save_reconstructions(Path(workdir) / "reconstructions.png", x, np.asarray(recon))


if __name__ == "__main__":
    from gm_jax.cli import main

    main("vae_mnist")
