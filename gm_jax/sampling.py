"""The one autoregressive sampler core of the library: `draw` and `ancestral`.

Every autoregressive model (PixelCNN family, WaveNet, Transformer, RNN/LSTM,
n-gram) factorises p(x) = prod_i p(x_i | x_<i) over positions i in a fixed
order and samples ancestrally through `ancestral`: one loop over positions
that asks the model's `step(cache, x, i)` for the distribution of x_i (its
logits, computed from the values drawn so far and the model's cache) and draws
x_i with `draw` and the key `fold_in(key, i)`, `i` the absolute position in
the flattened sequence. So two samplers that compute the same logits (naive:
the whole network per position; cached: O(1) new work per position) draw the
same values from the same key.

`draw` draws from categorical logits

    x_i ~ Categorical(softmax(filter(logits_i / temperature)))

or from independent Bernoulli logits (`event="bernoulli"`: x = 1 with
probability sigmoid(logit / temperature)).

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
import numpy as np


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class Static:
    """A hashable Python value carried through `jax.jit` as static (a pytree with no leaves)."""

    value: Any


def static_value(x):
    """`x.value` for a `Static`, `x` otherwise."""
    return x.value if isinstance(x, Static) else x


# Positions of a sequence are int32 (the `ancestral` loop index, `fold_in(key, i)`, the buffer offsets), so
# a sampled sequence holds at most this many positions, the given ones (a prompt, a start frame) included.
MAX_POSITIONS = 2**31 - 1


def check_sampling_args(length, temperature, top_k, top_p, given: int = 0) -> None:
    """Validate concrete sampling arguments.

    Args:
      length: positions to generate, an int in [1, MAX_POSITIONS - given].
      temperature, top_k, top_p: see `filter_logits`.
      given: positions before the generated ones in the same buffer (the
        prompt's P, or 1 for a start frame).

    Raises:
      ValueError: `length` not an int >= 1 or above `MAX_POSITIONS - given`,
        `temperature` <= 0, `top_k` < 0 or not an int, `top_p` outside (0, 1].
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive int (tokens to generate), got {length!r}")
    if length > MAX_POSITIONS - given:
        raise ValueError(f"length must be <= {MAX_POSITIONS - given:,} (sequence positions are int32: at most "
                         f"2**31 - 1 = {MAX_POSITIONS:,}, {given} of them given), got {length:,}")
    if not float(temperature) > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an int >= 0 (0 = no top-k filter), got {top_k!r}")
    if not 0.0 < float(top_p) <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1 = no nucleus filter), got {top_p!r}")


def _is_python_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


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
    if _is_python_number(top_k) and top_k == 0 and _is_python_number(top_p) and top_p >= 1.0:
        return logits  # both filters off, known at trace time: skip the two sorts (same values)
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
    # top_p >= 1 keeps every token: the float32 cumulative sum can reach 1.0 before the tail
    top_p = jnp.asarray(top_p, jnp.float32)
    keep_sorted = (mass_before < top_p) | (top_p >= 1.0)
    # the smallest kept logit is the threshold (the first sorted entry is always kept)
    threshold = jnp.min(jnp.where(keep_sorted, sorted_desc, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits < threshold, -jnp.inf, logits)


EVENTS = ("categorical", "bernoulli")


def draw(key: jax.Array, logits: jax.Array, temperature=1.0, top_k=0, top_p=1.0,
         event: str = "categorical") -> jax.Array:
    """Draw from logits after temperature / top-k / top-p filtering (`filter_logits`).

    Args:
      key: PRNG key.
      logits: float [..., V] for `event="categorical"` (one draw per row), or
        float [...] of independent Bernoulli logits for `event="bernoulli"`.
      temperature: float > 0, divides the logits.
      top_k, top_p: categorical filters (see `filter_logits`); a Bernoulli draw
        takes only the defaults (0 and 1).
      event: "categorical" or "bernoulli" (static).

    Returns:
      int32 [...]: token ids in [0, V) (categorical) or values in {0, 1} (Bernoulli).

    Raises:
      ValueError: unknown `event`.
    """
    if event == "categorical":
        return jax.random.categorical(key, filter_logits(logits, temperature, top_k, top_p), axis=-1).astype(jnp.int32)
    if event == "bernoulli":
        logits = jnp.asarray(logits, jnp.float32) / jnp.asarray(temperature, jnp.float32)
        return jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(jnp.int32)
    raise ValueError(f"unknown event {event!r}; valid choices: {list(EVENTS)}")


def ancestral(
    step: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]],
    cache,
    x: jax.Array,
    key: jax.Array,
    start: int,
    stop: int | None = None,
    given: int = 0,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    event: str = "categorical",
    draw_fn: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
):
    """Ancestral sampling: for i = start .. stop - 1, x_i ~ p(x_i | x_<i) from `step`, key `fold_in(key, i)`.

    One `lax.fori_loop` over positions. At position i the model's step reads
    the buffer and its cache and returns the distribution of x_i:
    `step(cache, x, i) -> (logits, cache)`. x_i is then drawn with
    `draw(fold_in(key, i), logits, temperature, top_k, top_p, event)` (or
    `draw_fn(fold_in(key, i), logits)` for other output distributions, e.g. a
    discretized logistic mixture) and written to `x[:, i]`, except at the
    positions i < `given`, which keep the value already in `x` (a prompt that
    the step still reads, e.g. to advance an RNN state).

    Args:
      step: `(cache, x [N, L, ...], i int32 scalar) -> (logits, cache)`: a
        model's naive (whole network) or cached (O(1) new work) step.
      cache: the initial cache pytree (None for a naive step).
      x: [N, L, *event_shape] buffer of the sequence in sampling order
        (pixels in raster order, tokens, audio samples); positions < start
        (and < given) hold the given values.
      key: PRNG key.
      start: first position visited (static int >= 0).
      stop: one past the last position (static int <= L; default L).
      given: positions below it are not overwritten (static int).
      temperature, top_k, top_p, event: see `draw`.
      draw_fn: `(key, logits) -> values [N, *event_shape]` replacing `draw`.

    Returns:
      (x, cache): the filled buffer (dtype of `x`) and the final cache.
    """
    stop = x.shape[1] if stop is None else stop

    def body(i, carry):
        cache, x = carry
        logits, cache = step(cache, x, i)
        k = jax.random.fold_in(key, i)
        value = draw_fn(k, logits) if draw_fn is not None else draw(k, logits, temperature, top_k, top_p, event)
        value = value.astype(x.dtype)
        if given > start:
            value = jnp.where(i < given, jax.lax.dynamic_index_in_dim(x, i, 1, keepdims=False), value)
        x = jax.lax.dynamic_update_index_in_dim(x, value, i, 1)
        return cache, x

    cache, x = jax.lax.fori_loop(start, stop, body, (cache, x))
    return x, cache


