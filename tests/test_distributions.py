import jax
import jax.numpy as jnp
import numpy as np

from gm_jax import distributions as dist


def test_bernoulli_log_prob_matches_explicit_formula():
    logits = jax.random.normal(jax.random.key(0), (3, 4, 4, 1)) * 3
    x = jax.random.bernoulli(jax.random.key(1), 0.5, logits.shape)
    p = jax.nn.sigmoid(logits)
    expected = jnp.sum(jnp.where(x, jnp.log(p), jnp.log1p(-p)), axis=(1, 2, 3))
    np.testing.assert_allclose(dist.bernoulli_log_prob(logits, x), expected, rtol=1e-5)


def test_bernoulli_log_prob_finite_for_extreme_logits():
    logits = jnp.array([[-1e4, 1e4, -80.0, 80.0]])
    x = jnp.array([[1, 0, 0, 1]])
    out = dist.bernoulli_log_prob(logits, x, event_ndims=1)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, [-2e4], rtol=1e-6)


def test_diag_gaussian_log_prob_matches_numpy():
    rng = np.random.default_rng(0)
    x, mean, log_var = rng.normal(size=(3, 5, 7))
    expected = np.sum(-0.5 * np.log(2 * np.pi) - 0.5 * log_var - 0.5 * (x - mean) ** 2 / np.exp(log_var), -1)
    np.testing.assert_allclose(dist.diag_gaussian_log_prob(x, mean, log_var), expected, rtol=1e-5)
    np.testing.assert_allclose(dist.standard_normal_log_prob(x),
                               dist.diag_gaussian_log_prob(x, 0.0, jnp.zeros_like(x)), rtol=1e-6)


def test_kl_matches_monte_carlo_estimate():
    mean = jnp.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
    log_var = jnp.array([[-1.0, 0.5, 0.0], [1.0, -2.0, 0.2]])
    n = 400_000
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(jax.random.key(0), (n, *mean.shape))
    log_ratio = dist.diag_gaussian_log_prob(z, mean, log_var) - dist.standard_normal_log_prob(z)
    mc, stderr = log_ratio.mean(0), log_ratio.std(0) / np.sqrt(n)
    analytic = dist.kl_diag_gaussian_standard_normal(mean, log_var)
    assert np.all(np.abs(mc - analytic) < 5 * stderr + 1e-4), (mc, analytic, stderr)
    assert np.all(analytic > 0)
    np.testing.assert_allclose(dist.kl_diag_gaussian_standard_normal(jnp.zeros(4), jnp.zeros(4)), 0.0, atol=1e-7)
