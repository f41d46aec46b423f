"""Decoder-only Transformer language model (GPT; Radford et al. 2018, 2019) with a KV cache.

Architecture (Vaswani et al. 2017 with GPT-2's pre-LayerNorm, Radford et al.
2019, Sec. 2.3): token embedding + position embedding (learned, or the fixed
sinusoids of Vaswani et al. Sec. 3.5), `num_layers` blocks of

    x = x + Attn(LN(x)),  Attn = causal multi-head self-attention (Vaswani Eq. 1),
    x = x + MLP(LN(x)),   MLP = Dense(4d) -> GELU -> Dense(d),

a final LayerNorm and a linear read-out to the vocabulary logits. Causality:
the output at position t depends only on tokens 0..t (tested).

Likelihood: log p(x_1..x_{T-1} | x_0) = sum_t log softmax(logits_t)[x_{t+1}],
in nats (the first token is the given context: there is no start token).

Generation (`sample_cached` with the KV cache, `sample_naive` without; both in
the library's one ancestral loop, `gm_jax.sampling.ancestral`) follows one context
rule so that both give the same tokens for the same key (tested): the model
sees at most `block_size` tokens; when the context is full, it restarts from
the last `block_size // 2` tokens (positions renumbered from 0). The cached
sampler keeps the keys/values of the context of every layer
([N, block_size, heads, head_dim]) and does O(block_size) new work per token
(one query against the cache); on a restart it recomputes the cache of the
kept tokens in one pass. The naive sampler re-runs the whole context
through the network for every token (O(block_size^2)).
"""
from __future__ import annotations

from typing import Any

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax import distributions, sampling
from gm_jax.nn import Dense

POSITIONS = ("learned", "sinusoidal")


