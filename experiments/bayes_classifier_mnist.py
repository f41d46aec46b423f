"""Generative vs discriminative classification of MNIST by Bayes' rule (Ng & Jordan 2002).

    python -m experiments.bayes_classifier_mnist --workdir runs/bayes_classifier_mnist

The generative classifier: a Gaussian mixture per digit on the first `pca_dim` principal components of
the 8-bit `mnist` training images (scaled to [0, 1]; the PCA of `gmm_mnist`, fitted without labels),
class frequencies as p(y), and argmax_y log p(x | y) + log p(y) for a test digit x
(`gm_jax.recipes.bayes.ClassGMMExperiment`). The ten mixtures are fitted by the library's EM
(`gm_jax.models.gmm`) with each example's responsibilities restricted to its class's components: one
training step = one supervised EM iteration over all 60,000 training images. `Model.sample(key, n,
labels=...)` draws PCA coordinates of the given digits (`Experiment.decode` maps them to images);
`Model.log_prob` is the marginal log p(x) = logsumexp_y log p(x | y) p(y) of PCA coordinates (nats;
a density on R^pca_dim, not a likelihood of the pixels).

Writes `results.json`:

* `test_accuracy`: Bayes-rule accuracy on the 10,000 test digits;
* `learning_curve`: per number of training examples per class (`curve_sizes`, 0 = all; nested random
  subsets), the test error of the class GMM (refitted on the subset with min(num_components,
  max(1, n // curve_points_per_component)) components per class) and of multinomial logistic
  regression (scikit-learn, L2 with C = `logistic_c`) on the same PCA features;
* `test_log_likelihood_nats` / `train_log_likelihood_nats`: mean log p(x) of the PCA coordinates;
  `class_prior`, `pca_explained_variance`;

and `samples.png` (8 samples per digit, one row each, decoded through the PCA), `learning_curve.png`
(test error vs examples per class, log scale) and `log_likelihood.png` (log p(x, y) per EM iteration).
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.recipes.bayes import ClassGMMExperiment


def get_config() -> ml_collections.ConfigDict:
    """Default: 50 PCA dimensions, 5 full-covariance components per digit, 50 EM iterations; learning curve
    at 10, 30, 100, 300, 1,000 and all (~6,000) training examples per class."""
    c = config_lib.base_config()
    c.pca_dim = 50
    c.num_components = 5  # per class
    c.covariance_type = "full"  # full | diag
    c.reg_covar = 1e-2  # covariance floor: PCA coordinates of [0, 1] pixels have variances 5e-3 .. 5
    c.kmeans_iters = 10
    c.num_steps = 50  # EM iterations
    c.curve_sizes = (10, 30, 100, 300, 1000, 0)  # training examples per class (0 = all)
    c.curve_points_per_component = 100
    c.num_curve_steps = 50
    c.logistic_c = 1.0
    c.log_every = 1
    c.checkpoint_every = 50
    c.batch_size = 60000  # informational: every step uses the whole training set
    c.eval_batch_size = 10000
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """The default config. Ng & Jordan 2002 (Sec. 3, Fig. 1) compare naive Bayes with logistic regression on
    UCI data sets at a range of training-set sizes; no paper fixes a class-conditional density for MNIST PCA
    features, so the default's Gaussian mixtures (Bishop 2006, Sec. 9.2) are kept."""
    return get_config()


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 5 PCA dimensions, 2 components per class, synthetic digits, curve at 5 and 20 per class."""
    c = get_config()
    c.data_dir = "synthetic"
    c.pca_dim, c.num_components, c.batch_size, c.eval_batch_size = 5, 2, 512, 128
    c.curve_sizes, c.curve_points_per_component, c.num_curve_steps = (5, 20), 5, 2
    return c


class Experiment(ClassGMMExperiment):
    name = "bayes_classifier_mnist"


if __name__ == "__main__":
    from gm_jax.cli import main

    main("bayes_classifier_mnist")
