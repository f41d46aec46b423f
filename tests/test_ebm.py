"""Energy-based model: Langevin sampler, bad step sizes, CD update with replay buffer (single vs pmap), API."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax import config as config_lib
from gm_jax.models import ebm
from gm_jax.training import TrainStep
from gm_jax.training.loop import run_keys, train_and_evaluate

TINY = dict(hidden=(16, 16), langevin_steps=5, sample_steps=20, buffer_size=256, batch_size=32,
            num_eval_samples=200, min_mode_samples=5)


def test_non_positive_step_size_is_value_error():
    quad = lambda x: 0.5 * jnp.sum(x**2, -1)  # noqa: E731
    for eps in (0.0, -0.1):
        with pytest.raises(ValueError, match="step size must be positive"):
            ebm.langevin(quad, jnp.zeros((4, 2)), jax.random.key(0), eps, 10)
        with pytest.raises(ValueError, match=r"config\.step_size of ebm_toy must be > 0"):  # the config's schema
            gm_jax.api.build("ebm_toy", step_size=eps)
    with pytest.raises(ValueError, match="noise scale"):
        ebm.langevin(quad, jnp.zeros((4, 2)), jax.random.key(0), 0.1, 10, noise_scale=-1.0)
    with pytest.raises(ValueError, match="number of Langevin steps"):
        ebm.langevin(quad, jnp.zeros((4, 2)), jax.random.key(0), 0.1, 0)
    with pytest.raises(ValueError, match=r"config\.langevin_steps of ebm_toy must be an int >= 1"):
        gm_jax.api.build("ebm_toy", langevin_steps=0)


def test_langevin_samples_standard_normal():
    """E(x) = |x|^2 / 2: SGLD targets N(0, I) (stationary variance 1 / (1 - eps / 4) for the discretised chain)."""
    quad = lambda x: 0.5 * jnp.sum(x**2, -1)  # noqa: E731
    eps = 0.05
    x = np.asarray(jax.jit(lambda k: ebm.langevin(quad, jnp.full((4000, 2), 3.0), k, eps, 400))(jax.random.key(0)))
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.06)
    np.testing.assert_allclose(x.var(0), 1 / (1 - eps / 4), rtol=0.08)
    # no noise: gradient descent into the minimum
    y = ebm.langevin(quad, jnp.full((3, 2), 3.0), jax.random.key(0), eps, 400, noise_scale=0.0)
    np.testing.assert_allclose(np.asarray(y), 0.0, atol=1e-3)
    # same key, same chains
    z1 = ebm.langevin(quad, jnp.zeros((5, 2)), jax.random.key(3), eps, 10)
    z2 = ebm.langevin(quad, jnp.zeros((5, 2)), jax.random.key(3), eps, 10)
    np.testing.assert_array_equal(np.asarray(z1), np.asarray(z2))


def test_cd_update_lowers_data_energy_and_fills_buffer():
    experiment = gm_jax.api.build("ebm_toy", **{**TINY, "langevin_steps": 20}, learning_rate=3e-3)
    state = experiment.init_state(run_keys(0)["init"])
    buffer0 = np.asarray(state.buffer)
    step = TrainStep(experiment.update, "none")
    state = step.put_state(state)
    batches = experiment.train_batches()
    for i in range(200):
        state, metrics = step(state, next(batches), jax.random.key(i))
    assert np.isfinite(float(metrics["loss"]))
    changed = np.any(np.asarray(state.buffer) != buffer0, axis=1)
    assert 0.5 * 256 < changed.sum() <= 256  # 200 x 32 writes into 256 slots
    data = experiment.draw_data(np.random.default_rng(1), 500)
    noise = np.asarray(experiment.noise(jax.random.key(1), 500))
    e_data = np.asarray(experiment.energy(state.params, data))
    e_noise = np.asarray(experiment.energy(state.params, noise))
    ranked = np.mean(e_data[:, None] < e_noise[None, :])  # P(E(data) < E(noise)); 0.5 at random
    assert ranked > 0.8 and e_data.mean() < e_noise.mean() - 0.5, (ranked, e_data.mean(), e_noise.mean())


def test_update_same_under_pmap_and_sharded():
    experiment = gm_jax.api.build("ebm_toy", **TINY)
    init = experiment.init_state(run_keys(0)["init"])
    batch = next(experiment.train_batches())
    out = {}
    for parallel in ("none", "pmap", "sharded"):
        step = TrainStep(experiment.update, parallel)
        s, m = step(step.put_state(jax.tree_util.tree_map(np.array, init)), batch, jax.random.key(5))
        s = step.get_state(s)
        out[parallel] = (s.params, np.asarray(s.buffer), float(m["loss"]))
    # per-chain keys: the same chains, gradient and buffer writes on 1 or 4 devices
    assert np.any(out["none"][1] != np.asarray(init.buffer))
    for parallel in ("pmap", "sharded"):
        np.testing.assert_allclose(out[parallel][2], out["none"][2], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(out[parallel][1], out["none"][1], rtol=1e-4, atol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(out[parallel][0]), jax.tree_util.tree_leaves(out["none"][0])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_ebm_toy_run_load_energy_and_no_log_prob(tmp_path):
    experiment = gm_jax.api.build("ebm_toy", **TINY, num_steps=10, checkpoint_every=10, log_every=5,
                                  progress_bar=False)
    results = train_and_evaluate(experiment, tmp_path)
    assert 0 <= results["high_quality_fraction"] <= 1 and 0 <= results["modes_covered"] <= 8
    assert np.isfinite(results["grid_test_log_likelihood_nats"])
    for f in results["figures"]:
        assert (tmp_path / f).stat().st_size > 1000
    model = gm_jax.load(tmp_path)
    x = model.sample(jax.random.key(0), 16)
    assert x.shape == (16, 2) and x.dtype == jnp.float32
    assert np.all(np.abs(np.asarray(x)) <= experiment.config.box)
    e = model.experiment.energy(model.params, x)
    assert e.shape == (16,) and np.all(np.isfinite(np.asarray(e)))
    with pytest.raises(NotImplementedError, match="intractable"):
        model.log_prob(np.asarray(x))


def _mnist_tiny(**overrides):
    from experiments import ebm_mnist
    return gm_jax.api.build("ebm_mnist", ebm_mnist.get_test_config(), **overrides)


def test_short_run_negatives_start_from_noise_not_the_buffer():
    """negatives="short_run" (Nijkamp et al. 2019): the update does not read the buffer; "replay" does."""
    out = {}
    for negatives in ("short_run", "replay"):
        experiment = gm_jax.api.build("ebm_toy", **TINY, negatives=negatives, reinit_prob=0.0)
        state = jax.tree_util.tree_map(np.array, experiment.init_state(run_keys(0)["init"]))
        batch = next(experiment.train_batches())
        step = TrainStep(experiment.update, "none")
        params = []
        for buffer in (state.buffer, np.ones_like(state.buffer)):
            s, _ = step(step.put_state(jax.tree_util.tree_map(np.array, state.replace(buffer=buffer))), batch,
                        jax.random.key(1))
            params.append(jax.tree_util.tree_leaves(step.get_state(s).params))
        out[negatives] = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(*params))
    assert out["short_run"] == 0.0 and out["replay"] > 0.0, out


def test_pca_gmm_initial_distribution():
    """init="pca_gmm": p0 draws a GMM component's PCA coordinates and decodes them to images in [0, 1]."""
    from experiments import ebm_mnist
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(784, 3)))[0].T.astype(np.float32)  # orthonormal rows
    means = np.array([[4.0, 0.0, 0.0], [0.0, -4.0, 0.0]], np.float32)
    setup = {"pca_mean": np.full(784, 0.5, np.float32), "pca_basis": basis, "gmm_means": means,
             "gmm_logits": np.log(np.array([0.25, 0.75], np.float32)),
             "gmm_covs": np.tile(1e-8 * np.eye(3, dtype=np.float32), (2, 1, 1))}
    config = config_lib.apply_overrides(ebm_mnist.get_test_config(), {"init": "pca_gmm", "init_pca_dim": 3})
    experiment = ebm_mnist.Experiment.with_data_setup(config, setup)
    x = np.asarray(jax.jit(lambda k: experiment.noise(k, 400))(jax.random.key(0))).reshape(400, 784)
    decoded = np.clip(0.5 + means @ basis, 0.0, 1.0)  # the two components' images
    dist = np.abs(x[:, None, :] - decoded[None]).max(-1)  # [400, 2]
    assert np.all(dist.min(1) < 1e-3)  # every draw is one component decoded
    share = np.mean(dist.argmin(1) == 1)
    assert 0.65 < share < 0.85, share  # in proportion to the weights 0.25 / 0.75
    with pytest.raises(ValueError, match=r"config\.init=.*valid choices"):
        gm_jax.api.build("ebm_mnist", init="gaussian")


