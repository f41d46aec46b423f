"""The class-conditional GMM of `bayes_classifier_mnist` (`gm_jax.recipes.bayes`) on synthetic points.

With one component per class, supervised EM is closed-form maximum likelihood: each class's sample mean
and (biased) covariance, and the class frequencies as p(y).
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from experiments import bayes_classifier_mnist
from gm_jax.models import gmm
from gm_jax.recipes import bayes

D = 5  # = the test config's pca_dim


def _points(seed=0, per_class=(40, 60)):
    """Ten classes in R^5 (centres ~ N(0, 2.5^2 I), spreads 0.2 .. 0.65), unequal class sizes (alternately
    per_class[0], per_class[1]); small coordinates keep float32's E[x x^T] - mu mu^T accurate."""
    rng = np.random.default_rng(seed)
    centres = 2.5 * rng.normal(size=(10, D))
    y = np.concatenate([np.full(per_class[c % 2], c) for c in range(10)]).astype(np.int32)
    x = (centres[y] + rng.normal(size=(len(y), D)) * (0.2 + 0.05 * y[:, None])).astype(np.float32)
    return x, y, centres


def test_one_component_per_class_is_the_closed_form_fit():
    x, y, _ = _points()
    reg = 1e-3
    params = jax.device_get(bayes.fit_class_gmm(jax.random.key(0), *bayes.by_class(x, y), 1, "full", reg, 2,
                                                      num_steps=3))
    counts = np.bincount(y)
    np.testing.assert_allclose(np.exp(params["logits"]), counts / counts.sum(), rtol=1e-5)
    for c in range(10):
        xc = x[y == c].astype(np.float64)
        np.testing.assert_allclose(params["means"][c], xc.mean(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(params["covs"][c], np.cov(xc, rowvar=False, bias=True) + reg * np.eye(D),
                                   atol=1e-3)
    # Bayes' rule: log p(x | y) + log p(y) of the fitted Gaussians, and log p(x) their logsumexp
    joint = np.asarray(bayes.class_log_joint(params, x, 1, "full"))
    ref = np.stack([multivariate_normal(params["means"][c], params["covs"][c]).logpdf(x) for c in range(10)], 1)
    ref += np.log(counts / counts.sum())
    np.testing.assert_allclose(joint, ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.asarray(gmm.log_prob(params, x)), logsumexp(ref, axis=1), rtol=1e-4, atol=1e-3)
    assert np.mean(np.argmax(joint, 1) == y) > 0.95


def test_mixtures_per_class_samples_and_bad_input():
    x, y, centres = _points(seed=1)
    params = bayes.fit_class_gmm(jax.random.key(1), *bayes.by_class(x, y), 2, "full", 1e-3, 5, num_steps=5)
    comp = np.repeat(np.arange(10), 2)
    # responsibilities never cross classes: each class's weights sum to its frequency
    w = np.exp(np.asarray(params["logits"]))
    np.testing.assert_allclose([w[comp == c].sum() for c in range(10)], np.bincount(y) / len(y), rtol=1e-4)
    exp = bayes_classifier_mnist.Experiment(bayes_classifier_mnist.get_test_config())
    p = {"gmm": params}
    labels = np.arange(40) % 10
    z = np.asarray(exp.sample(p, jax.random.key(2), 40, **exp.check_conditioning(40, labels=labels)))
    assert z.shape == (40, D) and np.all(np.isfinite(z))
    nearest = np.argmin(((z[:, None] - centres[None]) ** 2).sum(-1), 1)
    assert np.mean(nearest == labels) > 0.9  # each sample comes from its label's mixture
    assert np.mean(exp.classify(p, z) == labels) > 0.9
    with pytest.raises(ValueError, match="0..9"):
        exp.check_conditioning(3, labels=[0, 1, 10])
    with pytest.raises(ValueError, match=r"int \[3\]"):
        exp.check_conditioning(3, labels=[0, 1])
    with pytest.raises(ValueError, match=">= 2 training examples"):
        bayes.check_class_counts(np.r_[y[y != 3], 3], 2)
    with pytest.raises(ValueError, match="labels must be in"):
        bayes.check_class_counts(np.r_[y, 10], 1)


def test_conditional_pixelcnn_class_log_likelihoods_are_normalised():
    """log p(x | y) of the label-conditional Gated PixelCNN for all ten labels, on 2x2 binary images: each
    p(. | y) sums to 1 over the 16 images, and logsumexp_y - log 10 is the model's marginal `log_prob`."""
    import itertools

    from experiments import gated_pixelcnn_mnist

    class TinyGated(gated_pixelcnn_mnist.Experiment):
        data_shape = (2, 2, 1)

    config = gated_pixelcnn_mnist.get_test_config()
    config.conditional = True
    exp = TinyGated(config)
    params = jax.jit(exp.init_params)(jax.random.key(0))
    images = np.array(list(itertools.product([0, 1], repeat=4)), np.int32).reshape(16, 2, 2, 1)
    ll = exp.class_log_likelihoods(params, images, batch_size=8)
    assert ll.shape == (16, 10)
    np.testing.assert_allclose(logsumexp(ll.astype(np.float64), axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(logsumexp(ll, axis=1) - np.log(10), np.asarray(jax.jit(exp.log_prob)(params, images)),
                               atol=1e-5)
    np.testing.assert_array_equal(exp.bayes_classify(params, images), np.argmax(ll, axis=1))
    with pytest.raises(ValueError, match="pixel values"):
        exp.class_log_likelihoods(params, images * 2)
    config.conditional = False
    with pytest.raises(ValueError, match="unconditional"):
        TinyGated(config).class_log_likelihoods(params, images)