def sinusoidal_positions(length: int, dim: int) -> np.ndarray:
    """Vaswani et al. 2017, Sec. 3.5: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...). float32 [length, dim]."""
    pos = np.arange(length)[:, None]
    i = np.arange(0, dim, 2)[None, :]
    angles = pos / np.power(10000.0, i / dim)
    pe = np.zeros((length, dim), np.float32)
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles)[:, : dim // 2]
    return pe


def attention(q, k, v, mask, dropout=None):
    """Scaled dot-product attention (Vaswani et al. 2017, Eq. 1) with a mask.

    q: [N, T, heads, hd]; k, v: [N, S, heads, hd] (same float dtype); mask: bool broadcastable to
    [N, heads, T, S], True where a query may attend. Every query row needs one True entry.
    dropout: None or a callable applied to the attention probabilities (`flax.linen.Dropout`).
    The logits and the softmax are float32. Returns [N, T, heads, hd] in q's dtype.
    """
    att = jnp.einsum("nqhd,nkhd->nhqk", q, k.astype(q.dtype)).astype(jnp.float32) / np.float32(np.sqrt(q.shape[-1]))
    att = jnp.where(mask, att, jnp.finfo(att.dtype).min)
    att = jax.nn.softmax(att, axis=-1).astype(q.dtype)
    if dropout is not None:
        att = dropout(att)
    return jnp.einsum("nhqk,nkhd->nqhd", att, v.astype(att.dtype))


QUERY_BLOCK = 32


def causal_attention(q, k, v, dropout=None, query_block: int = QUERY_BLOCK):
    """Causal self-attention, `attention` with mask[t, s] = s <= t, computed in blocks of
    `query_block` queries: block [a, b) attends to keys [0, b) only, so the fully masked key
    blocks above the diagonal are never computed (at T = 4 * query_block, 10 of the 16 query-key
    blocks of the scores and weighted sums). This is the blocked loop of flash attention (Dao et al.
    2022, Alg. 1) without its running softmax: each block's keys fit at once. Equal to the one-block
    form to float32 rounding (tested); the blocks are independent, so XLA:CPU may also run them
    concurrently.

    q, k, v: [N, T, heads, hd]. Returns [N, T, heads, hd] in q's dtype.

    Raises:
      ValueError: query_block < 1.
    """
    t = q.shape[1]
    if query_block < 1:
        raise ValueError(f"query_block={query_block} must be >= 1")
    outs = []
    for a in range(0, t, query_block):
        b = min(a + query_block, t)
        mask = (jnp.arange(b)[None, :] <= jnp.arange(a, b)[:, None])[None, None]
        outs.append(attention(q[:, a:b], k[:, :b], v[:, :b], mask, dropout=dropout))
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: causal multi-head self-attention and an MLP."""

    dim: int
    num_heads: int
    dropout: float = 0.0
    dtype: Any = jnp.float32  # the compute dtype (see `GPT`)
    query_block: int = QUERY_BLOCK  # see `causal_attention`

    @nn.compact
    def __call__(self, x, mask=None, kv=None, index=None, train: bool = False):
        """x: [N, T, d]. mask: None for causal self-attention over x (computed in query blocks,
        `causal_attention`), or bool broadcastable to [N, heads, T, S] with kv: (K, V) caches
        [N, S, heads, hd] to write this call's keys/values into at `index`.
        Returns (x [N, T, d], (K, V))."""
        n, t, _ = x.shape
        hd = self.dim // self.num_heads
        h = nn.LayerNorm(dtype=self.dtype, name="ln_attn")(x)
        qkv = Dense(3 * self.dim, name="qkv")(h).reshape(n, t, 3, self.num_heads, hd)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        dropout = nn.Dropout(self.dropout, deterministic=not train)
        if mask is None:
            if kv is not None:
                raise ValueError("a KV cache needs the mask of its valid positions")
            out = causal_attention(q, k, v, dropout=dropout, query_block=self.query_block)
        else:
            if kv is not None:
                k = jax.lax.dynamic_update_slice(kv[0], k.astype(kv[0].dtype), (0, index, 0, 0))
                v = jax.lax.dynamic_update_slice(kv[1], v.astype(kv[1].dtype), (0, index, 0, 0))
            out = attention(q, k, v, mask, dropout=dropout)
        out = out.reshape(n, t, self.dim)
        x = x + nn.Dropout(self.dropout, deterministic=not train)(Dense(self.dim, name="proj")(out))
        h = nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x)
        h = Dense(4 * self.dim, name="fc")(h)
        h = Dense(self.dim, name="fc_out")(nn.gelu(h))
        x = x + nn.Dropout(self.dropout, deterministic=not train)(h)
        return x, (k, v)


class GPT(nn.Module):
    """Decoder-only Transformer LM.

    Attributes:
      vocab_size: V.
      block_size: the longest context (positions 0..block_size-1).
      dim, num_layers, num_heads: width d (divisible by heads), depth, heads.
      positions: `"learned"` or `"sinusoidal"`.
      dropout: dropout rate in training.
      dtype: the compute dtype of the blocks (`jnp.bfloat16` for mixed precision): the float32
        parameters are cast to it; the attention softmax and the output logits are float32, so the
        log-softmax of the likelihood is never computed in bfloat16.
      query_block: queries per block of the causal attention (`causal_attention`, which raises
        ValueError for < 1); a speed setting only: the outputs agree to float32 rounding whatever its value.
    """

    vocab_size: int
    block_size: int = 128
    dim: int = 128
    num_layers: int = 4
    num_heads: int = 4
    positions: str = "learned"
    dropout: float = 0.0
    dtype: Any = jnp.float32
    query_block: int = QUERY_BLOCK

    def setup(self):
        if self.positions not in POSITIONS:
            raise ValueError(f"positions={self.positions!r}; valid choices: {list(POSITIONS)}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim={self.dim} must be divisible by num_heads={self.num_heads}")
        self.tok_emb = nn.Embed(self.vocab_size, self.dim, embedding_init=nn.initializers.normal(0.02))
        if self.positions == "learned":
            self.pos_emb = self.param("pos_emb", nn.initializers.normal(0.02), (self.block_size, self.dim))
        self.blocks = [Block(self.dim, self.num_heads, self.dropout, self.dtype, self.query_block,
                             name=f"block_{i}") for i in range(self.num_layers)]
        self.ln_f = nn.LayerNorm(dtype=self.dtype)
        self.head = Dense(self.vocab_size)

    def _pos(self):
        if self.positions == "learned":
            return self.pos_emb
        return jnp.asarray(sinusoidal_positions(self.block_size, self.dim))

    def __call__(self, tokens, train: bool = False):
        """Full causal forward. tokens: int32 [N, T], T <= block_size (or float [N, T, V] one-hot rows,
        the same as the integer form; used to take gradients with respect to the inputs).

        Returns (logits float32 [N, T, V], cache): `cache` is a list per layer of
        (K, V) [N, T, heads, head_dim], the KV cache of these T positions.
        """
        t = tokens.shape[1]
        if t > self.block_size:
            raise ValueError(f"sequence length {t} exceeds block_size={self.block_size}")
        emb = tokens @ self.tok_emb.embedding if jnp.ndim(tokens) == 3 else self.tok_emb(tokens)
        x = (emb + self._pos()[:t][None]).astype(self.dtype)
        cache = []
        for block in self.blocks:
            x, kv = block(x, train=train)
            cache.append(kv)
        return self.head(self.ln_f(x)).astype(jnp.float32), cache

    def decode(self, tokens, cache, index):
        """One cached step. tokens: int32 [N, 1] at position `index` (int32 scalar, < block_size);
        cache: list per layer of (K, V) [N, block_size, heads, head_dim] holding positions < index.

        Returns (logits float32 [N, V], the cache with position `index` written).
        """
        x = (self.tok_emb(tokens) + jax.lax.dynamic_slice_in_dim(self._pos(), index, 1)[None]).astype(self.dtype)
        mask = (jnp.arange(self.block_size) <= index)[None, None, None, :]
        new_cache = []
        for block, kv in zip(self.blocks, cache):
            x, kv = block(x, mask, kv=kv, index=index)
            new_cache.append(kv)
        return self.head(self.ln_f(x))[:, 0].astype(jnp.float32), new_cache


def init_params(model: GPT, key: jax.Array):
    """Parameters of `model` (a pytree), from `key`."""
    return model.init(key, jnp.zeros((1, min(8, model.block_size)), jnp.int32))["params"]


def logits_fn(model: GPT, params, tokens, train: bool = False, key=None) -> jax.Array:
    """Logits float32 [N, T, V] of p(x_{t+1} | x_<=t) for tokens int32 [N, T]."""
    rngs = {"dropout": key} if train and model.dropout > 0 else None
    return model.apply({"params": params}, tokens, train=train, rngs=rngs)[0]


def token_log_probs(model: GPT, params, inputs, targets) -> jax.Array:
    """log p(targets_t | inputs_<=t), float32 [N, T] nats (targets are inputs shifted by one)."""
    return distributions.categorical_log_prob(logits_fn(model, params, inputs).astype(jnp.float32), targets,
                                              event_ndims=0)


def log_prob(model: GPT, params, tokens) -> jax.Array:
    """Exact log p(x_1..x_{T-1} | x_0) of tokens int32 [N, T] (T <= block_size + 1), float32 [N], nats."""
    return token_log_probs(model, params, tokens[:, :-1], tokens[:, 1:]).sum(axis=-1)


def _restart(model: GPT, count, start, length):
    """The context rule shared by both samplers: the context before drawing position `count`
    starts at `start`; when it holds block_size tokens, restart from the last block_size // 2."""
    full = count - start >= model.block_size
    return jnp.where(full, count - model.block_size // 2, start), full


def _prepare(model: GPT, prompt, length):
    prompt = jnp.asarray(prompt, jnp.int32)
    n, p = prompt.shape
    total = p + length
    buf = jnp.zeros((n, total + model.block_size), jnp.int32).at[:, :p].set(prompt)
    start0 = max(0, p - model.block_size)
    return buf, n, p, total, start0


@functools.partial(jax.jit, static_argnums=(0, 4))
def sample_naive(model: GPT, params, key, prompt, length: int, temperature=1.0, top_k=0, top_p=1.0):
    """Ancestral sampling (`sampling.ancestral`) re-reading the whole context for every new token
    (O(block_size^2) per token).

    Args:
      model: the GPT (static).
      params: its parameters.
      key: PRNG key; token at position t is drawn with `fold_in(key, t)`.
      prompt: int32 [N, P], P >= 1.
      length: new tokens (static int >= 1).
      temperature, top_k, top_p: see `gm_jax.sampling.draw`.

    Returns:
      int32 [N, P + length]: prompt then samples (identical to `sample_cached`).
    """
    buf, n, p, total, start0 = _prepare(model, prompt, length)
    bs = model.block_size

    def step(start, buf, count):  # the logits of position `count` given tokens start..count-1
        start, _ = _restart(model, count, start, length)
        ctx = jax.lax.dynamic_slice_in_dim(buf, start, bs, axis=1)
        logits = logits_fn(model, params, ctx)
        return jax.lax.dynamic_index_in_dim(logits, count - 1 - start, axis=1, keepdims=False), start

    buf, _ = sampling.ancestral(step, jnp.int32(start0), buf, key, p, total, temperature=temperature, top_k=top_k,
                                top_p=top_p)
    return buf[:, :total]


@functools.partial(jax.jit, static_argnums=(0, 4))
def sample_cached(model: GPT, params, key, prompt, length: int, temperature=1.0, top_k=0, top_p=1.0):
    """Ancestral sampling (`sampling.ancestral`) with a KV cache: one query per new token against the
    cached keys/values (`GPT.decode`).

    Same arguments and result as `sample_naive` (identical tokens for the same key).
    """
    buf, n, p, total, start0 = _prepare(model, prompt, length)
    bs = model.block_size

    def prefill(buf, start, count):
        """Cache of positions start..count-2 (the token at count-1 is fed by the next decode step)."""
        ctx = jax.lax.dynamic_slice_in_dim(buf, start, bs, axis=1)
        _, cache = model.apply({"params": params}, ctx)
        return cache

    def step(carry, buf, count):
        start, cache = carry
        new_start, full = _restart(model, count, start, length)
        cache = jax.lax.cond(full, lambda: prefill(buf, new_start, count), lambda: cache)
        prev = jax.lax.dynamic_slice_in_dim(buf, count - 1, 1, axis=1)
        logits, cache = model.apply({"params": params}, prev, cache, count - 1 - new_start, method=GPT.decode)
        return logits, (new_start, cache)

    # the prompt's context, except its last token
    cache = prefill(buf, jnp.int32(start0), jnp.int32(p))
    buf, _ = sampling.ancestral(step, (jnp.int32(start0), cache), buf, key, p, total, temperature=temperature,
                                top_k=top_k, top_p=top_p)
    return buf[:, :total]
