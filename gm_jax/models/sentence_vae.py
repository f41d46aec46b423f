"""Sentence VAE (Bowman et al. 2016, "Generating Sentences from a Continuous Space") over characters.

A sentence is a line of characters ending with an end-of-line token (EOL, the
vocabulary's "\\n"), held in a row of `max_len` token ids: the line, its EOL,
then EOL padding (masked out). `line_mask(x, eol)` is 1 up to and including the
first EOL (a row without one is a line cut at the cap: all of it counts).

Generative model: z ~ N(0, I) (latent_dim); x | z an LSTM language model whose
initial state is a linear function of z (Bowman et al., Sec. 3, Fig. 1:
c_0 = W_c z + b_c, h_0 = tanh(W_h z + b_h)) and, with `z_inputs=True`, whose
every input is the character embedding concatenated with z (a common variant
that keeps the latent in use; not the paper's). The decoder reads BOS, x_0, ...,
x_{T-2} and predicts x_0 .. x_{T-1}. Inference model: an LSTM over the line's
characters (its EOL included); its final state -> (mean, log_var) of the
diagonal Gaussian q(z | x).

Objective, nats per line (`neg_elbo`): recon + beta_t * KL, recon =
-sum over the line's real positions of log p(x_t | x_<t, z) (one reparameterised
z), KL = KL(q(z | x) || N(0, I)) in closed form, with

* KL annealing (Sec. 3.1): beta_t = `kl_weight(step, schedule, steps)` rises from
  0 at step 0 to 1 at step `steps` (linear, or the logistic curve of the paper
  rescaled to hit 0 and 1 exactly), 1 afterwards;
* word (here character) dropout (Sec. 3.2): each decoder input after BOS is
  replaced by UNK with probability `rate` (`word_dropout_mask`); the targets are
  never touched.

With `latent=False` the same decoder runs with z = 0 and no encoder: a plain
char-LSTM language model of lines (the baseline; its `neg_elbo` is the exact NLL).

Bounds: `neg_elbo` (beta = 1) and `iwae_log_prob` (Burda et al. 2016, Eq. 8,
k samples; k = 1 is the ELBO) are lower bounds on log p(x) in expectation.

Sampling goes through `gm_jax.sampling.ancestral` carrying the LSTM state
(`decode`): position t drawn with `fold_in(key, t)` from the state after BOS,
x_0 .. x_{t-1}; positions after the first EOL are set to EOL. `homotopy` decodes
along z_t = (1 - t) z_1 + t z_2 between two posterior means (Sec. 5.3).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

import gm_jax.distributions as dist
from gm_jax import sampling
from gm_jax.models.rnn import RNN
from gm_jax.models.rnn import hidden_states as rnn_hidden_states
from gm_jax.models.vae import SCHEDULES, importance_weighted_log_prob, kl_weight  # noqa: F401 (re-exported)
from gm_jax.nn import Dense


# Bowman et al. 2016, Sec. 4 (Penn Treebank language modelling): a single-layer LSTM of 191 units,
# 353-dimensional embeddings, a 13-dimensional z. These are the figures quoted when this model was added;
# they were not re-checked against the paper's text (no copy of it was at hand).
PAPER = {"hidden": 191, "embed_dim": 353, "latent_dim": 13}


class SentenceVAE(nn.Module):
    """Encoder LSTM -> q(z | x); decoder LSTM language model conditioned on z.

    Attributes:
      vocab_size: V, the characters (data tokens 0..V-1); the decoder also reads BOS = V and UNK = V + 1.
      hidden: LSTM units (encoder and decoder).
      latent_dim: size of z.
      embed_dim: character embedding width (encoder and decoder each have their own).
      z_inputs: concatenate z to every decoder input (besides z -> the initial state).
      latent: False: no encoder, z = 0 (a plain LSTM language model; the baseline).
    """

    vocab_size: int
    hidden: int = 191
    latent_dim: int = 13
    embed_dim: int = 64
    z_inputs: bool = True
    latent: bool = True

    @property
    def bos(self) -> int:
        return self.vocab_size

    @property
    def unk(self) -> int:
        return self.vocab_size + 1

    def setup(self):
        if self.latent:
            self.encoder = encoder_rnn(self)
            self.to_state = Dense(2 * self.hidden)
        self.embed = nn.Embed(self.vocab_size + 2, self.embed_dim)
        self.decoder = decoder_rnn(self)

    def encode_step(self, carry, tokens):
        """One encoder step: carry ((c, h),), tokens int [N] -> (carry, h [N, hidden])."""
        return self.encoder.step(carry, tokens)

    def posterior(self, h):
        """The encoder's final hidden state [N, hidden] -> (mean, log_var), float32 [N, latent_dim] each."""
        mean, log_var = jnp.split(self.encoder.readout(h), 2, axis=-1)
        return mean, log_var

    def initial_state(self, z):
        """The decoder's initial carry ((c, h),) from z [N, latent_dim] (zeros when `latent` is False)."""
        if not self.latent:
            zeros = jnp.zeros((z.shape[0], self.hidden), jnp.float32)
            return ((zeros, zeros),)
        c, h = jnp.split(self.to_state(z), 2, axis=-1)
        return ((c, jnp.tanh(h)),)

    def decoder_input(self, tokens, z):
        """The decoder LSTM's inputs: tokens int [..., N] (ids < V + 2) embedded, with z [N, latent_dim]
        appended when `z_inputs` -> float32 [..., N, embed_dim (+ latent_dim)]."""
        x = self.embed(tokens)
        if self.latent and self.z_inputs:
            x = jnp.concatenate([x, jnp.broadcast_to(z.astype(x.dtype), x.shape[:-1] + z.shape[-1:])], axis=-1)
        return x

    def decode_step(self, carry, tokens, z):
        """One decoder step: tokens int [N] (ids < V + 2), z [N, latent_dim] -> (carry, logits [N, V])."""
        carry, h = self.decoder.step(carry, self.decoder_input(tokens, z))
        return carry, self.decoder.readout(h)

    def __call__(self, tokens, z):  # for init: every submodule once
        if self.latent:
            carry, h = self.encode_step(zero_carry(self, tokens.shape[0]), tokens)
            self.posterior(h)
        return self.decode_step(self.initial_state(z), tokens, z)