def completion_mask(mask, x_shape):
    """The one check of a completion (inpainting) mask: which pixels of images of shape `x_shape` are observed.

    Every completion of the library (the autoregressive models' raster completion, the VAE's pseudo-Gibbs
    chain, the EBM's Langevin on the missing pixels) keeps the observed pixels and samples the others.

    Args:
      mask: bool, or integers / floats with values in {0, 1} (True / 1 = observed), of shape [N, H, W, C]
        (= `x_shape`), or [H, W, C] / [H, W] (the same mask for every image / and channel).
      x_shape: the images' shape (N, H, W, C).

    Returns:
      bool [N, H, W, C]: a NumPy array for a concrete mask; under `jax.jit` (a traced mask) a jax array,
      whose shape and dtype are checked but not its values.

    Raises:
      ValueError: another shape or dtype, values other than 0 / 1, an image with no observed pixel (an
        empty mask: nothing to condition on, use `sample`) or with every pixel observed (nothing to complete).
    """
    n, h, w, c = tuple(x_shape)
    shape = tuple(np.shape(mask))
    if shape not in ((n, h, w, c), (h, w, c), (h, w)):
        raise ValueError(f"mask must have shape [{n}, {h}, {w}, {c}] (the images'), [{h}, {w}, {c}] or [{h}, {w}] "
                         f"(one mask for every image), got {list(shape)}")
    dtype = np.dtype(mask.dtype) if hasattr(mask, "dtype") else np.asarray(mask).dtype
    if not (dtype == np.bool_ or np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise ValueError(f"mask must be bool or hold only 0 / 1 (1 = observed), got dtype {dtype}")
    if isinstance(mask, jax.core.Tracer):
        m = jnp.asarray(mask).astype(bool)
        return jnp.broadcast_to(m[..., None] if m.ndim == 2 else m, (n, h, w, c))
    m = np.asarray(mask)
    if dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"mask must be bool or hold only 0 / 1 (1 = observed), got dtype {dtype} with values "
                             f"{np.unique(m)[:5].tolist()}")
        m = m.astype(bool)
    m = np.broadcast_to(m[..., None] if m.ndim == 2 else m, (n, h, w, c))
    flat = m.reshape(n, -1)
    if not flat.any(1).all():
        raise ValueError(f"empty mask: image(s) {np.flatnonzero(~flat.any(1))[:5].tolist()} have no observed "
                         "pixel (nothing to condition on; use sample)")
    if flat.all(1).any():
        raise ValueError(f"image(s) {np.flatnonzero(flat.all(1))[:5].tolist()} have every pixel observed "
                         "(nothing to complete)")
    return np.ascontiguousarray(m)
