"""MNIST-FID / MNIST-IS building blocks, nearest neighbours, and the classifier cache."""
import json

import jax
import numpy as np
import pytest
import scipy.linalg

from gm_jax.evaluation import classifier as classifier_lib
from gm_jax.evaluation import sample_quality as sq


def _random_cov(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_fid_of_a_set_with_itself_is_zero():
    feats = np.random.default_rng(0).standard_normal((2000, 16)) * 3 + 1
    stats = sq.feature_stats(feats)
    assert stats[0].dtype == np.float64 and stats[1].shape == (16, 16)
    assert sq.frechet_distance(*stats, *stats) < 1e-8


def test_fid_mean_shift_equals_squared_distance():
    """Equal covariances: FID = ||mu1 - mu2||^2, for shifted copies of one sample set."""
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((3000, 12)) @ rng.standard_normal((12, 12))
    for scale in (0.1, 1.0, 5.0):
        delta = scale * rng.standard_normal(12)
        fid = sq.frechet_distance(*sq.feature_stats(feats), *sq.feature_stats(feats + delta))
        np.testing.assert_allclose(fid, delta @ delta, rtol=1e-6, atol=1e-8)


def test_fid_matches_closed_form_and_scipy():
    rng = np.random.default_rng(2)
    # diagonal covariances: sum (sqrt(a) - sqrt(b))^2 + ||dmu||^2
    a, b = rng.uniform(0.1, 4, 8), rng.uniform(0.1, 4, 8)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    np.testing.assert_allclose(sq.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), expected, rtol=1e-10)
    # general covariances: the textbook formula with scipy's sqrtm
    s1, s2 = _random_cov(rng, 10), _random_cov(rng, 10)
    m1, m2 = rng.standard_normal(10), rng.standard_normal(10)
    ref = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    np.testing.assert_allclose(sq.frechet_distance(m1, s1, m2, s2), ref, rtol=1e-8)


def test_fid_survives_singular_covariances():
    """Dead features and fewer samples than dimensions give a finite, non-negative, float result."""
    rng = np.random.default_rng(3)
    x = np.zeros((10, 32))
    x[:, :5] = rng.standard_normal((10, 5))  # 27 dead features; rank <= 5
    y = x + 0.5
    stats_x, stats_y = sq.feature_stats(x), sq.feature_stats(y)
    fid = sq.frechet_distance(*stats_x, *stats_y)
    assert isinstance(fid, float) and np.isfinite(fid)
    np.testing.assert_allclose(fid, 32 * 0.25, rtol=1e-6)  # same covariance, shift 0.5 in 32 dims
    assert sq.frechet_distance(*stats_x, *stats_x) < 1e-8
    with pytest.raises(ValueError, match="covariances"):
        sq.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="N >= 2"):
        sq.feature_stats(np.zeros((1, 3)))


def test_inception_score_extremes():
    onehot = np.eye(10)[np.arange(1000) % 10]
    np.testing.assert_allclose(sq.inception_score(onehot), 10.0, rtol=1e-10)
    np.testing.assert_allclose(sq.inception_score(np.tile(np.eye(10)[[3]], (50, 1))), 1.0, rtol=1e-10)
    np.testing.assert_allclose(sq.inception_score(np.full((20, 10), 0.1)), 1.0, rtol=1e-10)
    mixed = np.random.default_rng(0).dirichlet(np.ones(10), 500)
    assert 1.0 < sq.inception_score(mixed) < 10.0
    with pytest.raises(ValueError, match="probabilities"):
        sq.inception_score(np.ones((4, 10)))


def test_class_share_kl():
    ref = np.repeat(np.arange(4), [10, 20, 30, 40])
    shares, kl = sq.class_share_kl(ref[::-1], ref, 4)
    np.testing.assert_allclose(shares, [0.1, 0.2, 0.3, 0.4])
    assert kl == 0.0  # the same proportions
    shares, kl = sq.class_share_kl(np.full(7, 2), ref, 4)  # collapsed onto class 2
    np.testing.assert_allclose(kl, -np.log(0.3))
    q = np.array([0.25, 0.25, 0.25, 0.25])
    _, kl = sq.class_share_kl(np.arange(4), ref, 4)
    np.testing.assert_allclose(kl, np.sum(q * np.log(q / [0.1, 0.2, 0.3, 0.4])))
    for bad in ((np.array([4]), ref), (np.array([0.5]), ref), (np.array([], int), ref), (np.array([3]), np.zeros(3, int))):
        with pytest.raises(ValueError, match="class_share_kl"):
            sq.class_share_kl(*bad, num_classes=4)


def test_class_resampled_features():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 50)
    features = labels[:, None] * 10.0 + rng.standard_normal((150, 2))
    got = sq.class_resampled_features(features, labels, [0.2, 0.0, 0.8], 100)
    assert got.shape == (100, 2)
    assert np.sum(got[:, 0] < 5) == 20 and np.sum(got[:, 0] > 15) == 80 and not np.any((got[:, 0] > 5) & (got[:, 0] < 15))
    np.testing.assert_array_equal(got, sq.class_resampled_features(features, labels, [0.2, 0.0, 0.8], 100))  # seeded
    with pytest.raises(ValueError, match="sum to 1"):
        sq.class_resampled_features(features, labels, [0.5, 0.0, 0.8], 100)
    with pytest.raises(ValueError, match="no real examples"):
        sq.class_resampled_features(features[:100], labels[:100], [0.2, 0.0, 0.8], 100)


