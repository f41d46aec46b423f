"""Recurrent sequence models: a vanilla (Elman) RNN and an LSTM, scanned over time with `lax.scan`.

* vanilla RNN (Elman 1990): h_t = tanh(W x_t + U h_{t-1} + b) (`flax.linen.SimpleCell`);
* LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
  2000): i, f, o = sigmoid(.), g = tanh(.), c_t = f c_{t-1} + i g,
  h_t = o tanh(c_t) (`gm_jax.nn.lstm`: `LSTMCell`, with `flax.linen.OptimizedLSTMCell`'s parameters).

`RNN` stacks `num_layers` cells and reads the top hidden state out with a
linear layer to `out_dim` logits. Its input at each step is a token id
(embedded, when `vocab_size` is set: character language models) or a vector
(e.g. an 88-key piano-roll frame). The recurrence is one `lax.scan` over time
(`run`; for the LSTM, `gm_jax.nn.lstm.lstm_scan`, whose backward pass is written out); `step` is
one time step (the same update), so the sampler carries the state instead of
re-reading the prefix: the state is its cache (`sample_cached`, in the library's
one ancestral loop `gm_jax.sampling.ancestral`; categorical tokens or Bernoulli
frames).

Likelihoods, in nats:

* categorical (text, melodies): log p(x_1..x_{T-1} | x_0) = sum_t log softmax(logits_t)[x_{t+1}];
* independent Bernoulli per unit given the past (the RNN baseline of
  Boulanger-Lewandowski et al. 2012 for piano rolls): log p(v_t | v_<t) =
  sum_k v_tk log sigmoid(l_tk) + (1 - v_tk) log sigmoid(-l_tk).

Precision: the recurrence computes in `compute_dtype(params, inputs)`, float32
unless the parameters (or float inputs) are wider: with float64 parameters
(`jax.enable_x64`, parameters cast with `.astype(jnp.float64)`) the state,
logits and log-probabilities are float64.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gm_jax import distributions, sampling
from gm_jax.nn import Dense, LSTMCell, lstm_scan, lstm_weights

CELLS = ("lstm", "rnn")


class RNN(nn.Module):
    """A stack of recurrent cells with a linear read-out.

    Attributes:
      out_dim: logits per step (V for a categorical, 88 for piano-roll keys).
      hidden: units per layer.
      num_layers: stacked cells.
      cell: `"lstm"` or `"rnn"` (vanilla tanh RNN).
      vocab_size: if set, inputs are int token ids embedded in `embed_dim`; else float vectors.
      embed_dim: embedding width for token inputs.
    """

    out_dim: int
    hidden: int = 256
    num_layers: int = 1
    cell: str = "lstm"
    vocab_size: int | None = None
    embed_dim: int = 64

    def setup(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell={self.cell!r}; valid choices: {list(CELLS)}")
        if self.vocab_size:
            self.embed = nn.Embed(self.vocab_size, self.embed_dim)
        make = LSTMCell if self.cell == "lstm" else nn.SimpleCell
        self.cells = [make(self.hidden, name=f"cell_{i}") for i in range(self.num_layers)]
        self.head = Dense(self.out_dim)

    def step(self, carry, inputs):
        """One time step. carry: from `init_carry`; inputs: int [N] ids, or [N, D] vectors (float, or
        int / bool {0, 1} frames, read as float32).
        Returns (new carry, top hidden state [N, hidden] in the carry's dtype, `compute_dtype`)."""
        x = self.embed_inputs(inputs)
        new = []
        for cell, c in zip(self.cells, carry):
            c, x = cell(c, x)
            new.append(c)
        return tuple(new), x

    def embed_inputs(self, inputs):
        """The cells' input vectors [..., D] of int ids [...] (embedded) or of vectors [..., D] (float kept;
        int / bool {0, 1} frames read as float32)."""
        if self.vocab_size:
            return self.embed(inputs)
        return inputs if jnp.issubdtype(inputs.dtype, jnp.floating) else inputs.astype(jnp.float32)

    def readout(self, h):
        """Logits [..., out_dim] of hidden states [..., hidden] (float32, or float64 with float64 parameters)."""
        return self.head(h)

    def __call__(self, carry, inputs):  # for init: one step and the read-out
        carry, h = self.step(carry, inputs)
        return carry, self.readout(h)


def compute_dtype(params, inputs=None):
    """The float dtype the recurrence computes in: float32, or the widest float dtype among the parameters
    and float `inputs` when that is wider (float64 under `jax.enable_x64` with float64 parameters).
    Int / bool inputs (token ids, {0, 1} frames) do not count."""
    dtypes = [jnp.float32] + [leaf.dtype for leaf in jax.tree_util.tree_leaves(params)
                              if jnp.issubdtype(leaf.dtype, jnp.floating)]
    if inputs is not None and jnp.issubdtype(jnp.asarray(inputs).dtype, jnp.floating):
        dtypes.append(jnp.asarray(inputs).dtype)
    return jnp.result_type(*dtypes)


def init_carry(model: RNN, n: int, dtype=jnp.float32):
    """The zero state of `model` for a batch of n: a tuple per layer ((c, h) for the LSTM, h for the RNN),
    each [n, hidden] of `dtype` (use `compute_dtype(params, inputs)`: a scan's carry keeps its dtype)."""
    z = jnp.zeros((n, model.hidden), dtype)
    return tuple(((z, z) if model.cell == "lstm" else z) for _ in range(model.num_layers))


def init_params(model: RNN, key: jax.Array, input_dim: int | None = None):
    """Parameters of `model`; `input_dim` is the input vector size when `vocab_size` is None."""
    x = jnp.zeros((1,), jnp.int32) if model.vocab_size else jnp.zeros((1, input_dim), jnp.float32)
    return model.init(key, init_carry(model, 1), x)["params"]


def hidden_states(model: RNN, params, xs, carry=None):
    """The top layer's hidden state at every step, time first (the recurrence of `run`, without the read-out).

    Args:
      xs: int [T, N] ids or float [T, N, D] vectors, time first.
      carry: initial state (default zeros of `compute_dtype(params, xs)`).

    Returns:
      (hs [T, N, hidden], final carry), float32 (float64 with float64 parameters or inputs).

    Raises:
      ValueError: a carry with another number of layer states than `model.num_layers`.
    """
    dtype = compute_dtype(params, xs)
    carry = init_carry(model, xs.shape[1], dtype) if carry is None else carry
    if len(carry) != model.num_layers:
        raise ValueError(f"carry holds {len(carry)} layer states; the model has num_layers={model.num_layers} "
                         "(make it with init_carry)")
    if model.cell == "lstm":  # the same update as `step`, with the backward pass of `lstm_scan`
        hs = model.apply({"params": params}, xs, method=RNN.embed_inputs)
        new = []
        for i, (c0, h0) in enumerate(carry):
            state, hs = lstm_scan(*lstm_weights(params[f"cell_{i}"], dtype), hs, c0, h0)
            new.append(state)
        return hs, tuple(new)

    def body(c, x_t):
        return model.apply({"params": params}, c, x_t, method=RNN.step)

    carry, hs = jax.lax.scan(body, carry, xs)
    return hs, carry


def run(model: RNN, params, inputs, carry=None):
    """Run the recurrence over time (`hidden_states`) and read every step out.

    Args:
      inputs: int [N, T] ids or float [N, T, D] vectors.
      carry: initial state (default zeros of `compute_dtype(params, inputs)`).

    Returns:
      (logits [N, T, out_dim], final carry), float32 (float64 with float64 parameters or inputs).

    Raises:
      ValueError: a carry with another number of layer states than `model.num_layers`.
    """
    hs, carry = hidden_states(model, params, jnp.swapaxes(inputs, 0, 1), carry)
    return model.apply({"params": params}, jnp.swapaxes(hs, 0, 1), method=RNN.readout), carry


def conditional_logits(model: RNN, params, inputs, carry=None):
    """The logits of p(x_{t+1} | inputs_<=t) of every step t (`run`'s read-out, at least float32): [N, T,
    out_dim], categorical logits over `out_dim` classes (token models) or `out_dim` independent Bernoulli
    logits (frame models); float64 with float64 parameters or inputs."""
    logits, _ = run(model, params, inputs, carry)
    return logits.astype(jnp.promote_types(logits.dtype, jnp.float32))


def token_log_probs(model: RNN, params, inputs, targets, carry=None):
    """log p(targets_t | inputs_<=t), [N, T] nats (categorical read-out): float32, float64 with float64
    parameters."""
    logits = conditional_logits(model, params, inputs, carry)
    return distributions.categorical_log_prob(logits, targets, event_ndims=0)


def bernoulli_log_probs(model: RNN, params, inputs, targets, carry=None):
    """log p(targets_t | inputs_<=t) = sum over units of Bernoulli(logits) log-likelihoods: [N, T] nats,
    float32 (float64 with float64 parameters or inputs).

    inputs, targets: float/int {0, 1} [N, T, D].
    """
    logits = conditional_logits(model, params, inputs, carry)
    return -optax.sigmoid_binary_cross_entropy(logits, targets.astype(logits.dtype)).sum(-1)


def log_prob(model: RNN, params, tokens):
    """Exact log p(x_1..x_{T-1} | x_0) of tokens int [N, T]: [N] nats (float32; float64 with float64
    parameters)."""
    return token_log_probs(model, params, tokens[:, :-1], tokens[:, 1:]).sum(-1)


def sample_cached(model: RNN, params, key, prompt, length: int, temperature=1.0, top_k=0, top_p=1.0,
                  event: str = "categorical"):
    """Ancestral sampling (`sampling.ancestral`) carrying the recurrent state: the state is the cache,
    so each new position costs one `RNN.step` (the prompt is read once).

    Args:
      prompt: `event="categorical"` (token models): int32 [N, P] token ids, P >= 1; `event="bernoulli"`
        (frame models, v_t ~ prod_k Bernoulli(sigmoid(l_tk / temperature))): {0, 1} [N, P, D] frames.
      length: new tokens / frames (static int >= 1).
      temperature, top_k, top_p: see `gm_jax.sampling.draw` (a Bernoulli draw takes only the temperature).
      event: "categorical" or "bernoulli" (static).

    Returns:
      int32 [N, P + length] tokens or uint8 [N, P + length, D] frames, the prompt first; position t is
      drawn with the key `fold_in(key, t)`.
    """
    variables = {"params": params}
    bernoulli = event == "bernoulli"
    prompt = jnp.asarray(prompt, jnp.float32 if bernoulli else jnp.int32)
    n, p = prompt.shape[:2]
    buf = jnp.zeros((n, p + length, *prompt.shape[2:]), prompt.dtype).at[:, :p].set(prompt)
    carry = init_carry(model, n, compute_dtype(params))  # the prompt is cast to float32 / int32 above
    if bernoulli and p > 1:  # frames: the prompt's state in one scan; tokens: the prompt is read by the steps
        _, carry = run(model, params, prompt[:, :-1], carry)

    def step(carry, x, t):  # the logits of position t from the state and x_{t-1}
        carry, h = model.apply(variables, carry, jax.lax.dynamic_index_in_dim(x, t - 1, 1, keepdims=False),
                               method=RNN.step)
        return model.apply(variables, h, method=RNN.readout), carry

    start = p if bernoulli else 1
    x, _ = sampling.ancestral(step, carry, buf, key, start, given=p, temperature=temperature, top_k=top_k,
                              top_p=top_p, event=event)
    return x.astype(jnp.uint8) if bernoulli else x


def sample_naive(model: RNN, params, key, prompt, length: int, temperature=1.0, top_k=0, top_p=1.0,
                 event: str = "categorical"):
    """Ancestral sampling without a cache: at every position the recurrence is re-run from the first
    position over the whole buffer (`run`; the model is causal, so the zeros not yet drawn do not reach
    position t - 1), O(T) work per position. The same arguments and result as `sample_cached`, and the
    same values for the same key (the reference the cached sampler is checked against)."""
    bernoulli = event == "bernoulli"
    prompt = jnp.asarray(prompt, jnp.float32 if bernoulli else jnp.int32)
    n, p = prompt.shape[:2]
    buf = jnp.zeros((n, p + length, *prompt.shape[2:]), prompt.dtype).at[:, :p].set(prompt)
    carry = init_carry(model, n, compute_dtype(params))

    def step(cache, x, t):  # the logits of position t: the whole recurrence, read at t - 1
        logits, _ = run(model, params, x, carry)
        return jax.lax.dynamic_index_in_dim(logits, t - 1, 1, keepdims=False), cache

    start = p if bernoulli else 1
    x, _ = sampling.ancestral(step, None, buf, key, start, given=p, temperature=temperature, top_k=top_k,
                              top_p=top_p, event=event)
    return x.astype(jnp.uint8) if bernoulli else x
