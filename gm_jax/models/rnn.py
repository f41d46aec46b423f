"""Recurrent sequence models: a vanilla (Elman) RNN and an LSTM, scanned over time with `lax.scan`.

* vanilla RNN (Elman 1990): h_t = tanh(W x_t + U h_{t-1} + b) (`flax.linen.SimpleCell`);
* LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al.
  2000): i, f, o = sigmoid(.), g = tanh(.), c_t = f c_{t-1} + i g,
  h_t = o tanh(c_t) (`flax.linen.OptimizedLSTMCell`).

`RNN` stacks `num_layers` cells and reads the top hidden state out with a
linear layer to `out_dim` logits. Its input at each step is a token id
(embedded, when `vocab_size` is set: character language models) or a vector
(e.g. an 88-key piano-roll frame). The recurrence is one `lax.scan` over time
(`run`); `step` is one time step, so samplers carry the state instead of
re-reading the prefix (`sample_tokens`, `sample_bernoulli`).

Likelihoods, in nats:

* categorical (text, melodies): log p(x_1..x_{T-1} | x_0) = sum_t log softmax(logits_t)[x_{t+1}];
* independent Bernoulli per unit given the past (the RNN baseline of
  Boulanger-Lewandowski et al. 2012 for piano rolls): log p(v_t | v_<t) =
  sum_k v_tk log sigmoid(l_tk) + (1 - v_tk) log sigmoid(-l_tk).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gm_jax import sampling

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
        make = nn.OptimizedLSTMCell if self.cell == "lstm" else nn.SimpleCell
        self.cells = [make(self.hidden, name=f"cell_{i}") for i in range(self.num_layers)]
        self.head = nn.Dense(self.out_dim)

    def step(self, carry, inputs):
        """One time step. carry: from `init_carry`; inputs: int [N] ids or float [N, D].
        Returns (new carry, top hidden state float32 [N, hidden])."""
        x = self.embed(inputs) if self.vocab_size else inputs.astype(jnp.float32)
        new = []
        for cell, c in zip(self.cells, carry):
            c, x = cell(c, x)
            new.append(c)
        return tuple(new), x

    def readout(self, h):
        """Logits float32 [..., out_dim] of hidden states [..., hidden]."""
        return self.head(h)

    def __call__(self, carry, inputs):  # for init: one step and the read-out
        carry, h = self.step(carry, inputs)
        return carry, self.readout(h)


def init_carry(model: RNN, n: int):
    """The zero state of `model` for a batch of n: a tuple per layer ((c, h) for the LSTM, h for the RNN)."""
    z = jnp.zeros((n, model.hidden), jnp.float32)
    return tuple(((z, z) if model.cell == "lstm" else z) for _ in range(model.num_layers))


def init_params(model: RNN, key: jax.Array, input_dim: int | None = None):
    """Parameters of `model`; `input_dim` is the input vector size when `vocab_size` is None."""
    x = jnp.zeros((1,), jnp.int32) if model.vocab_size else jnp.zeros((1, input_dim), jnp.float32)
    return model.init(key, init_carry(model, 1), x)["params"]


def run(model: RNN, params, inputs, carry=None):
    """Run the recurrence over time with `lax.scan`.

    Args:
      inputs: int [N, T] ids or float [N, T, D] vectors.
      carry: initial state (default zeros).

    Returns:
      (logits float32 [N, T, out_dim], final carry).
    """
    n = inputs.shape[0]
    carry = init_carry(model, n) if carry is None else carry

    def body(c, x_t):
        return model.apply({"params": params}, c, x_t, method=RNN.step)

    carry, hs = jax.lax.scan(body, carry, jnp.swapaxes(inputs, 0, 1))
    return model.apply({"params": params}, jnp.swapaxes(hs, 0, 1), method=RNN.readout), carry


def token_log_probs(model: RNN, params, inputs, targets, carry=None):
    """log p(targets_t | inputs_<=t), float32 [N, T] nats (categorical read-out)."""
    logits, _ = run(model, params, inputs, carry)
    return -optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)


def bernoulli_log_probs(model: RNN, params, inputs, targets, carry=None):
    """log p(targets_t | inputs_<=t) = sum over units of Bernoulli(logits) log-likelihoods: float32 [N, T] nats.

    inputs, targets: float/int {0, 1} [N, T, D].
    """
    logits, _ = run(model, params, inputs, carry)
    return -optax.sigmoid_binary_cross_entropy(logits, targets.astype(jnp.float32)).sum(-1)


def log_prob(model: RNN, params, tokens):
    """Exact log p(x_1..x_{T-1} | x_0) of tokens int [N, T]: float32 [N], nats."""
    return token_log_probs(model, params, tokens[:, :-1], tokens[:, 1:]).sum(-1)


def sample_tokens(model: RNN, params, key, prompt, length: int, temperature=1.0, top_k=0, top_p=1.0):
    """Ancestral sampling of a token model; the state is carried (the prompt is read once).

    Args:
      prompt: int32 [N, P], P >= 1; length: new tokens (static). See `gm_jax.sampling`.

    Returns:
      int32 [N, P + length], the prompt first.
    """
    def step(carry, tok, i):
        carry, h = model.apply({"params": params}, carry, tok, method=RNN.step)
        return model.apply({"params": params}, h, method=RNN.readout), carry

    return sampling.ancestral_sample(step, init_carry(model, prompt.shape[0]), prompt, length, key,
                                     temperature, top_k, top_p)


def sample_bernoulli(model: RNN, params, key, prompt, length: int, temperature=1.0):
    """Ancestral sampling of frames v_t ~ prod_k Bernoulli(sigmoid(l_tk / temperature)) given the past.

    Args:
      prompt: {0, 1} [N, P, D] frames read first (P >= 1; e.g. the all-zero start frame).
      length: new frames (static int).
      temperature: > 0, divides the logits.

    Returns:
      uint8 [N, P + length, D], the prompt first. Frame t uses key `fold_in(key, t)`.
    """
    prompt = jnp.asarray(prompt, jnp.float32)
    n, p, d = prompt.shape
    carry = init_carry(model, n)
    if p > 1:
        _, carry = run(model, params, prompt[:, :-1], carry)

    def body(state, t):
        carry, x = state
        carry, h = model.apply({"params": params}, carry, x, method=RNN.step)
        logits = model.apply({"params": params}, h, method=RNN.readout) / temperature
        x = jax.random.bernoulli(jax.random.fold_in(key, t), jax.nn.sigmoid(logits)).astype(jnp.float32)
        return (carry, x), x

    _, frames = jax.lax.scan(body, (carry, prompt[:, -1]), jnp.arange(p, p + length))
    return jnp.concatenate([prompt, jnp.swapaxes(frames, 0, 1)], axis=1).astype(jnp.uint8)
