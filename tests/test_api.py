"""The notebook API on vae_mnist: create, sample, log_prob and their input checks."""
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax

TINY = dict(hidden=(32,), latent_dim=4, iwae_k=8)


@pytest.fixture(scope="module")
def model():
    return gm_jax.create("vae_mnist", seed=0, **TINY)


def test_create_builds_a_fresh_model(model):
    assert isinstance(model, gm_jax.Model)
    assert model.step == 0 and model.config.latent_dim == 4 and model.config.hidden == (32,)
    again = gm_jax.create("vae_mnist", seed=0, **TINY)
    jax.tree_util.tree_map(np.testing.assert_array_equal, model.params, again.params)
    other = gm_jax.create("vae_mnist", seed=1, **TINY)
    flat = lambda m: np.concatenate([np.ravel(v) for v in jax.tree_util.tree_leaves(m.params)])
    assert not np.array_equal(flat(model), flat(other))


def test_sample_shape_dtype_range_and_determinism(model):
    x = model.sample(jax.random.key(1), 16)
    assert x.shape == (16, 28, 28, 1) and x.dtype == jnp.uint8
    assert set(np.unique(np.asarray(x))) <= {0, 1}
    np.testing.assert_array_equal(x, model.sample(jax.random.key(1), 16))
    assert not np.array_equal(x, model.sample(jax.random.key(2), 16))
    legacy = model.sample(jax.random.PRNGKey(1), 16)  # raw uint32[2] keys are accepted too
    assert legacy.shape == (16, 28, 28, 1)


def test_log_prob_per_example_nats(model):
    x = model.sample(jax.random.key(3), 5)
    lp = model.log_prob(x, key=jax.random.key(4))
    assert lp.shape == (5,) and lp.dtype == jnp.float32
    assert np.all(np.isfinite(lp)) and np.all(lp < 0)
    np.testing.assert_array_equal(lp, model.log_prob(np.asarray(x).astype(bool), key=jax.random.key(4)))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((5, 28, 28), np.uint8), r"shape \[N, 28, 28, 1\] holding .*; got shape \(5, 28, 28\)"),
    (np.zeros((5, 28, 28, 3), np.uint8), r"got shape \(5, 28, 28, 3\)"),
    (np.zeros((5, 28, 28, 1), np.float32), "integer.*got dtype float32"),
    (np.full((5, 28, 28, 1), 2, np.uint8), r"values in \{0, 1\}; got values in \[2, 2\]"),
])
def test_log_prob_rejects_bad_input(model, bad, match):
    with pytest.raises(ValueError, match=match):
        model.log_prob(bad, key=jax.random.key(0))


def test_log_prob_of_many_examples_runs_in_batches(model):
    small = gm_jax.create("vae_mnist", seed=0, eval_batch_size=4, **TINY)
    x = small.sample(jax.random.key(5), 10)
    lp = small.log_prob(x, key=jax.random.key(6))
    assert lp.shape == (10,) and np.all(np.isfinite(lp))
    np.testing.assert_array_equal(lp[:4], small.log_prob(x[:4], key=jax.random.key(6)))  # batch 0 uses fold_in(key, 0)


def test_log_prob_needs_a_key(model):
    with pytest.raises(ValueError, match="needs a PRNG key"):
        model.log_prob(np.zeros((2, 28, 28, 1), np.uint8))


def test_sample_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match="single PRNG key"):
        model.sample(jax.random.split(jax.random.key(0), 2), 4)
    with pytest.raises(ValueError, match="single PRNG key"):
        model.sample(np.float32(3.0), 4)
    for n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive int"):
            model.sample(jax.random.key(0), n)
    with pytest.raises(ValueError, match=r"takes no conditioning \['labels'\]"):
        model.sample(jax.random.key(0), 4, labels=np.arange(4))


def test_unknown_experiment_and_config_key_list_valid_choices():
    with pytest.raises(ValueError, match=r"unknown experiment 'vae_cifar'; valid choices: .*vae_mnist"):
        gm_jax.create("vae_cifar")
    with pytest.raises(ValueError, match=r"unknown config key 'latnet_dim' for vae_mnist; valid keys: .*latent_dim"):
        gm_jax.create("vae_mnist", latnet_dim=3)
    with pytest.raises(ValueError, match=r"parallel='gpu'.*'none', 'pmap', 'sharded'"):
        gm_jax.create("vae_mnist", parallel="gpu")
    with pytest.raises(ValueError, match=r"config.dataset='cifar10'"):
        gm_jax.create("vae_mnist", dataset="cifar10")
    with pytest.raises(ValueError, match="num_steps"):
        gm_jax.create("vae_mnist", num_steps="many")


def test_command_line_rejects_unknown_config_key(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.vae_mnist", "--workdir", str(tmp_path), "--config.nmu_steps=5"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "unknown config key 'nmu_steps' for vae_mnist; valid keys:" in proc.stderr
    assert "num_steps" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "config.json").exists()  # failed at start-up, wrote nothing
