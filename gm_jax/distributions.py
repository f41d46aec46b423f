"""Log-likelihood terms and analytic KL divergences, all in nats.

Every function reduces over the trailing `event_ndims` axes (the dimensions of
one example) and keeps the leading batch axes, so `log_prob(x)` of a batch of
images [B, H, W, C] is [B].
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax

LOG_2PI = math.log(2.0 * math.pi)


def _sum_event(x: jax.Array, event_ndims: int) -> jax.Array:
    return jnp.sum(x, axis=tuple(range(x.ndim - event_ndims, x.ndim))) if event_ndims else x


def bernoulli_log_prob(logits: jax.Array, x: jax.Array, event_ndims: int = 3) -> jax.Array:
    """log Bernoulli(x | sigmoid(logits)) in nats, computed from logits.

    `x * logits - softplus(logits)`, which equals `x log p + (1-x) log(1-p)`
    without forming p, so it is finite for every finite logit.

    Args:
      logits: float [..., *event] logits of p(x = 1).
      x: [..., *event] values in {0, 1} (any real dtype; cast to logits' dtype).
      event_ndims: trailing axes summed over (3 for [H, W, C] images).

    Returns:
      float [...]: log-probability per example, nats.
    """
    x = jnp.asarray(x, logits.dtype)
    return _sum_event(x * logits - jax.nn.softplus(logits), event_ndims)


def diag_gaussian_log_prob(
    x: jax.Array, mean: jax.Array, log_var: jax.Array, event_ndims: int = 1
) -> jax.Array:
    """log N(x | mean, diag(exp(log_var))) in nats.

    Args:
      x, mean, log_var: float arrays broadcastable to [..., *event].
      event_ndims: trailing axes summed over.

    Returns:
      float [...]: log-density per example, nats.
    """
    return _sum_event(-0.5 * (LOG_2PI + log_var + jnp.square(x - mean) * jnp.exp(-log_var)), event_ndims)


def standard_normal_log_prob(x: jax.Array, event_ndims: int = 1) -> jax.Array:
    """log N(x | 0, I) in nats, summed over the trailing `event_ndims` axes."""
    return _sum_event(-0.5 * (LOG_2PI + jnp.square(x)), event_ndims)


def kl_diag_gaussian_standard_normal(mean: jax.Array, log_var: jax.Array, event_ndims: int = 1) -> jax.Array:
    """KL( N(mean, diag(exp(log_var))) || N(0, I) ) in nats, analytically.

    Kingma & Welling 2014, Appendix B:
    `-1/2 * sum(1 + log_var - mean^2 - exp(log_var))`.

    Args:
      mean, log_var: float [..., *event].
      event_ndims: trailing axes summed over.

    Returns:
      float [...], non-negative, nats.
    """
    return _sum_event(-0.5 * (1.0 + log_var - jnp.square(mean) - jnp.exp(log_var)), event_ndims)


def categorical_log_prob(logits: jax.Array, x: jax.Array, event_ndims: int = 3) -> jax.Array:
    """log Categorical(x | softmax(logits)) in nats (e.g. the 256-way softmax of PixelRNN/PixelCNN).

    van den Oord et al. 2016a ("Pixel Recurrent Neural Networks", Sec. 2.2):
    each 8-bit sub-pixel value is one of 256 classes.

    Args:
      logits: float [..., *event, K] unnormalised log-probabilities.
      x: integer [..., *event] class indices in [0, K) (not checked inside jit;
        `gm_jax.Model.log_prob` and the experiments check values beforehand).
      event_ndims: trailing axes of `x` summed over (3 for [H, W, C] images).

    Returns:
      float [...]: log-probability per example, nats.
    """
    # logits[x] - logsumexp(logits): optax's form, whose backward pass (softmax - one_hot) is one fused pass;
    # log_softmax then take_along_axis materialises the [..., K] log-probabilities and a scattered one-hot.
    picked = -optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(x, jnp.int32))
    return _sum_event(picked, event_ndims)


def _log_sigmoid_difference(a: jax.Array, b: jax.Array, width: jax.Array) -> jax.Array:
    """log(sigmoid(a) - sigmoid(b)) for a = b + width, width > 0, stable for all finite inputs.

    Uses the identity sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(-width)), so
    every factor is taken in log space without cancellation: no tiny-difference branch is needed.
    """
    return jax.nn.log_sigmoid(a) + jax.nn.log_sigmoid(-b) + jnp.log(-jnp.expm1(-width))


DLM_LOG_SCALE_RANGE = (-7.0, 30.0)
DLM_MEAN_RANGE = (-1e4, 1e4)


def _dlm_channel_means(means: jax.Array, coeffs: jax.Array | None, xs: jax.Array) -> jax.Array:
    """Means of the C channels after the linear dependence on earlier channels (PixelCNN++ Sec. 2.2).

    means [..., C, K]; coeffs [..., C(C-1)/2, K] (raw, tanh applied here) ordered
    (c1<-c0), (c2<-c0), (c2<-c1), ...; xs [..., C] channel values scaled to [-1, 1].
    """
    c = means.shape[-2]
    if c == 1 or coeffs is None:
        return means
    coeffs = jnp.tanh(coeffs)
    out, j = [means[..., 0, :]], 0
    for ch in range(1, c):
        m = means[..., ch, :]
        for prev in range(ch):
            m = m + coeffs[..., j, :] * xs[..., prev, None]
            j += 1
        out.append(m)
    return jnp.stack(out, axis=-2)


def discretized_logistic_mixture_log_prob(
    x: jax.Array,
    logit_weights: jax.Array,
    means: jax.Array,
    log_scales: jax.Array,
    coeffs: jax.Array | None = None,
    num_values: int = 256,
    event_ndims: int = 2,
) -> jax.Array:
    """log p(x) of the discretized logistic mixture of PixelCNN++, in nats.

    Salimans et al. 2017, Eq. 2: a pixel value x in {0, .., num_values-1} is
    mapped to [-1, 1] and receives the mass of a K-component logistic mixture on
    the bin [x - 1/(num_values-1), x + 1/(num_values-1)], with the edge bins x = 0
    and x = num_values-1 extended to -inf / +inf, so the num_values
    probabilities sum to exactly 1. Channels c > 0 of one pixel have means shifted
    linearly by the earlier channels' values (Sec. 2.2, with tanh coefficients).

    Numerics (the care of the openai/pixel-cnn appendix code, without its
    approximation): the edge bins use log_sigmoid; interior bins use
    log(sigmoid(a) - sigmoid(b)) = log_sigmoid(a) + log_sigmoid(-b) + log(1 - exp(-(a - b))),
    which stays exact for tiny CDF differences (huge scales) and for far tails.
    log_scales are clipped to [-7, 30] and means to [-1e4, 1e4] (part of the
    parameterisation: every clipped distribution is still normalised), so the
    result is finite for every finite input.

    Args:
      x: integer [..., C] pixel values in [0, num_values) (not checked inside jit).
      logit_weights: float [..., K] mixture logits (shared by the C channels).
      means: float [..., C, K] component means in the [-1, 1] scale.
      log_scales: float [..., C, K] component log scales.
      coeffs: float [..., C(C-1)/2, K] raw channel coupling coefficients, or None (C = 1).
      num_values: number of discrete values (256 for 8-bit data).
      event_ndims: axes of the per-pixel result summed over (2 for [H, W] of a
        [..., H, W, C] image; the channel axis is always reduced).

    Returns:
      float [...]: log-probability per example, nats.
    """
    half = 1.0 / (num_values - 1)
    xi = jnp.asarray(x, jnp.int32)
    xs = xi.astype(means.dtype) * (2.0 * half) - 1.0  # [..., C] in [-1, 1]
    log_scales = jnp.clip(log_scales, *DLM_LOG_SCALE_RANGE)
    means = jnp.clip(_dlm_channel_means(jnp.clip(means, *DLM_MEAN_RANGE), coeffs, xs), *DLM_MEAN_RANGE)
    inv_s = jnp.exp(-log_scales)
    centered = xs[..., None] - means
    plus_in = inv_s * (centered + half)
    min_in = inv_s * (centered - half)
    log_cdf_plus = jax.nn.log_sigmoid(plus_in)  # x = 0: log F(x + half)
    log_one_minus_cdf_min = jax.nn.log_sigmoid(-min_in)  # x = max: log (1 - F(x - half))
    log_mid = _log_sigmoid_difference(plus_in, min_in, inv_s * (2.0 * half))
    xk = xi[..., None]
    log_probs = jnp.where(xk == 0, log_cdf_plus, jnp.where(xk == num_values - 1, log_one_minus_cdf_min, log_mid))
    per_pixel = jax.nn.logsumexp(log_probs.sum(axis=-2) + jax.nn.log_softmax(logit_weights, axis=-1), axis=-1)
    return _sum_event(per_pixel, event_ndims)


def discretized_logistic_mixture_sample(
    key: jax.Array,
    logit_weights: jax.Array,
    means: jax.Array,
    log_scales: jax.Array,
    coeffs: jax.Array | None = None,
    num_values: int = 256,
) -> jax.Array:
    """Exact draw from the distribution of `discretized_logistic_mixture_log_prob`.

    Picks a component (Gumbel-max), draws each channel in order from its
    logistic (means shifted by the earlier channels' drawn values), and rounds
    to the nearest bin, clipping to the edge bins (which hold the tails).

    Args:
      key: PRNG key.
      logit_weights [..., K], means [..., C, K], log_scales [..., C, K],
      coeffs [..., C(C-1)/2, K] or None: as in the log-prob.

    Returns:
      int32 [..., C] values in [0, num_values).
    """
    k_comp, k_logistic = jax.random.split(key)
    comp = jax.random.categorical(k_comp, logit_weights, axis=-1)  # [...]
    onehot = jax.nn.one_hot(comp, logit_weights.shape[-1], dtype=means.dtype)[..., None, :]
    log_scales = jnp.clip(log_scales, *DLM_LOG_SCALE_RANGE)
    means = jnp.clip(means, *DLM_MEAN_RANGE)
    c = means.shape[-2]
    u = jax.random.uniform(k_logistic, means.shape[:-1], means.dtype)  # [0, 1): u = 0 lands in bin 0
    noise = jnp.log(u) - jnp.log1p(-u)
    half = 1.0 / (num_values - 1)
    values, scaled = [], []
    j = 0
    tc = None if coeffs is None else jnp.tanh(coeffs)
    for ch in range(c):
        m = means[..., ch, :]
        for prev in range(ch):
            m = m + tc[..., j, :] * scaled[prev][..., None]
            j += 1
        m = jnp.sum(m * onehot[..., 0, :], axis=-1)
        s = jnp.exp(jnp.sum(log_scales[..., ch, :] * onehot[..., 0, :], axis=-1))
        v = jnp.clip(jnp.round((m + s * noise[..., ch] + 1.0) / (2.0 * half)), 0, num_values - 1)
        values.append(v.astype(jnp.int32))
        scaled.append(v * (2.0 * half) - 1.0)
    return jnp.stack(values, axis=-1)


def nats_to_bits(nats, num_dims: int = 1):
    """A negative log-likelihood in nats (per example) as bits per dimension: nats / (num_dims ln 2).

    Used for bits/dim of images (num_dims = H W C), bits/char of text
    (num_dims = characters) and bits per audio sample. Works on floats and arrays.
    """
    return nats / (num_dims * math.log(2.0))
