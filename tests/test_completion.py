"""Completion (inpainting) by the PixelCNN family: `PixelCNNExperiment.complete` / `pixelcnn.complete`.

On a 2x2 binary image the model's exact conditional p(x_missing | x_observed) is computed by enumerating
the 16 images with `log_prob`; the completions of a raster-prefix mask must follow it (chi-square).
"""
from __future__ import annotations

import itertools

import jax
import numpy as np
import pytest
from scipy.stats import chisquare

from experiments import gated_pixelcnn_mnist
from gm_jax.models import pixelcnn


class TinyGated(gated_pixelcnn_mnist.Experiment):
    data_shape = (2, 2, 1)


def _experiment(conditional=False):
    config = gated_pixelcnn_mnist.get_test_config()
    config.conditional = conditional
    exp = TinyGated(config)
    # random weights scaled up so that the conditionals are far from uniform (seed 0: p(x_missing | x_0 = 1)
    # ranges over 0.02 .. 0.35, and differs from p(x_missing | x_0 = 0) by a total variation of 0.3)
    params = jax.tree_util.tree_map(lambda a: 1.5 * a, jax.jit(exp.init_params)(jax.random.key(0)))
    return exp, params


ALL = np.array(list(itertools.product([0, 1], repeat=4)), np.int32).reshape(16, 2, 2, 1)  # raster order


def _codes(images):
    return images.reshape(len(images), 4) @ (2 ** np.arange(3, -1, -1))


@pytest.fixture(scope="module")
def tiny():
    return _experiment()