def test_complete_keeps_observed_pixels_and_checks_masks():
    experiment = _mnist_tiny(sample_steps=3, init="uniform")
    params = experiment.init_params(jax.random.key(0))
    x = experiment._split("test")["image"][:3]
    mask = np.zeros((28, 28), bool)
    mask[:14] = True  # top half observed
    y = np.asarray(experiment.complete(params, jax.random.key(1), x, mask))
    assert y.shape == x.shape and y.dtype == np.uint8
    np.testing.assert_array_equal(y[:, :14], x[:, :14])
    assert np.any(y[:, 14:] != x[:, 14:])
    with pytest.raises(ValueError, match="mask must have shape"):
        experiment.complete(params, jax.random.key(1), x, np.ones((27, 28), bool))
    with pytest.raises(ValueError, match="mask must be bool or hold only 0 / 1"):
        experiment.complete(params, jax.random.key(1), x, np.full((28, 28), 0.5))
    with pytest.raises(ValueError, match="empty mask"):
        experiment.complete(params, jax.random.key(1), x, np.zeros((28, 28), bool))
    with pytest.raises(ValueError, match="every pixel observed"):
        experiment.complete(params, jax.random.key(1), x, np.ones((28, 28), bool))
    with pytest.raises(ValueError, match=r"images \[N >= 1, 28, 28, 1\]"):
        experiment.complete(params, jax.random.key(1), x[:, :20], mask)
    with pytest.raises(ValueError, match="floats in \\[0, 1\\]"):
        experiment.complete(params, jax.random.key(1), x.astype(np.float32), mask)  # 0..255 floats