def encoder_rnn(model: SentenceVAE) -> RNN:
    """The encoder's `RNN` (parameters: `params["encoder"]`): an LSTM over the line's token ids, read out to
    (mean, log_var)."""
    return RNN(out_dim=2 * model.latent_dim, hidden=model.hidden, vocab_size=model.vocab_size,
               embed_dim=model.embed_dim)


def decoder_rnn(model: SentenceVAE) -> RNN:
    """The decoder's `RNN` (parameters: `params["decoder"]`): an LSTM over `decoder_input` vectors, read out
    to logits over the V characters."""
    return RNN(out_dim=model.vocab_size, hidden=model.hidden)


def zero_carry(model: SentenceVAE, n: int):
    zeros = jnp.zeros((n, model.hidden), jnp.float32)
    return ((zeros, zeros),)


def init_params(model: SentenceVAE, key: jax.Array):
    return model.init(key, jnp.zeros((1,), jnp.int32), jnp.zeros((1, model.latent_dim), jnp.float32))["params"]


# -- schedules and masks -------------------------------------------------------------------------------
def line_mask(x, eol: int):
    """float32 [N, T]: 1 at the positions of each row up to and including its first EOL."""
    is_eol = (x == eol).astype(jnp.int32)
    return (jnp.cumsum(is_eol, axis=1) - is_eol == 0).astype(jnp.float32)


def end_lines(x, eol: int):
    """x [N, T] with every position after the first EOL of a row set to EOL (the padding)."""
    return jnp.where(line_mask(x, eol) > 0, x, eol).astype(x.dtype)


def decoder_inputs(model: SentenceVAE, x):
    """What the decoder reads before predicting each x_t: BOS, x_0, ..., x_{T-2}, int32 [N, T]."""
    bos = jnp.full((x.shape[0], 1), model.bos, jnp.int32)
    return jnp.concatenate([bos, jnp.asarray(x, jnp.int32)[:, :-1]], axis=1)