def test_raster_prefix_completion_is_the_exact_conditional(tiny):
    exp, params = tiny
    p = np.exp(np.asarray(exp.log_prob(params, ALL), np.float64))
    n = 4000
    x = np.zeros((n, 2, 2, 1), np.int32)
    x[:, 0, 0, 0] = 1
    x[n // 2:, 0, 1, 0] = 1  # the second half observes the whole top row (1, 1)
    mask = np.zeros((n, 2, 2, 1), bool)
    mask[:, 0, 0] = True
    mask[n // 2:, 0, 1] = True
    out = np.asarray(exp.complete(params, jax.random.key(1), x, mask))
    assert out.dtype == np.uint8 and out.shape == x.shape
    np.testing.assert_array_equal(out[mask], x[mask])  # observed pixels kept exactly
    assert set(np.unique(out)) <= {0, 1}
    # first half: x_0 = 1 observed, pixels 1..3 drawn: p(x_1, x_2, x_3 | x_0 = 1) over the 8 images 8..15
    counts = np.bincount(_codes(out[:n // 2]), minlength=16)
    assert counts[:8].sum() == 0
    exact = p[8:] / p[8:].sum()
    assert chisquare(counts[8:], exact * (n // 2)).pvalue > 1e-3
    wrong = p[:8] / p[:8].sum()  # the conditional given the other value of x_0: the test has the power to see it
    assert chisquare(counts[8:], wrong * (n // 2)).pvalue < 1e-6
    # second half: the top row (1, 1) observed: p(x_2, x_3 | x_0 = x_1 = 1) over the images 12..15
    counts = np.bincount(_codes(out[n // 2:]), minlength=16)
    assert counts[:12].sum() == 0
    assert chisquare(counts[12:], p[12:] / p[12:].sum() * (n // 2)).pvalue > 1e-3


def test_cached_and_naive_complete_alike(tiny):
    exp, params = tiny
    x = np.asarray(ALL[::2])
    mask = np.array([[1, 1], [0, 0]])  # int 0/1 mask [H, W]: the top row
    cached = np.asarray(exp.complete(params, jax.random.key(3), x, mask, method="cached"))
    naive = np.asarray(exp.complete(params, jax.random.key(3), x, mask, method="naive"))
    np.testing.assert_array_equal(cached, naive)
    np.testing.assert_array_equal(cached[:, 0], x[:, 0])


def test_non_prefix_masks_raise_unless_approximate(tiny):
    exp, params = tiny
    x = np.asarray(ALL[::2])  # the shape of the test above: the compiled completion is reused
    mask = np.array([[False, True], [False, True]])  # the right column: not a raster prefix
    assert not pixelcnn.is_raster_prefix(np.broadcast_to(mask[None, :, :, None], x.shape)).any()
    with pytest.raises(ValueError, match="raster-order prefix"):
        exp.complete(params, jax.random.key(0), x, mask)
    out = np.asarray(exp.complete(params, jax.random.key(0), x, mask, allow_approximate=True, method="cached"))
    np.testing.assert_array_equal(out[:, :, 1], x[:, :, 1])


@pytest.mark.parametrize("mask, match", [
    (np.ones((3, 3), bool), "shape"),
    (np.ones((2, 2, 2), bool), "shape"),
    (np.array([[1, 2], [0, 0]]), "0 / 1"),
    (np.array([["a", "b"], ["c", "d"]]), "bool"),
    (np.zeros((2, 2), bool), "empty mask"),
    (np.ones((2, 2), bool), "nothing to complete"),
])
def test_bad_masks_raise(tiny, mask, match):
    exp, params = tiny
    with pytest.raises(ValueError, match=match):
        exp.complete(params, jax.random.key(0), ALL[:2], mask)


def test_bad_images_and_labels_raise(tiny):
    exp, params = tiny
    top = np.array([[True, True], [False, False]])
    with pytest.raises(ValueError, match="pixel values"):
        exp.complete(params, jax.random.key(0), ALL[:2] * 2, top)
    with pytest.raises(ValueError, match="no image"):
        exp.complete(params, jax.random.key(0), ALL[:0], top)
    with pytest.raises(ValueError, match="takes no labels"):
        exp.complete(params, jax.random.key(0), ALL[:2], top, labels=[0, 1])
    cond, cparams = _experiment(conditional=True)
    with pytest.raises(ValueError, match="needs labels"):
        cond.complete(cparams, jax.random.key(0), ALL[:2], top)
    with pytest.raises(ValueError, match="0..9"):
        cond.complete(cparams, jax.random.key(0), ALL[:2], top, labels=[0, 10])
    out = np.asarray(cond.complete(cparams, jax.random.key(0), ALL[:2], top, labels=[3, 7]))
    np.testing.assert_array_equal(out[:, 0], ALL[:2, 0])


class _RecordingClassifier:
    """Stands in for the MNIST classifier: "classifies" an image as its label when its bottom half is
    non-empty, and keeps what it was given."""

    def __init__(self):
        self.calls = []

    def accuracy(self, images, labels):
        self.calls.append(np.asarray(images))
        return float(np.mean(np.asarray(images)[:, 14:].sum((1, 2, 3)) > 0))


def test_completion_study_keeps_the_top_half_and_scores_both(tmp_path):
    """28 x 28 synthetic digits, the test config's one-layer model: the completions keep the kept rows of
    the real binarized digits, both sets reach the classifier as 0/255 images, the ratio is their quotient
    and the figure is written."""
    exp = gated_pixelcnn_mnist.Experiment(gated_pixelcnn_mnist.get_test_config())
    params = jax.jit(exp.init_params)(jax.random.key(0))
    clf = _RecordingClassifier()
    out = exp.completion_study(params, jax.random.key(1), num_images=4, classifier=clf, num_figure_images=2,
                               num_completions=2, figure_path=tmp_path / "completions.png")
    real, done = clf.calls
    assert real.shape == done.shape == (4, 28, 28, 1) and set(np.unique(real)) <= {0, 255}
    np.testing.assert_array_equal(done[:, :14], real[:, :14])
    assert set(np.unique(done)) <= {0, 255} and (done[:, 14:] != real[:, 14:]).any()
    assert out["accuracy_ratio"] == pytest.approx(out["accuracy_completed"] / out["accuracy_real"])
    assert out["observed_rows"] == 14 and out["rows_above"] == exp.model.rows_above == 3
    assert (tmp_path / "completions.png").stat().st_size > 0
    with pytest.raises(ValueError, match="num_images"):
        exp.completion_study(params, jax.random.key(1), num_images=0, classifier=clf)
