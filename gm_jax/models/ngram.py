"""Character n-gram language model: add-k and interpolated Kneser-Ney smoothing.

Counts are taken once in NumPy (`fit`) and stored as sorted integer tables,
a pytree of arrays; the conditional distributions are computed in JAX
(jittable, batched), so the model samples and scores like the neural models.

An n-gram `w_1..w_m` of token ids in [0, V) is stored by its id
`sum_i w_i V^(m - i)`; ids must fit int32, so `V^order < 2^31` (order <= 5
for the 65 characters of tiny_shakespeare).

Smoothing (Chen & Goodman 1999, "An empirical study of smoothing techniques
for language modeling"):

* add-k (Lidstone): p(w | h) = (c(h w) + k) / (c(h) + k V), h the last
  n - 1 tokens (Chen & Goodman Eq. 2 with delta = k).
* interpolated Kneser-Ney (Chen & Goodman Eq. 11-12, one discount per order):

      p_m(w | h) = max(c_m(h w) - D_m, 0) / c_m(h .) + D_m N1+(h .) / c_m(h .) * p_{m-1}(w | h'),

  with h' = h without its first token; c_n the raw counts at the highest
  order and c_m (m < n) the continuation counts N1+(. h w) (the number of
  distinct tokens preceding h w); p_0 = 1 / V (uniform, so characters never
  seen in training keep a non-zero probability); a context never seen
  (c_m(h .) = 0) passes p_{m-1} through. D_m = n1 / (n1 + 2 n2) from the
  numbers n1, n2 of m-grams counted once and twice (Ney et al. 1994, the
  estimate Chen & Goodman use). The discount must stay in (0, 1): when an
  order has no count of 1 (the estimate would be 0, so no mass would reach
  the uniform floor and unseen characters would get probability 0) or no
  count of 2 (the estimate would be 1), D_m = 0.5 (`FALLBACK_DISCOUNT`, the
  fixed value also used when both are absent).

Both give a proper distribution over the V tokens for any context (tested).
Near the start of a sequence (fewer than n - 1 tokens of context) the
highest usable order is the context length + 1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gm_jax import sampling

SMOOTHING = ("kneser_ney", "add_k")
_INT32_MAX = 2**31 - 1


def check_order(order: int, vocab_size: int) -> None:
    """Raises ValueError unless 1 <= order and vocab_size ** order fits int32."""
    if order < 1 or vocab_size < 1 or vocab_size**order > _INT32_MAX:
        raise ValueError(f"n-gram order must be >= 1 with vocab_size**order < 2**31; got order={order}, "
                         f"vocab_size={vocab_size}")


def _ngram_ids(tokens: np.ndarray, m: int, v: int) -> np.ndarray:
    ids = np.zeros(len(tokens) - m + 1, np.int64)
    for i in range(m):
        ids = ids * v + tokens[i: len(tokens) - m + 1 + i]
    return ids


FALLBACK_DISCOUNT = 0.5


def _discount(counts: np.ndarray) -> float:
    """D = n1 / (n1 + 2 n2), in (0, 1) when some count is 1 and some is 2; `FALLBACK_DISCOUNT` otherwise
    (n1 = 0 would give D = 0, so no mass would reach the lower orders and the uniform floor; n2 = 0 would
    give D = 1)."""
    n1, n2 = int(np.sum(counts == 1)), int(np.sum(counts == 2))
    return n1 / (n1 + 2 * n2) if n1 > 0 and n2 > 0 else FALLBACK_DISCOUNT


def fit(tokens, vocab_size: int, order: int, smoothing: str = "kneser_ney") -> dict:
    """Count the n-grams of a training token sequence.

    Args:
      tokens: int [T] ids in [0, vocab_size).
      vocab_size: V.
      order: n (the model conditions on n - 1 tokens).
      smoothing: `"kneser_ney"` or `"add_k"` (add-k needs only the top order).

    Returns:
      A pytree of arrays: for each order m (key `"m{m}"`) `ids` int32 [K_m]
      (sorted n-gram ids), `counts` float32 [K_m] (raw at the top order,
      continuation counts below), and `discount` float32 [] (Kneser-Ney).

    Raises:
      ValueError: bad order / smoothing, or ids out of range.
    """
    if smoothing not in SMOOTHING:
        raise ValueError(f"smoothing={smoothing!r}; valid choices: {list(SMOOTHING)}")
    check_order(order, vocab_size)
    tokens = np.asarray(tokens, np.int64).reshape(-1)
    if tokens.size < order or tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ValueError(f"fit needs at least {order} tokens with ids in [0, {vocab_size})")
    tables = {}
    top_ids, top_counts = np.unique(_ngram_ids(tokens, order, vocab_size), return_counts=True)
    tables[f"m{order}"] = (top_ids, top_counts)
    if smoothing == "kneser_ney":
        higher = top_ids
        for m in range(order - 1, 0, -1):  # continuation counts N1+(. w_1..w_m)
            ids, counts = np.unique(higher % vocab_size**m, return_counts=True)
            tables[f"m{m}"] = (ids, counts)
            higher = np.unique(_ngram_ids(tokens, m, vocab_size))  # all m-grams, for the next order down
    out = {}
    for k, (ids, counts) in tables.items():
        out[k] = {"ids": jnp.asarray(ids, jnp.int32), "counts": jnp.asarray(counts, jnp.float32),
                  "discount": jnp.asarray(_discount(counts), jnp.float32)}
    return out


def _rows(table: dict, ctx_ids: jax.Array, vocab_size: int) -> jax.Array:
    """Dense count rows c(h, .) float32 [B, V] for context ids [B] (rows of absent contexts are 0)."""
    ids, counts = table["ids"], table["counts"]
    lo = jnp.searchsorted(ids, ctx_ids * vocab_size, side="left")
    raw = lo[:, None] + jnp.arange(vocab_size)[None, :]
    idx = jnp.clip(raw, 0, ids.shape[0] - 1)
    got = ids[idx]
    hit = ((got // vocab_size) == ctx_ids[:, None]) & (raw < ids.shape[0])
    w = got % vocab_size
    vals = jnp.where(hit, counts[idx], 0.0)
    return jnp.zeros((ctx_ids.shape[0], vocab_size), jnp.float32).at[
        jnp.arange(ctx_ids.shape[0])[:, None], w].add(vals)


def probs(tables: dict, context: jax.Array, num_valid: jax.Array, vocab_size: int, order: int,
          smoothing: str = "kneser_ney", k: float = 1.0) -> jax.Array:
    """p(. | context) for a batch of contexts.

    Args:
      tables: from `fit`.
      context: int32 [B, order - 1], the most recent token last (left-padded).
      num_valid: int32 [B], how many of the last context tokens are real (0..order-1).
      vocab_size, order, smoothing: as in `fit` (static).
      k: add-k pseudo-count (> 0).

    Returns:
      float32 [B, V], each row summing to 1.
    """
    context = jnp.asarray(context, jnp.int32)
    b = context.shape[0]
    context = context.reshape(b, order - 1)
    num_valid = jnp.broadcast_to(jnp.asarray(num_valid, jnp.int32), (b,))

    def ctx_id(m):  # id of the last m - 1 tokens
        cid = jnp.zeros((b,), jnp.int32)
        for j in range(order - m, order - 1):
            cid = cid * vocab_size + context[:, j]
        return cid

    if smoothing == "add_k":
        c = _rows(tables[f"m{order}"], ctx_id(order), vocab_size)
        c = jnp.where((num_valid >= order - 1)[:, None], c, 0.0)  # short contexts: no counts of that length
        return (c + k) / (c.sum(-1, keepdims=True) + k * vocab_size)
    p = jnp.full((b, vocab_size), 1.0 / vocab_size, jnp.float32)
    for m in range(1, order + 1):
        table = tables[f"m{m}"]
        c = _rows(table, ctx_id(m), vocab_size)
        total = c.sum(-1, keepdims=True)
        types = (c > 0).sum(-1, keepdims=True).astype(jnp.float32)
        d = table["discount"]
        safe = jnp.maximum(total, 1.0)
        mixed = jnp.maximum(c - d, 0.0) / safe + d * types / safe * p
        use = (total > 0) & (num_valid >= m - 1)[:, None]
        p = jnp.where(use, mixed, p)
    return p


def contexts(tokens: jax.Array, order: int) -> tuple[jax.Array, jax.Array]:
    """The context of every position of sequences tokens int [N, T]: int32 [N, T, order - 1] (left-padded
    with 0) and the number of real context tokens int32 [N, T] (min(t, order - 1))."""
    tokens = jnp.asarray(tokens, jnp.int32)
    n, t = tokens.shape
    padded = jnp.pad(tokens, ((0, 0), (order - 1, 0)))
    ctx = jnp.stack([padded[:, j: j + t] for j in range(order - 1)], axis=-1) if order > 1 else \
        jnp.zeros((n, t, 0), jnp.int32)
    return ctx, jnp.broadcast_to(jnp.minimum(jnp.arange(t), order - 1), (n, t)).astype(jnp.int32)


def next_token_probs(tables, inputs, vocab_size: int, order: int, smoothing="kneser_ney", k=1.0):
    """p(x_{t+1} = . | x_<=t) after every step t of inputs int [N, T]: float32 [N, T, V], rows summing to 1
    (`probs` of the contexts x_{t-order+2}..x_t)."""
    inputs = jnp.asarray(inputs, jnp.int32)
    ctx, valid = contexts(jnp.pad(inputs, ((0, 0), (0, 1))), order)  # positions 1..T read x_0..x_{T-1} only
    ctx, valid = ctx[:, 1:], valid[:, 1:]
    n, t = inputs.shape
    p = probs(tables, ctx.reshape(n * t, -1), valid.reshape(-1), vocab_size, order, smoothing, k)
    return p.reshape(n, t, vocab_size)


def token_log_probs(tables, inputs, targets, vocab_size: int, order: int, smoothing="kneser_ney", k=1.0):
    """log p(targets_t | inputs_<=t) float32 [N, T] (targets = inputs shifted by one), nats."""
    p = next_token_probs(tables, inputs, vocab_size, order, smoothing, k)
    return jnp.log(jnp.take_along_axis(p, jnp.asarray(targets, jnp.int32)[..., None], axis=-1)[..., 0])


def sample_cached(tables, key, prompt, length: int, vocab_size: int, order: int, smoothing="kneser_ney", k=1.0,
                  temperature=1.0, top_k=0, top_p=1.0):
    """Ancestral sampling (`sampling.ancestral`); the cache is the last order - 1 tokens and their count.

    Args:
      tables: from `fit`.
      key: PRNG key; position t is drawn with `fold_in(key, t)`.
      prompt: int32 [N, P], P >= 1.
      length: new tokens (static int >= 1).
      vocab_size, order, smoothing, k: as in `probs`.
      temperature, top_k, top_p: see `gm_jax.sampling.draw`.

    Returns:
      int32 [N, P + length], the prompt first.
    """
    prompt = jnp.asarray(prompt, jnp.int32)
    n, p = prompt.shape

    def step(state, x, t):  # p(x_t | context) after x_{t-1} enters the context
        ctx, valid = state
        tok = jax.lax.dynamic_index_in_dim(x, t - 1, 1, keepdims=False)
        if order > 1:
            ctx = jnp.concatenate([ctx[:, 1:], tok[:, None]], axis=1)
        valid = jnp.minimum(valid + 1, order - 1)
        return jnp.log(probs(tables, ctx, valid, vocab_size, order, smoothing, k)), (ctx, valid)

    state = (jnp.zeros((n, order - 1), jnp.int32), jnp.zeros((n,), jnp.int32))
    buf = jnp.zeros((n, p + length), jnp.int32).at[:, :p].set(prompt)
    x, _ = sampling.ancestral(step, state, buf, key, 1, given=p, temperature=temperature, top_k=top_k, top_p=top_p)
    return x


def sample_naive(tables, key, prompt, length: int, vocab_size: int, order: int, smoothing="kneser_ney", k=1.0,
                 temperature=1.0, top_k=0, top_p=1.0):
    """Ancestral sampling without a cache: at every position the contexts of the whole buffer are rebuilt
    (`contexts`), O(T) work per position. The same arguments and result as `sample_cached`, and the
    same tokens for the same key (the reference the cached sampler is checked against)."""
    prompt = jnp.asarray(prompt, jnp.int32)
    n, p = prompt.shape

    def step(cache, x, t):  # p(x_t | x_<t), read from the rebuilt contexts of the whole buffer
        ctx, valid = contexts(x, order)
        ctx_t = jax.lax.dynamic_index_in_dim(ctx, t, 1, keepdims=False)
        valid_t = jax.lax.dynamic_index_in_dim(valid, t, 1, keepdims=False)
        return jnp.log(probs(tables, ctx_t, valid_t, vocab_size, order, smoothing, k)), cache

    buf = jnp.zeros((n, p + length), jnp.int32).at[:, :p].set(prompt)
    x, _ = sampling.ancestral(step, None, buf, key, 1, given=p, temperature=temperature, top_k=top_k, top_p=top_p)
    return x