def word_dropout_mask(key, shape, rate):
    """bool [T] (or `shape`): True where a decoder input is replaced by UNK, probability `rate` at every
    position but the first (BOS is always read)."""
    drop = jax.random.bernoulli(key, rate, shape)
    return drop & (jnp.arange(shape[-1]) > 0)


def apply_word_dropout(model: SentenceVAE, inputs, drop):
    """Decoder inputs with UNK where `drop` (bool, broadcastable to inputs) is True."""
    return jnp.where(drop, model.unk, inputs).astype(jnp.int32)


# -- the networks over time ------------------------------------------------------------------------------
def encode(model: SentenceVAE, params, x, mask=None, eol: int | None = None):
    """(mean, log_var) float32 [N, latent_dim] of q(z | x) for lines x int [N, T]: the encoder LSTM's state
    after the last position where `mask` (float or bool [N, T], 1 on a prefix of each row; default
    `line_mask(x, eol)`: up to and including the first EOL) is 1; the zero state where a row has none.
    The LSTM runs over every position (`rnn.hidden_states`) and the state is read at that position: the same
    state as reading only the masked prefix."""
    x = jnp.asarray(x, jnp.int32)
    if mask is None:
        mask = line_mask(x, eol)
    carry = zero_carry(model, x.shape[0])
    hs, _ = rnn_hidden_states(encoder_rnn(model), params["encoder"], x.T, carry)  # [T, N, hidden]
    length = jnp.sum(jnp.asarray(mask) > 0, axis=1)  # the prefix's length; its last state is hs[length - 1]
    h_last = jnp.concatenate([carry[0][1][None], hs], axis=0)[length, jnp.arange(x.shape[0])]
    return model.apply({"params": params}, h_last, method=SentenceVAE.posterior)


def decoder_logits(model: SentenceVAE, params, z, inputs):
    """Teacher-forced logits float32 [N, T, V] of p(x_t | inputs_<=t, z) for decoder inputs int [N, T]."""
    variables = {"params": params}
    carry = model.apply(variables, z, method=SentenceVAE.initial_state)
    xs = model.apply(variables, jnp.asarray(inputs, jnp.int32).T, z, method=SentenceVAE.decoder_input)
    decoder = decoder_rnn(model)
    hs, _ = rnn_hidden_states(decoder, params["decoder"], xs, carry)  # `decode_step` over time
    logits = decoder.apply({"params": params["decoder"]}, jnp.swapaxes(hs, 0, 1), method=RNN.readout)
    return logits.astype(jnp.float32)


def recon_log_prob(model: SentenceVAE, params, z, x, mask, drop=None):
    """log p(x | z) = sum over the masked positions of log p(x_t | x_<t, z), float32 [N] nats; `drop`:
    bool [N, T] word-dropout mask of the decoder inputs (None: none)."""
    inputs = decoder_inputs(model, x)
    if drop is not None:
        inputs = apply_word_dropout(model, inputs, drop)
    logits = decoder_logits(model, params, z, inputs)
    lp = dist.categorical_log_prob(logits, x, event_ndims=0)
    return (lp * mask).sum(-1)


def neg_elbo(model: SentenceVAE, params, x, eps, eol: int, beta=1.0, drop=None) -> dict:
    """The negative ELBO per line with one reparameterised sample z = mean + exp(log_var / 2) eps.

    Args:
      x: int [N, T] lines (EOL-terminated, EOL-padded).
      eps: float32 [N, latent_dim] standard normal noise.
      eol: the EOL token id.
      beta: the KL weight of `loss` (annealing); `neg_elbo` always has weight 1.
      drop: bool [N, T] word-dropout mask of the decoder inputs (training), or None.

    Returns:
      float32 [N] each, nats per line: "loss" = recon + beta KL, "neg_elbo" = recon + KL, "recon",
      "kl", and "chars" (the predicted positions, EOL included).
    """
    x = jnp.asarray(x, jnp.int32)
    mask = line_mask(x, eol)
    if model.latent:
        mean, log_var = encode(model, params, x, mask)
        z = mean + jnp.exp(0.5 * log_var) * eps
        kl = dist.kl_diag_gaussian_standard_normal(mean, log_var)
    else:
        z = jnp.zeros((x.shape[0], model.latent_dim), jnp.float32)
        kl = jnp.zeros((x.shape[0],), jnp.float32)
    recon = -recon_log_prob(model, params, z, x, mask, drop)
    return {"loss": recon + beta * kl, "neg_elbo": recon + kl, "recon": recon, "kl": kl, "chars": mask.sum(-1)}


