"""Gaussian mixture model by EM on PCA-reduced MNIST; test log-likelihood and samples decoded through the PCA.

    python -m experiments.gmm_mnist --workdir runs/gmm_mnist [--config.num_components=50 --config.pca_dim=30]

Data: the 60,000 8-bit `mnist` training images scaled to [0, 1] and projected
on their first `config.pca_dim` principal components (PCA of the training
images: eigenvectors of their 784 x 784 covariance, computed once in NumPy
float64). The PCA mean and basis are part of the parameters (`params["pca"]`,
fixed; EM changes only `params["gmm"]`), so `gm_jax.load` restores them with
the mixture. The model's data are the PCA coordinates, float32 [N, pca_dim]:
`Model.sample` returns coordinates and `Model.log_prob` takes coordinates;
`Experiment.encode` / `Experiment.decode` map images <-> coordinates
(decode = mean + z @ basis, clipped to [0, 1]).

One training step is one full-batch EM iteration (`gm_jax.models.gmm.GMMExperiment`).

Writes `results.json`:

* `test_log_likelihood_nats` / `train_log_likelihood_nats`: exact mean
  log-density of the PCA coordinates of the 10,000 test (60,000 train)
  images, nats per image. This is a density on R^pca_dim, not a likelihood
  of the 784 pixels, so it is comparable only between models of the same
  PCA space;
* `single_gaussian_test_log_likelihood_nats`: the maximum-likelihood single
  full-covariance Gaussian in the same space (the K = 1 baseline);
* `pca_explained_variance`: fraction of the pixel variance the PCA keeps;

and `samples.png` (64 samples of the mixture decoded to images),
`means.png` (each component's mean decoded, ordered by weight) and
`log_likelihood.png` (training log-likelihood per EM iteration).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax import viz
from gm_jax.data import load_split
from gm_jax.models import gmm


def get_config() -> ml_collections.ConfigDict:
    """Default: 50 PCA dimensions, 20 full-covariance components, 100 EM iterations."""
    c = config_lib.base_config()
    c.pca_dim = 50
    c.num_components = 20
    c.covariance_type = "full"  # full | diag
    c.reg_covar = 1e-4  # covariance floor (PCA coordinates of [0, 1] pixels have variances 5e-3 .. 5)
    c.kmeans_iters = 10
    c.num_steps = 100  # EM iterations
    c.log_every = 1
    c.checkpoint_every = 100
    c.batch_size = 60000  # informational: every step uses the whole training set
    c.eval_batch_size = 10000
    return c


class Experiment(gmm.GMMExperiment):
    name = "gmm_mnist"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if not 1 <= config.pca_dim <= 784:
            raise ValueError(f"config.pca_dim must be in 1..784, got {config.pca_dim}")
        self.data_shape = (int(config.pca_dim),)
        self._cache = {}

    # -- data and PCA ---------------------------------------------------------------
    def _images(self, split: str) -> np.ndarray:
        """float32 [N, 784] pixels in [0, 1]."""
        images = load_split("mnist", split, self.config.data_dir or None)["image"]
        return images.reshape(len(images), -1).astype(np.float32) / 255.0

    def pca(self) -> dict:
        """The PCA of the training images: `mean` float32 [784], `basis` float32 [pca_dim, 784]
        (orthonormal rows, by decreasing variance) and `explained` (fraction of the variance kept)."""
        if "pca" not in self._cache:
            x = self._images("train").astype(np.float64)
            mean = x.mean(0)
            cov = np.cov(x - mean, rowvar=False)
            vals, vecs = np.linalg.eigh(cov)
            order = np.argsort(vals)[::-1][: self.config.pca_dim]
            self._cache["pca"] = {"mean": mean.astype(np.float32), "basis": vecs[:, order].T.astype(np.float32),
                                  "explained": float(vals[order].sum() / vals.sum())}
        return self._cache["pca"]

    def encode(self, images) -> np.ndarray:
        """Images (uint8 [N, 28, 28, 1] in 0..255) -> PCA coordinates float32 [N, pca_dim]."""
        p = self.pca()
        x = np.asarray(images).reshape(len(images), -1).astype(np.float32) / 255.0
        return (x - p["mean"]) @ p["basis"].T

    def decode(self, params, z) -> jax.Array:
        """PCA coordinates float [N, pca_dim] -> images float32 [N, 28, 28, 1] in [0, 1]."""
        x = params["pca"]["mean"] + jnp.asarray(z) @ params["pca"]["basis"]
        return jnp.clip(x, 0.0, 1.0).reshape(-1, 28, 28, 1)

    def train_data(self) -> np.ndarray:
        if "train" not in self._cache:
            p = self.pca()
            self._cache["train"] = (self._images("train") - p["mean"]) @ p["basis"].T
        return self._cache["train"]

    def test_data(self) -> np.ndarray:
        p = self.pca()
        return (self._images("test") - p["mean"]) @ p["basis"].T

    def extra_params(self) -> dict:
        p = self.pca()
        return {"pca": {"mean": jnp.asarray(p["mean"]), "basis": jnp.asarray(p["basis"])}}

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, params, key: jax.Array) -> dict:
        train, test = self.train_data(), self.test_data()
        mu = train.mean(0, dtype=np.float64)
        cov = np.cov(train.astype(np.float64), rowvar=False) + self.config.reg_covar * np.eye(train.shape[1])
        single = gmm.make_params([1.0], mu[None], cov[None])
        return {"test_log_likelihood_nats": self.mean_log_prob(params, test),
                "train_log_likelihood_nats": self.mean_log_prob(params, train),
                "single_gaussian_test_log_likelihood_nats": float(np.mean(np.asarray(gmm.log_prob(single, test)))),
                "pca_dim": int(self.config.pca_dim), "pca_explained_variance": self.pca()["explained"],
                "num_components": int(self.config.num_components), "covariance_type": self.config.covariance_type,
                "em_iterations": int(self.config.num_steps), "units": "nats per image, density of PCA coordinates",
                "figures": ["samples.png", "means.png", "log_likelihood.png"]}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        z = jax.jit(self.sample, static_argnums=2)(params, key, 64)
        viz.save_image_grid(workdir / "samples.png", np.asarray(self.decode(params, z)), cols=8)
        order = np.argsort(-np.asarray(params["gmm"]["logits"]))
        viz.save_image_grid(workdir / "means.png", np.asarray(self.decode(params, params["gmm"]["means"][order])),
                            cols=10)
        gmm.save_log_likelihood_curve(workdir / "metrics.jsonl", workdir / "log_likelihood.png",
                                      f"gmm_mnist: EM, K={self.config.num_components}, PCA {self.config.pca_dim}")


if __name__ == "__main__":
    from gm_jax.cli import main

    main("gmm_mnist")
