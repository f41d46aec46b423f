"""Adversarial autoencoder (gm_jax.models.aae): each phase moves only its player, the mixture prior's
components, the MMD^2 two-sample statistic (gm_jax.evaluation.two_sample), and bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax.evaluation import two_sample
from gm_jax.models import aae

IMAGE = (4, 4, 1)  # tiny images: the phases do not depend on the image size


def _tiny(prior_kind="mixture_labels"):
    prior = aae.Prior(prior_kind, 2)
    return aae.build((8,), (8,), prior, IMAGE, 1e-2, 1e-2, 0.5)


def _batch(n=8):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 2, (n, *IMAGE)), jnp.float32)
    labels = jnp.asarray(np.r_[np.arange(n - 1) % 10, -1], jnp.int32)  # the last one unlabelled
    return x, labels, jax.random.split(jax.random.key(1), n)


def _changed(before, after) -> dict:
    """{name: whether any leaf of params[name] differs}."""
    return {k: any(not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(before.params[k]),
                                                             jax.tree_util.tree_leaves(after.params[k])))
            for k in before.params}


def _same_tree(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_each_phase_changes_only_its_player():
    """With the label-conditioned prior (the widest path: labels into D and the prior; the Gaussian prior runs
    in the contract test)."""
    model = _tiny()
    x, labels, keys = _batch()
    state = jax.jit(model.init)(jax.random.key(0))

    @jax.jit
    def phases(state):
        s1, m1 = model.reconstruction_phase(state, x)
        s2, m2 = model.discriminator_phase(s1, x, labels, keys)
        s3, m3 = model.generator_phase(s2, x, labels)
        s4, m4 = model.update(state, x, labels, keys)
        return (s1, s2, s3, s4), {**m1, **m2, **m3}, m4, model.reconstruction_nll(state.params, x)

    (s1, s2, s3, s4), metrics, update_metrics, nll = phases(state)
    assert _changed(state, s1) == {"encoder": True, "decoder": True, "discriminator": False}
    assert _same_tree(state.d_opt_state, s1.d_opt_state) and _same_tree(state.g_opt_state, s1.g_opt_state)
    assert _changed(s1, s2) == {"encoder": False, "decoder": False, "discriminator": True}
    assert _same_tree(s1.ae_opt_state, s2.ae_opt_state) and _same_tree(s1.g_opt_state, s2.g_opt_state)
    assert _changed(s2, s3) == {"encoder": True, "decoder": False, "discriminator": False}
    assert _same_tree(s2.ae_opt_state, s3.ae_opt_state) and _same_tree(s2.d_opt_state, s3.d_opt_state)
    # update = the three phases in order, and one step
    assert int(s4.step) == 1 and _same_tree(s4.params, s3.params)
    assert set(update_metrics) == {"loss", "recon", "d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(float(v)) for v in update_metrics.values())
    np.testing.assert_allclose(update_metrics["recon"], metrics["recon"], rtol=1e-6)
    # the reconstruction loss is the mean Bernoulli NLL (nats per image) of the decoded codes
    assert nll.shape == (8,)
    np.testing.assert_allclose(metrics["recon"], nll.mean(), rtol=1e-5)


def test_mixture_prior_components():
    prior = aae.Prior("mixture", 3, radius=4.0, std_radial=1.0, std_tangential=0.25)
    labels = jnp.asarray(np.arange(5000) % 10, jnp.int32)
    gaussian = aae.Prior("gaussian", 2)

    @jax.jit  # one compilation for every draw
    def draws():
        return (prior.sample_n(jax.random.key(0), 5000, labels), prior.sample_n(jax.random.key(1), 5000),
                gaussian.sample_n(jax.random.key(2), 4000), prior.means())

    z, marginal, g, means = map(np.asarray, draws())
    assert means.shape == (10, 3)
    np.testing.assert_allclose(np.linalg.norm(means[:, :2], axis=1), 4.0, rtol=1e-6)
    nearest = np.argmin(((z[:, None, :2] - means[None, :, :2]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == np.asarray(labels)) > 0.99
    for k in (0, 3, 7):
        zk = z[np.asarray(labels) == k]
        np.testing.assert_allclose(zk.mean(0), means[k], atol=0.1)
        ray = means[k, :2] / 4.0
        radial, across = zk[:, :2] @ ray, zk[:, :2] @ np.array([-ray[1], ray[0]])
        np.testing.assert_allclose([radial.std(), across.std(), zk[:, 2].std()], [1.0, 0.25, 1.0], rtol=0.15)
    # the marginal (no labels) uses every component about equally; -1 = a uniformly drawn component
    share = np.bincount(np.argmin(((marginal[:, None, :2] - means[None, :, :2]) ** 2).sum(-1), 1), minlength=10) / 5000
    assert share.min() > 0.07 and share.max() < 0.13
    np.testing.assert_allclose([g.mean(), g.std()], [0.0, 1.0], atol=0.05)


def test_mmd_same_and_shifted():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    h = two_sample.median_heuristic(np.concatenate([x, y]))
    assert abs(two_sample.mmd2(x, y, h)) < 0.01
    assert two_sample.mmd2(x, y + np.array([1.0, 0.0]), h) > 0.1
    # the unbiased formula against a direct double loop, and the biased one is >= 0
    a, b = rng.normal(size=(5, 2)), rng.normal(size=(6, 2)) + 0.3
    k = lambda u, v: np.exp(-np.sum((u - v) ** 2) / (2 * 0.7 ** 2))
    kxx = sum(k(a[i], a[j]) for i in range(5) for j in range(5) if i != j) / 20
    kyy = sum(k(b[i], b[j]) for i in range(6) for j in range(6) if i != j) / 30
    kxy = sum(k(a[i], b[j]) for i in range(5) for j in range(6)) / 30
    np.testing.assert_allclose(two_sample.mmd2(a, b, 0.7), kxx + kyy - 2 * kxy, rtol=1e-10)
    assert two_sample.mmd2(a, a + 1e-3, 0.7, unbiased=False) >= 0


def test_unbiased_mmd_has_mean_zero_under_the_null():
    rng = np.random.default_rng(1)
    u = np.array([two_sample.mmd2(rng.normal(size=(40, 2)), rng.normal(size=(40, 2)), 1.0) for _ in range(300)])
    v = np.array([two_sample.mmd2(rng.normal(size=(40, 2)), rng.normal(size=(40, 2)), 1.0, unbiased=False)
                  for _ in range(100)])
    assert abs(u.mean()) < 3 * u.std() / np.sqrt(len(u))  # unbiased: mean 0 within 3 standard errors
    assert v.mean() > 10 * v.std() / np.sqrt(len(v))  # the V-statistic is biased upwards


def test_mmd_to_prior_protocol():
    rng = np.random.default_rng(2)
    draw = lambda b, n: np.random.default_rng(100 + b).normal(size=(n, 2))
    same = two_sample.mmd2_to_prior(rng.normal(size=(2000, 2)), draw, batch_size=400, num_batches=5)
    shifted = two_sample.mmd2_to_prior(rng.normal(size=(2000, 2)) * 0.3, draw, batch_size=400, num_batches=5)
    assert len(same["mmd2_values"]) == 5 and same["mmd_batch_size"] == 400
    assert abs(same["mmd2_mean"]) < 3 * same["mmd2_std"] + 0.005
    assert shifted["mmd2_mean"] > 0.05 > 10 * shifted["mmd2_std"]
    # the bandwidth comes from the prior alone: ~ the median distance of two N(0, I) points, sqrt(2 * 2 ln 2)
    np.testing.assert_allclose(same["mmd_bandwidth"], np.sqrt(4 * np.log(2)), rtol=0.1)
    assert shifted["mmd_bandwidth"] == same["mmd_bandwidth"]


def test_bad_inputs():
    mix, gauss = aae.Prior("mixture_labels", 2), aae.Prior("gaussian", 2)
    keys = jax.random.split(jax.random.key(0), 3)
    with pytest.raises(ValueError, match=r"-1\.\.9"):
        mix.sample(keys, np.array([0, 1, 10]))
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        mix.sample(keys, np.array([0, 1]))
    with pytest.raises(ValueError, match="integers"):
        mix.sample(keys, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="no"):
        gauss.sample(keys, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        aae.Prior("mixture", 1)
    with pytest.raises(ValueError, match="unknown prior"):
        aae.Prior("uniform", 2)
    model = _tiny()
    x, labels, keys = _batch()
    with pytest.raises(ValueError, match="labels"):  # checked before the state is used
        model.update(None, x, None, keys)
    with pytest.raises(ValueError, match=r"-1\.\.9"):
        model.update(None, x, np.where(np.arange(8) == 0, 12, np.asarray(labels)), keys)
    with pytest.raises(ValueError, match="same dimension"):
        two_sample.mmd2(np.zeros((4, 2)), np.zeros((4, 3)), 1.0)
    with pytest.raises(ValueError, match=r"\[N >= 2, d\]"):
        two_sample.mmd2(np.zeros(4), np.zeros((4, 1)), 1.0)
    with pytest.raises(ValueError, match="bandwidth"):
        two_sample.mmd2(np.zeros((4, 2)), np.ones((4, 2)), 0.0)


def test_experiment_checks():
    labelled = gm_jax.build("aae_mnist", data_dir="synthetic", prior="mixture_labels")
    assert labelled.conditioning == ("labels",)
    assert labelled.check_conditioning(3, labels=[0, 5, 9])["labels"].dtype == np.int32
    for bad, what in (([0, 5, 10], r"0\.\.9"), ([0, 5], r"shape \[3\]"), ([[0, 1, 2]], r"shape \[3\]"),
                      ([0.5, 1, 2], "integers")):
        with pytest.raises(ValueError, match=what):
            labelled.check_conditioning(3, labels=bad)
    plain = gm_jax.build("aae_mnist", data_dir="synthetic")
    with pytest.raises(ValueError, match="labels"):
        plain.check_conditioning(3, labels=[0, 1, 2])
    with pytest.raises(NotImplementedError, match="no tractable"):
        plain.log_prob({}, np.zeros((1, 28, 28, 1), np.uint8), jax.random.key(0))
    with pytest.raises(ValueError, match="prior"):
        gm_jax.build("aae_mnist", prior="uniform")
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        gm_jax.build("aae_mnist", prior="mixture", latent_dim=1)


def test_gaussian_posterior_reparameterized_codes_in_every_phase():
    """posterior="gaussian": z = mu(x) + sigma(x) * eps with one eps per example shared by the three phases
    (from fold_in(keys[i], 1)); the generator phase's gradient reaches sigma (the log_var half of the encoder's
    last layer) through the reparameterization; eps=None gives the posterior mean."""
    model = aae.build((8,), (8,), aae.Prior("gaussian", 2), IMAGE, 1e-2, 1e-2, 0.5, posterior="gaussian")
    x, _, keys = _batch()
    state = jax.jit(model.init)(jax.random.key(0))

    @jax.jit
    def run(state):
        eps = model.posterior_noise(jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys))
        mean, log_var = model.encoder.apply({"params": state.params["encoder"]}, x)
        codes = (model.encode(state.params["encoder"], x, eps), model.encode(state.params["encoder"], x))
        s1, _ = model.reconstruction_phase(state, x, None, eps)
        s2, _ = model.discriminator_phase(s1, x, None, keys, None, eps)
        s3, _ = model.generator_phase(s2, x, None, None, eps)
        s4, _ = model.update(state, x, None, keys)
        return eps, mean, log_var, codes, (s2, s3, s4)

    eps, mean, log_var, (z, z_mean), (s2, s3, s4) = run(state)
    assert eps.shape == (8, 2) and abs(float(np.std(eps)) - 1.0) < 0.6
    np.testing.assert_allclose(z, mean + np.exp(0.5 * log_var) * eps, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(z_mean, mean)
    assert _same_tree(s4.params, s3.params)  # update = the three phases with that eps
    kernel = lambda s: np.asarray(s.params["encoder"]["Dense_1"]["kernel"])  # noqa: E731  [8, 2 * latent]
    assert not np.array_equal(kernel(s2)[:, 2:], kernel(s3)[:, 2:])  # the log_var columns moved in phase 2b
    assert model.posterior_noise(keys) is not None and _tiny().posterior_noise(keys) is None
    with pytest.raises(ValueError, match="posterior"):
        aae.build((8,), (8,), aae.Prior("gaussian", 2), IMAGE, 1e-2, 1e-2, 0.5, posterior="laplace")
