"""Log-likelihood terms and analytic KL divergences, all in nats.

Every function reduces over the trailing `event_ndims` axes (the dimensions of
one example) and keeps the leading batch axes, so `log_prob(x)` of a batch of
images [B, H, W, C] is [B].
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

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
