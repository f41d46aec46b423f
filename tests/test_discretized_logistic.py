"""Discretized logistic mixture (Salimans et al. 2017, Eq. 2) and the 256-way categorical.

Property tests (hypothesis) over random parameters, including the 0 / 255 edges,
tiny CDF differences (huge scales) and extreme scales and means: the log-probabilities
of all 256 values are finite and the probabilities sum to 1.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st

from gm_jax import distributions as dist

VALUES = jnp.arange(256)

finite_means = st.one_of(st.floats(-1.5, 1.5), st.floats(-1e30, 1e30), st.sampled_from([-1.0, 1.0, 0.0, 0.999, -0.999]))
log_scales = st.one_of(st.floats(-20.0, 20.0), st.floats(-1e6, 1e6), st.sampled_from([-7.0, -100.0, 30.0, 88.0, 500.0]))


def _all_values_log_probs(lw, means, ls, coeffs=None):
    """log p of every value 0..255 of a 1-channel pixel with K components -> [256]."""
    k = len(lw)
    return dist.discretized_logistic_mixture_log_prob(
        VALUES[:, None], jnp.broadcast_to(jnp.asarray(lw, jnp.float32), (256, k)),
        jnp.broadcast_to(jnp.asarray(means, jnp.float32), (256, 1, k)),
        jnp.broadcast_to(jnp.asarray(ls, jnp.float32), (256, 1, k)), event_ndims=0)


_jitted = jax.jit(_all_values_log_probs)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 4).flatmap(lambda k: st.tuples(
    st.lists(st.floats(-30, 30), min_size=k, max_size=k),
    st.lists(finite_means, min_size=k, max_size=k),
    st.lists(log_scales, min_size=k, max_size=k))))
def test_mixture_is_finite_and_normalised(params):
    lw, means, ls = params
    lp = np.asarray(_jitted(np.float32(lw), np.float32(means), np.float32(ls)))
    assert np.isfinite(lp).all(), (params, lp[~np.isfinite(lp)])
    assert abs(np.exp(lp.astype(np.float64)).sum() - 1.0) < 1e-4, (params, np.exp(lp).sum())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1.2, 1.2), min_size=3, max_size=3), st.lists(st.floats(-7.0, 3.0), min_size=3, max_size=3),
       st.lists(st.floats(-3.0, 3.0), min_size=3, max_size=3), st.integers(0, 255), st.integers(0, 255))
def test_three_channel_pixel_is_normalised_over_blue(means, log_scales, coeffs, red, green):
    """One component, coupled RGB: summing p(r, g, b) over b gives p(r) p(g | r), each a 1-channel
    distribution with the mean shifted by tanh(coeff) * x (Salimans et al. 2017, Sec. 2.2)."""
    x = jnp.stack([jnp.full(256, red), jnp.full(256, green), VALUES], -1)  # [256, 3]
    m = jnp.broadcast_to(jnp.float32(means)[:, None], (256, 3, 1))
    ls = jnp.broadcast_to(jnp.float32(log_scales)[:, None], (256, 3, 1))
    c = jnp.broadcast_to(jnp.float32(coeffs)[:, None], (256, 3, 1))
    lp = np.asarray(dist.discretized_logistic_mixture_log_prob(x, jnp.zeros((256, 1)), m, ls, c, event_ndims=0))
    assert np.isfinite(lp).all()
    xr = red / 127.5 - 1.0
    lp_r = _all_values_log_probs([0.0], [means[0]], [log_scales[0]])[red]
    lp_g = _all_values_log_probs([0.0], [means[1] + math.tanh(coeffs[0]) * xr], [log_scales[1]])[green]
    np.testing.assert_allclose(float(jax.nn.logsumexp(lp)), float(lp_r + lp_g), rtol=1e-4, atol=1e-4)


def test_matches_logistic_cdf_differences_in_float64():
    """Interior and edge bins equal sigmoid differences computed in float64."""
    mean, log_scale = 0.1, -3.0
    lp = np.asarray(_all_values_log_probs([0.0], [mean], [log_scale]), np.float64)
    xs = np.arange(256) / 127.5 - 1.0
    s = math.exp(log_scale)
    sig = lambda t: 1.0 / (1.0 + np.exp(-t))  # noqa: E731
    upper = np.where(np.arange(256) == 255, 1.0, sig((xs + 1 / 255 - mean) / s))
    lower = np.where(np.arange(256) == 0, 0.0, sig((xs - 1 / 255 - mean) / s))
    expected = np.log(upper - lower)
    big = expected > -30
    np.testing.assert_allclose(lp[big], expected[big], rtol=1e-4, atol=1e-5)


def test_tiny_cdf_difference_is_exact_not_approximated():
    """A huge scale gives bins of mass ~ width / (4 s): log p must match log(width / (4 s))."""
    log_scale = 20.0
    lp = np.asarray(_all_values_log_probs([0.0], [0.0], [log_scale]))
    expected = math.log((2 / 255) / (4 * math.exp(log_scale)))
    np.testing.assert_allclose(lp[1:255], expected, rtol=1e-5)


def test_edges_hold_the_tails():
    """A component centred far outside [-1, 1] puts (almost) all mass on the edge bin."""
    lp = np.asarray(_all_values_log_probs([0.0], [50.0], [-2.0]))
    assert lp[255] > -1e-6 and lp[0] < -100
    lp = np.asarray(_all_values_log_probs([0.0], [-50.0], [-2.0]))
    assert lp[0] > -1e-6 and lp[255] < -100


def test_gradients_are_finite_at_extremes():
    def f(means, ls):
        return _all_values_log_probs(jnp.zeros(2), means, ls).sum()

    for m, s in [([1e30, -1e30], [-100.0, 100.0]), ([0.0, 1.0], [-7.0, 30.0]), ([0.999, -1.0], [-50.0, 1e6])]:
        g = jax.grad(f, argnums=(0, 1))(jnp.array(m), jnp.array(s))
        assert all(np.isfinite(np.asarray(x)).all() for x in g)


def test_sampler_matches_probabilities():
    """Empirical frequencies of `discretized_logistic_mixture_sample` follow the log-probs."""
    lw, means, ls = jnp.array([0.3, -0.2]), jnp.array([-0.5, 0.6]), jnp.array([-2.0, -2.5])
    n = 100_000
    x = dist.discretized_logistic_mixture_sample(jax.random.key(0), jnp.broadcast_to(lw, (n, 2)),
                                                jnp.broadcast_to(means, (n, 1, 2)), jnp.broadcast_to(ls, (n, 1, 2)))
    assert x.shape == (n, 1) and int(x.min()) >= 0 and int(x.max()) <= 255
    freq = np.bincount(np.asarray(x[:, 0]), minlength=256) / n
    p = np.exp(np.asarray(_all_values_log_probs(lw, means, ls)))
    # compare on 16 coarse bins of 16 values
    np.testing.assert_allclose(freq.reshape(16, 16).sum(1), p.reshape(16, 16).sum(1), atol=0.01)


def test_categorical_log_prob_is_normalised_and_picks_the_value():
    logits = jax.random.normal(jax.random.key(0), (2, 3, 3, 1, 256)) * 5
    x = jax.random.randint(jax.random.key(1), (2, 3, 3, 1), 0, 256)
    lp = dist.categorical_log_prob(logits, x)
    expected = np.sum(np.take_along_axis(np.asarray(jax.nn.log_softmax(logits)), np.asarray(x)[..., None], -1), (1, 2, 3, 4))
    np.testing.assert_allclose(lp, expected, rtol=1e-5)
    all_values = dist.categorical_log_prob(logits[0, 0, 0, 0][None].repeat(256, 0), jnp.arange(256), event_ndims=0)
    assert abs(float(jnp.exp(all_values).sum()) - 1.0) < 1e-5


def test_log_prob_sums_over_pixels():
    """[N, H, W, C] input with event_ndims=2 gives [N]: the sum of per-pixel log-probs."""
    x = jax.random.randint(jax.random.key(2), (2, 4, 4, 1), 0, 256)
    lw = jax.random.normal(jax.random.key(3), (2, 4, 4, 3))
    means = jax.random.normal(jax.random.key(4), (2, 4, 4, 1, 3)) * 0.5
    ls = jax.random.normal(jax.random.key(5), (2, 4, 4, 1, 3)) - 2
    total = dist.discretized_logistic_mixture_log_prob(x, lw, means, ls)
    per_pixel = dist.discretized_logistic_mixture_log_prob(x, lw, means, ls, event_ndims=0)
    assert total.shape == (2,) and per_pixel.shape == (2, 4, 4)
    np.testing.assert_allclose(total, per_pixel.sum((1, 2)), rtol=1e-5)
