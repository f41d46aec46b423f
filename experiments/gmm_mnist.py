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

One training step is one full-batch EM iteration (`gm_jax.recipes.classical.PCAGMMExperiment`).

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

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Range
from gm_jax.recipes.classical import GMMExperiment, PCAGMMExperiment

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


def get_paper_config() -> ml_collections.ConfigDict:
    """The default config. EM for Gaussian mixtures follows Bishop 2006 ("Pattern Recognition and Machine
    Learning", Sec. 9.2, Eq. 9.23-9.27); no paper fixes the number of components or the PCA dimension for
    MNIST, so the default's are kept."""
    return get_config()


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 5 PCA dimensions, 3 components (synthetic digits, 512 training images)."""
    c = get_config()
    c.data_dir = "synthetic"
    c.pca_dim, c.num_components, c.batch_size, c.eval_batch_size = 5, 3, 512, 128
    return c


class Experiment(PCAGMMExperiment):
    name = "gmm_mnist"
    schema = {**GMMExperiment.schema, "pca_dim": Range(1, 784, integer=True)}


if __name__ == "__main__":
    from gm_jax.cli import main

    main("gmm_mnist")