def test_nearest_neighbours_find_copies():
    rng = np.random.default_rng(4)
    train = rng.integers(0, 256, (500, 28, 28, 1)).astype(np.uint8)
    idx = np.array([3, 400, 77])
    found, dist = sq.nearest_neighbours(train[idx], train, chunk=128)
    np.testing.assert_array_equal(found, idx)
    np.testing.assert_allclose(dist, 0.0, atol=1e-2)
    noisy = np.clip(train[idx].astype(int) + 3, 0, 255).astype(np.uint8)
    found, dist = sq.nearest_neighbours(noisy, train, chunk=128)
    np.testing.assert_array_equal(found, idx)
    assert np.all(dist > 0)


def test_nearest_neighbour_figure(tmp_path):
    train = np.random.default_rng(5).integers(0, 256, (50, 28, 28, 1)).astype(np.uint8)
    stats = sq.save_nearest_neighbour_figure(tmp_path / "nn.png", train[:8], train, pairs_per_row=4)
    from PIL import Image

    img = Image.open(tmp_path / "nn.png")
    assert img.size == ((8 * 30 + 2) * 2, (2 * 30 + 2) * 2)  # 2 rows of 4 pairs, 28 px + 2 px pad, x2
    assert stats["nn_min_l2"] < 1e-2


def _tiny_data(n=256):
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 10, n).astype(np.int32)
    images = np.zeros((n, 28, 28, 1), np.uint8)
    for i, y in enumerate(labels):  # a bright bar whose row encodes the label: easy to learn
        images[i, 2 + 2 * y: 4 + 2 * y, 4:24] = 255
    return {"image": images, "label": labels}


def test_classifier_trains_saves_and_loads_without_retraining(tmp_path, monkeypatch):
    data = _tiny_data()
    model = classifier_lib.MNISTClassifier(channels=(4,), features=8)
    clf = classifier_lib.train_classifier(data, data, num_steps=60, batch_size=32, learning_rate=1e-2, model=model)
    assert clf.info["test_accuracy"] > 0.5  # learnt something in 60 steps on an easy task
    logits, feats = clf.outputs(data["image"][:10])
    assert logits.shape == (10, 10) and feats.shape == (10, 8)
    np.testing.assert_allclose(clf.probs(data["image"][:5]).sum(1), 1.0, rtol=1e-10)

    classifier_lib.save_classifier(clf, tmp_path)
    loaded = classifier_lib.load_classifier(tmp_path, min_accuracy=0.0)
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded.params, clf.params)
    np.testing.assert_array_equal(loaded.predict(data["image"]), clf.predict(data["image"]))

    # a cache recording less than 99% test accuracy is refused
    info = json.loads((tmp_path / classifier_lib.INFO_FILE).read_text())
    (tmp_path / classifier_lib.INFO_FILE).write_text(json.dumps({**info, "test_accuracy": 0.98}))
    with pytest.raises(ValueError, match="below the required"):
        classifier_lib.load_classifier(tmp_path)
    # a cached classifier that passed the bar is loaded, never retrained
    (tmp_path / classifier_lib.INFO_FILE).write_text(json.dumps({**info, "test_accuracy": 0.995}))

    def no_training(*a, **k):
        raise AssertionError("get_classifier retrained a cached classifier")

    monkeypatch.setattr(classifier_lib, "train_classifier", no_training)
    again = classifier_lib.get_classifier(tmp_path)
    jax.tree_util.tree_map(np.testing.assert_array_equal, again.params, clf.params)

    with pytest.raises(FileNotFoundError, match="no trained MNIST classifier"):
        classifier_lib.get_classifier(tmp_path / "empty", train_if_missing=False)
    with pytest.raises(FileNotFoundError, match="reference statistics"):
        sq.load_reference_stats(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"\[N, 28, 28, 1\]"):
        clf.outputs(np.zeros((2, 28, 28), np.uint8))


def test_synthetic_data_uses_the_in_memory_smoke_test_classifier(tmp_path, monkeypatch):
    """data_dir="synthetic": a tiny classifier trained in memory, nothing read from or cached in the classifier dir."""
    monkeypatch.setenv("GM_JAX_CLASSIFIER_DIR", str(tmp_path / "cache"))
    clf, (mean, cov) = classifier_lib.classifier_and_reference(None, "synthetic")
    assert "smoke_test" in clf.info and not (tmp_path / "cache").exists()
    assert mean.shape == (classifier_lib.SMOKE_TEST["features"],) and cov.shape == (len(mean), len(mean))
    assert np.isfinite(clf.info["real_test_vs_train_mnist_fid"]) and 1.0 <= clf.info["real_test_mnist_is"] <= 10.0
    assert classifier_lib.classifier_and_reference(None, "synthetic")[0] is clf  # once per process
