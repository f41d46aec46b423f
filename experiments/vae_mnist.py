"""VAE on binarized MNIST (Kingma & Welling 2014), test NLL by the IWAE bound (Burda et al. 2016).

    python -m experiments.vae_mnist --workdir runs/vae_mnist [--config.num_steps=500]

Trains on the 50,000 training images of the fixed binarization
(`binarized_mnist`, Larochelle & Murray 2011) by default, or on 8-bit `mnist`
with dynamic binarization (`--config.dataset=mnist`; a fresh Bernoulli draw
per pixel each time an image is seen, the setting of Burda et al. Table 1).
At the end it writes to the workdir:

* `results.json`: `test_neg_elbo_nats` (one-sample negative ELBO), `test_nll_nats`
  (IWAE estimate with `iwae_k` samples), `test_kl_nats`, `test_recon_nats`,
  `train_neg_elbo_nats` (on the first 10,000 training images, for the
  generalisation gap), `train_wall_s`, ... all per image;
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
from gm_jax import viz
from gm_jax.data import dynamic_binarize, load_split, train_batches
from gm_jax.evaluation import mean_over_dataset
from gm_jax.experiment import Experiment as BaseExperiment
from gm_jax.models import vae

DATASETS = ("binarized_mnist", "mnist")


def get_config() -> ml_collections.ConfigDict:
    """Default config: a one-stochastic-layer MLP VAE (Burda et al. 2016, Sec. 5.1 sizes,
    ReLU instead of tanh), sized to train in about 10 minutes on a 2-core CPU."""
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


class Experiment(BaseExperiment):
    name = "vae_mnist"
    data_shape = (28, 28, 1)
    data_max = 1
    log_prob_needs_key = True

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.dataset not in DATASETS:
            raise ValueError(f"config.dataset={config.dataset!r}; valid choices: {list(DATASETS)}")
        if config.iwae_k < 1:
            raise ValueError(f"config.iwae_k must be >= 1, got {config.iwae_k}")
        self.model = vae.VAE(
            latent_dim=config.latent_dim,
            image_shape=self.data_shape,
            architecture=config.architecture,
            hidden=tuple(config.hidden),
        )

    # -- data ---------------------------------------------------------------------
    def _split(self, split: str) -> dict:
        return {"image": load_split(self.config.dataset, split, self.config.data_dir or None)["image"]}

    def _binarize(self, images: jax.Array, keys: jax.Array) -> jax.Array:
        """Per-example Bernoulli(x / 255) draws for 8-bit mnist; binarized_mnist passes through."""
        if self.config.dataset == "binarized_mnist":
            return images.astype(jnp.float32)
        return jax.vmap(dynamic_binarize)(keys, images).astype(jnp.float32)

    def train_batches(self, start_step: int = 0):
        return train_batches(self._split("train"), self.config.batch_size, self.config.seed, start_step)

    # -- model --------------------------------------------------------------------
    def init_params(self, key: jax.Array):
        return vae.init_params(self.model, key)

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """Negative ELBO, nats per image, averaged over the batch (keys: one per example)."""
        eps_keys, bin_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
        x = self._binarize(batch["image"], bin_keys)
        eps = jax.vmap(lambda k: jax.random.normal(k, (self.config.latent_dim,)))(eps_keys)
        terms = vae.neg_elbo(self.model, params, x, eps)
        loss = terms["neg_elbo"].mean()
        return loss, {"recon": terms["recon"].mean(), "kl": terms["kl"].mean()}

    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """Ancestral samples: uint8 [num_samples, 28, 28, 1] with values in {0, 1}."""
        return vae.sample(self.model, params, key, num_samples)

    def log_prob(self, params, x: jax.Array, key: jax.Array) -> jax.Array:
        """IWAE estimate of log p(x) with `config.iwae_k` samples: float32 [N], nats."""
        return vae.iwae_log_prob(self.model, params, x, key, self.config.iwae_k)

    # -- evaluation ---------------------------------------------------------------
    def evaluate(self, params, key: jax.Array) -> dict:
        bin_key, elbo_key, iwae_key = jax.random.split(key, 3)
        test = self._split("test")
        if self.config.dataset == "mnist":  # one fixed binarization of the test set
            test = {"image": np.asarray(dynamic_binarize(bin_key, test["image"]))}

        @jax.jit
        def elbo_terms(batch, k):
            eps = jax.random.normal(k, (batch["image"].shape[0], self.config.latent_dim))
            return vae.neg_elbo(self.model, params, batch["image"], eps)

        @jax.jit
        def nll(batch, k):
            return {"nll": -self.log_prob(params, batch["image"], k)}

        bs = self.config.eval_batch_size
        terms = mean_over_dataset(elbo_terms, test, bs, elbo_key)
        train_subset = {"image": self._split("train")["image"][:10_000]}
        if self.config.dataset == "mnist":
            train_subset = {"image": np.asarray(dynamic_binarize(bin_key, train_subset["image"]))}
        train_terms = mean_over_dataset(elbo_terms, train_subset, bs, elbo_key)
        return {
            "test_neg_elbo_nats": terms["neg_elbo"],
            "test_recon_nats": terms["recon"],
            "test_kl_nats": terms["kl"],
            "test_nll_nats": mean_over_dataset(nll, test, bs, iwae_key)["nll"],
            "iwae_k": self.config.iwae_k,
            "train_neg_elbo_nats": train_terms["neg_elbo"],
            "dataset": self.config.dataset,
        }

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        probs = vae.sample_probs(self.model, params, key, 64)
        viz.save_image_grid(Path(workdir) / "samples.png", probs, cols=8)
        x = self._split("test")["image"][:32]
        if self.config.dataset == "mnist":
            x = np.asarray(dynamic_binarize(key, x))
        mean, _ = self.model.apply({"params": params}, jnp.asarray(x, jnp.float32), method=vae.VAE.encode)
        recon = jax.nn.sigmoid(self.model.apply({"params": params}, mean, method=vae.VAE.decode))
        rows = np.concatenate([np.stack([x[r * 8:(r + 1) * 8], np.asarray(recon[r * 8:(r + 1) * 8])])
                               for r in range(4)]).reshape(64, 28, 28, 1)
        viz.save_image_grid(Path(workdir) / "reconstructions.png", rows, cols=8)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("vae_mnist")
