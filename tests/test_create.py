"""Instant `create`: the data-dependent setup is computed once (the user cache), kept with each run, and
never needed to load one; the jitted initialisation is the state training starts from."""
import contextlib

import jax
import numpy as np
import pytest

import gm_jax
from gm_jax import cache
from gm_jax.training import loop, rundir

NAME = "ngram_shakespeare"  # a text experiment: its setup is the vocabulary and the count tables


def _experiment(setup=None):
    from experiments import ngram_shakespeare

    return ngram_shakespeare.Experiment.with_data_setup(ngram_shakespeare.get_test_config(), setup)


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GM_JAX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_setup_is_computed_once_then_read_from_the_cache(user_cache, monkeypatch):
    first = _experiment()
    setup = first.data_setup
    assert sorted(setup) == sorted(first.setup_arrays) and setup["vocab"].dtype == np.uint32
    path = cache.setup_cache_path(NAME, first.setup_key())
    assert path.is_file() and path.parent == user_cache / "data_setup"

    def no_data(self):
        raise AssertionError("the setup was recomputed")

    with monkeypatch.context() as m:
        m.setattr(type(first), "compute_data_setup", no_data)
        again = _experiment()
        assert cache.setups_equal(again.data_setup, setup) and again.vocab.chars == first.vocab.chars
    path.write_bytes(path.read_bytes()[:100])  # a truncated cache entry is recomputed, not an error
    assert cache.setups_equal(_experiment().data_setup, setup)
    # another value of a config field the setup depends on: another entry
    assert cache.setup_cache_path(NAME, {**first.setup_key(), "order": 2}) != path


def test_a_run_keeps_its_setup_and_loads_without_it_in_the_cache(user_cache, tmp_path, monkeypatch):
    experiment = _experiment()
    workdir = tmp_path / "run"
    with contextlib.ExitStack() as stack:
        loop.open_run(experiment, workdir, stack)
    stored = cache.read_arrays(workdir / rundir.SETUP_FILE)
    assert cache.setups_equal(stored, experiment.data_setup)
    state = experiment.jit_init_state(loop.run_keys(experiment.config.seed)["init"])
    from gm_jax.training import checkpoint

    with checkpoint.Checkpointer(workdir) as ckpt:
        ckpt.save(1, jax.device_get(state), force=True)
    monkeypatch.setenv("GM_JAX_CACHE_DIR", str(tmp_path / "empty_cache"))  # another machine
    monkeypatch.setattr(type(experiment), "compute_data_setup", lambda self: pytest.fail("load recomputed"))
    loaded = gm_jax.load(workdir)
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded.params, experiment.params_of(state))
    assert loaded.experiment.vocab.chars == experiment.vocab.chars


def test_a_run_with_another_setup_or_a_corrupt_one_is_refused(user_cache, tmp_path):
    experiment = _experiment()
    workdir = tmp_path / "run"
    with contextlib.ExitStack() as stack:
        loop.open_run(experiment, workdir, stack)
    changed = dict(experiment.data_setup)
    changed["vocab"] = changed["vocab"][::-1].copy()
    cache.write_arrays(workdir / rundir.SETUP_FILE, changed)
    with pytest.raises(ValueError, match="differs from the one"), contextlib.ExitStack() as stack:
        loop.open_run(_experiment(), workdir, stack)
    (workdir / rundir.SETUP_FILE).write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable data setup"):
        gm_jax.load(workdir)
    with pytest.raises(ValueError, match="must hold the arrays"):
        _experiment({"vocab": np.arange(3, dtype=np.uint32)}).data_setup


def test_setup_files_hold_plain_arrays_only(tmp_path):
    with pytest.raises(ValueError, match="numbers or strings"):
        cache.write_arrays(tmp_path / "s.npz", {"bad": np.array([{"a": 1}], dtype=object)})
    cache.write_arrays(tmp_path / "s.npz", {"words": np.array(["a", "bc"]), "n": np.int64(3)})
    back = cache.read_arrays(tmp_path / "s.npz")
    assert back["words"].tolist() == ["a", "bc"] and int(back["n"]) == 3
    assert cache.read_arrays(tmp_path / "missing.npz") is None


def test_a_configured_compilation_cache_is_left_as_it_is(user_cache):
    configured = jax.config.jax_compilation_cache_dir  # the test session's (tests/conftest.py)
    assert configured and cache.enable_compilation_cache() == configured
    assert not (user_cache / "xla").exists()


def test_decoded_splits_are_cached_on_disk(user_cache, mnist_dir, monkeypatch):
    from gm_jax.data import datasets

    first = datasets._load_split_cached.__wrapped__("mnist", "test", str(mnist_dir))  # decodes, writes
    with monkeypatch.context() as m:
        m.setattr(datasets, "_decode_split", lambda *a: pytest.fail("decoded again"))
        again = datasets._load_split_cached.__wrapped__("mnist", "test", str(mnist_dir))
    assert sorted(again) == ["image", "label"] and not again["image"].flags.writeable
    for k in first:
        np.testing.assert_array_equal(again[k], first[k])
        assert again[k].dtype == first[k].dtype
    [entry] = (user_cache / "datasets").glob("mnist-test-*.npz")
    entry.write_bytes(b"corrupt")  # an unreadable entry is decoded again (and rewritten), not an error
    np.testing.assert_array_equal(datasets._load_split_cached.__wrapped__("mnist", "test", str(mnist_dir))["label"],
                                  first["label"])
    assert cache.read_arrays(entry)["label"].shape == first["label"].shape
