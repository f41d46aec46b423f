"""Generic ancestral sampling from categorical logits: temperature, top-k, nucleus (top-p).

Every autoregressive sequence model of the library draws token `t` as

    x_t ~ Categorical(softmax(filter(logits_t / temperature)))

with the key `fold_in(key, t)` (`t` the absolute position of the drawn token
in the sequence), so two samplers that compute the same logits (e.g. a
Transformer with and without its KV cache) draw the same tokens.

* temperature: logits are divided by `temperature` (> 0); < 1 sharpens, > 1 flattens.
* top-k (Fan et al. 2018): only the `k` largest logits are kept (`k = 0`: all).
  Ties at the k-th value are all kept.
* nucleus / top-p (Holtzman et al. 2020, Sec. 3.1): the smallest set of tokens,
  most probable first, whose probability sums to at least `p` is kept
  (`p = 1`: all). The most probable token is always kept.

All functions are jittable with traced `temperature`, `top_k` and `top_p`
(the filters use a sort, not `lax.top_k`, so `k` need not be static).

`Static` wraps a hashable Python value (a sequence length) so that it passes
through `jax.jit` as static pytree structure rather than as a traced array;
experiments return it from `check_conditioning` for arguments that fix a
shape (`static_value` unwraps it, or returns a plain value unchanged).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class Static:
    """A hashable Python value carried through `jax.jit` as static (a pytree with no leaves)."""

    value: Any


def static_value(x):
    """`x.value` for a `Static`, `x` otherwise."""
    return x.value if isinstance(x, Static) else x


def check_sampling_args(length, temperature, top_k, top_p) -> None:
    """Validate concrete sampling arguments.

    Raises:
      ValueError: `length` not an int >= 1, `temperature` <= 0, `top_k` < 0 or
        not an int, `top_p` outside (0, 1].
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int (tokens to generate), got {length!r}")
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 = no top-k filter), got {top_k!r}")
    if not 0.0 < float(top_p) <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1 = no nucleus filter), got {top_p!r}")


def filter_logits(logits: jax.Array, temperature=1.0, top_k=0, top_p=1.0) -> jax.Array:
    """Temperature-scaled logits with the tokens outside top-k / the nucleus set to -inf.

    Args:
      logits: float [..., V] unnormalised log-probabilities.
      temperature: float > 0 (scalar, may be traced).
      top_k: int >= 0, 0 disables the filter (scalar, may be traced).
      top_p: float in (0, 1], 1 disables the filter (scalar, may be traced).

    Returns:
      float32 [..., V]: logits / temperature, -inf where filtered out.
    """
    logits = jnp.asarray(logits, jnp.float32) / jnp.asarray(temperature, jnp.float32)
    v = logits.shape[-1]
    sorted_desc = -jnp.sort(-logits, axis=-1)
    # top-k: keep logits >= the k-th largest (k = 0 or k >= V keeps everything)
    k = jnp.clip(jnp.asarray(top_k, jnp.int32), 0, v)
    kth = jnp.take_along_axis(sorted_desc, jnp.broadcast_to(jnp.maximum(k - 1, 0), logits.shape[:-1])[..., None],
                              axis=-1)
    logits = jnp.where((k > 0) & (logits < kth), -jnp.inf, logits)
    # nucleus: keep the most probable tokens while the mass before them is < p
    sorted_desc = -jnp.sort(-logits, axis=-1)
    probs = jax.nn.softmax(sorted_desc, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep_sorted = mass_before < jnp.asarray(top_p, jnp.float32)
    # the smallest kept logit is the threshold (the first sorted entry is always kept)
    threshold = jnp.min(jnp.where(keep_sorted, sorted_desc, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits < threshold, -jnp.inf, logits)


def sample_logits(key: jax.Array, logits: jax.Array, temperature=1.0, top_k=0, top_p=1.0) -> jax.Array:
    """Draw one token per row of `logits` after `filter_logits`.

    Args:
      key: PRNG key.
      logits: float [..., V].

    Returns:
      int32 [...] token ids.
    """
    return jax.random.categorical(key, filter_logits(logits, temperature, top_k, top_p), axis=-1).astype(jnp.int32)


def ancestral_sample(
    step_fn: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]],
    state,
    prompt: jax.Array,
    length: int,
    key: jax.Array,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
) -> jax.Array:
    """Ancestral sampling of a model with a carried state (RNN, n-gram, cached Transformer).

    One `lax.scan` over positions `0 .. P + length - 2`: at position `i` the
    model reads token `x_i` (`state, x_i, i -> logits [N, V], state`); the
    next token `x_{i+1}` is the prompt's while `i + 1 < P`, otherwise drawn
    from the logits with key `fold_in(key, i + 1)`. The prompt is thus read
    with the same step (no re-reading of the prefix later: the state carries it).

    Args:
      step_fn: `(state, tokens int32 [N], position int32 scalar) -> (logits float [N, V], state)`.
      state: the initial state pytree.
      prompt: int32 [N, P], P >= 1.
      length: number of new tokens (static int >= 1).
      key: PRNG key.

    Returns:
      int32 [N, P + length]: the prompt followed by the drawn tokens.
    """
    prompt = jnp.asarray(prompt, jnp.int32)
    n, p = prompt.shape
    total = p + length
    buf = jnp.zeros((n, total), jnp.int32).at[:, :p].set(prompt)

    def body(carry, i):
        state, buf = carry
        logits, state = step_fn(state, buf[:, i], i)
        drawn = sample_logits(jax.random.fold_in(key, i + 1), logits, temperature, top_k, top_p)
        nxt = jnp.where(i + 1 < p, buf[:, jnp.minimum(i + 1, total - 1)], drawn)
        buf = jax.lax.dynamic_update_slice(buf, nxt[:, None], (0, i + 1))
        return (state, buf), None

    (_, buf), _ = jax.lax.scan(body, (state, buf), jnp.arange(total - 1))
    return buf
