import time

import jax
import numpy as np
import pytest

from gm_jax import data


def test_mnist_splits_decode_to_uint8_arrays(mnist_dir):
    test = data.load_split("mnist", "test")
    assert test["image"].shape == (10_000, 28, 28, 1) and test["image"].dtype == np.uint8
    assert test["image"].max() == 255 and test["image"].min() == 0
    assert test["label"].shape == (10_000,) and test["label"].dtype == np.int32
    assert set(np.unique(test["label"])) == set(range(10))
    assert data.load_split("mnist", "test") is test  # decoded once per process


def test_binarized_mnist_is_the_fixed_binarization(binarized_mnist_dir):
    sizes = {s: len(data.load_split("binarized_mnist", s)["image"]) for s in ("train", "validation", "test")}
    assert sizes == {"train": 50_000, "validation": 10_000, "test": 10_000}
    x = data.load_split("binarized_mnist", "test")["image"]
    assert x.dtype == np.uint8 and set(np.unique(x)) == {0, 1}
    assert 0.1 < x.mean() < 0.2  # MNIST strokes cover ~13% of pixels


def test_unknown_dataset_or_split_is_a_value_error(binarized_mnist_dir):
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'; valid choices"):
        data.load_split("cifar10", "train")
    with pytest.raises(ValueError, match=r"no split 'validation'; valid choices: \['train', 'test'\]"):
        data.load_split("mnist", "validation")


def test_missing_dataset_names_it_and_every_directory_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env_dir"))
    searched = data.candidate_data_dirs()
    assert searched[0] == tmp_path / "env_dir"
    t0 = time.perf_counter()
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load_split("binarized_mnist", "train", data_dir=tmp_path / "empty")
    assert time.perf_counter() - t0 < 5  # no hang, no download attempt
    msg = str(info.value)
    assert "'binarized_mnist'" in msg and str(tmp_path / "empty") in msg and "download_and_prepare" in msg
    assert isinstance(info.value, FileNotFoundError)
    # Without an explicit dir the error lists every candidate (when the dataset is nowhere).
    monkeypatch.setattr(data.datasets, "candidate_data_dirs", lambda d=None: [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(data.DatasetNotFoundError, match=f"{tmp_path / 'a'}, {tmp_path / 'b'}"):
        data.find_data_dir("mnist")


def test_explicit_data_dir_is_the_only_one_searched(tmp_path):
    assert data.candidate_data_dirs(tmp_path) == [tmp_path]


def test_train_batches_are_fixed_size_reproducible_and_resumable():
    arrays = {"image": np.arange(23)[:, None], "label": np.arange(23)}
    gen = data.train_batches(arrays, 5, seed=3)
    first = [next(gen) for _ in range(10)]  # 4 batches per epoch, 2.5 epochs
    assert all(b["image"].shape == (5, 1) for b in first)
    assert all(np.array_equal(b["image"][:, 0], b["label"]) for b in first)  # features stay aligned
    epoch0 = np.concatenate([b["label"] for b in first[:4]])
    assert len(set(epoch0)) == 20  # no repeats within an epoch
    again = data.train_batches(arrays, 5, seed=3, start_step=6)
    for b in first[6:]:
        np.testing.assert_array_equal(next(again)["label"], b["label"])
    other = next(data.train_batches(arrays, 5, seed=4))
    assert not np.array_equal(other["label"], first[0]["label"])
    with pytest.raises(ValueError, match="batch_size must be in"):
        next(data.train_batches(arrays, 24, seed=0))


def test_eval_batches_cover_every_example_once():
    arrays = {"x": np.arange(11)}
    out = np.concatenate([b["x"] for b in data.eval_batches(arrays, 4)])
    np.testing.assert_array_equal(out, np.arange(11))


def test_dynamic_binarize_draws_bernoulli_with_p_equal_x_over_255():
    images = np.full((2000, 4, 4, 1), 64, np.uint8)
    images[1000:] = 255
    out = data.dynamic_binarize(jax.random.key(0), images)
    assert out.dtype == np.uint8 and set(np.unique(np.asarray(out))) == {0, 1}
    assert abs(float(out[:1000].mean()) - 64 / 255) < 0.02
    assert float(out[1000:].min()) == 1
    assert not np.array_equal(out, data.dynamic_binarize(jax.random.key(1), images))


def test_toy_densities_lie_on_their_support_and_are_seeded():
    from gm_jax.data import toy

    n = 4000
    ring = toy.ring_of_gaussians(np.random.default_rng(0), n, num_modes=8, radius=2.0, std=0.05)
    d = np.linalg.norm(ring[:, None, :] - toy.ring_centers(8, 2.0)[None], axis=-1)
    assert ring.shape == (n, 2) and ring.dtype == np.float32
    assert np.mean(d.min(1) < 3 * 0.05) > 0.98  # chi(2) beyond 3 sigma: 1.1%
    assert np.all(np.bincount(d.argmin(1), minlength=8) > n / 8 * 0.8)  # every mode, near-equal weights

    moons = toy.two_moons(np.random.default_rng(0), n, noise=0.02, scale=1.5)
    upper, lower = toy.moon_curves(4000, scale=1.5)
    curve = np.concatenate([upper, lower])
    dist = np.sqrt(((moons[:, None, :] - curve[None]) ** 2).sum(-1)).min(1)
    assert np.mean(dist < 3 * 0.02) > 0.98

    board = toy.checkerboard(np.random.default_rng(0), n)
    col, row = np.floor(board[:, 0] + 2).astype(int), np.floor(board[:, 1] + 2).astype(int)
    assert np.all(np.abs(board) <= 2) and np.all((row - col) % 2 == 0)  # black squares only
    counts = np.bincount(4 * row + col, minlength=16)
    assert np.sum(counts > 0) == 8 and counts.max() < 1.3 * n / 8  # all 8 black squares, uniform

    for draw in (toy.ring_of_gaussians, toy.two_moons, toy.checkerboard):  # a pure function of the generator's seed
        assert np.array_equal(draw(np.random.default_rng(3), 10), draw(np.random.default_rng(3), 10))