def iwae_log_prob(model: SentenceVAE, params, x, key, num_samples: int, eol: int, chunk_size: int = 10):
    """log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x) (Burda et al. 2016, Eq. 8): a lower bound on
    log p(x) in expectation, float32 [N] nats per line (k = 1: the ELBO). Exact log p(x) when `latent` is
    False (no z)."""
    x = jnp.asarray(x, jnp.int32)
    mask = line_mask(x, eol)
    if not model.latent:
        return recon_log_prob(model, params, jnp.zeros((x.shape[0], model.latent_dim)), x, mask)
    mean, log_var = encode(model, params, x, mask)

    def log_px_z(z):  # z [c, N, L] -> [c, N]
        c = z.shape[0]
        rep = lambda a: jnp.broadcast_to(a, (c, *a.shape)).reshape(-1, *a.shape[1:])  # noqa: E731
        return recon_log_prob(model, params, z.reshape(-1, z.shape[-1]), rep(x), rep(mask)).reshape(c, x.shape[0])

    return importance_weighted_log_prob(log_px_z, mean, log_var, key, num_samples, chunk_size)


# -- sampling ---------------------------------------------------------------------------------------------
def decode(model: SentenceVAE, params, z, key, max_len: int, eol: int, temperature=1.0, greedy: bool = False):
    """Lines int32 [N, max_len] decoded from z [N, latent_dim] by `sampling.ancestral`, carrying the decoder
    state (position t with `fold_in(key, t)`; `greedy`: the most probable character instead of a draw).
    Positions after the first EOL are EOL."""
    variables = {"params": params}
    z = jnp.asarray(z, jnp.float32)
    carry = model.apply(variables, z, method=SentenceVAE.initial_state)
    buf = jnp.full((z.shape[0], max_len), eol, jnp.int32)

    def step(carry, x, t):  # the logits of position t from the state and x_{t-1} (BOS at t = 0)
        prev = jax.lax.dynamic_index_in_dim(x, jnp.maximum(t - 1, 0), 1, keepdims=False)
        prev = jnp.where(t == 0, model.bos, prev)
        carry, logits = model.apply(variables, carry, prev, z, method=SentenceVAE.decode_step)
        return logits, carry

    draw_fn = (lambda k, logits: jnp.argmax(logits, axis=-1).astype(jnp.int32)) if greedy else None
    x, _ = sampling.ancestral(step, carry, buf, key, 0, temperature=temperature, draw_fn=draw_fn)
    return end_lines(x, eol)


def sample(model: SentenceVAE, params, key, num_samples: int, max_len: int, eol: int, temperature=1.0,
           greedy: bool = False):
    """Lines int32 [num_samples, max_len]: z ~ N(0, I) with the first key of `split(key)` (z = 0 when `latent`
    is False), then `decode` with the second."""
    key_z, key_x = jax.random.split(key)
    z = jax.random.normal(key_z, (num_samples, model.latent_dim)) * (1.0 if model.latent else 0.0)
    return decode(model, params, z, key_x, max_len, eol, temperature, greedy)


def homotopy(model: SentenceVAE, params, x1, x2, num_points: int, eol: int, key=None, greedy: bool = True):
    """Decodes along z_t = (1 - t) z_1 + t z_2, t = 0, 1/(P-1), .., 1, between the posterior means z_1, z_2 of
    lines x1, x2 int [N, T] (Bowman et al., Sec. 5.3): int32 [N, P, T], greedy (or sampled with `key`)."""
    m1, _ = encode(model, params, x1, eol=eol)
    m2, _ = encode(model, params, x2, eol=eol)
    t = jnp.linspace(0.0, 1.0, num_points)[None, :, None]
    z = ((1 - t) * m1[:, None] + t * m2[:, None]).reshape(-1, m1.shape[-1])
    key = jax.random.key(0) if key is None else key
    out = decode(model, params, z, key, x1.shape[1], eol, greedy=greedy)
    return out.reshape(x1.shape[0], num_points, -1)
