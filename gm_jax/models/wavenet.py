"""WaveNet (van den Oord et al. 2016, "WaveNet: A Generative Model for Raw Audio") with global conditioning,
and its two samplers: naive and the cached queue sampler of Paine et al. 2016.

The model factorises a mu-law quantised waveform x_0 .. x_{T-1} (256 classes) as

    p(x | c) = prod_t p(x_t | x_<t, c)                                        (Eq. 1-2)

with a stack of layers l = 1..L of causal dilated convolutions (kernel 2,
dilation d_l = 2^(l mod layers_per_block): 1, 2, ..., 2^(K-1), repeated in
`num_blocks` blocks; Sec. 2.1), each followed by the gated activation unit
with global conditioning (Eq. 2 and Sec. 2.5)

    z_l = tanh(W_f,0 h_l[t - d_l] + W_f,1 h_l[t] + V_f c) * sigmoid(W_g,0 h_l[t - d_l] + W_g,1 h_l[t] + V_g c)

a residual connection h_{l+1} = h_l + W_r z_l and a skip connection
s = sum_l W_s,l z_l (Sec. 2.4, Fig. 4); the output is
logits = W_2 relu(W_1 relu(s)) and p(x_t | x_<t, c) = softmax(logits_t) over
the 256 mu-law classes (Sec. 2.2). c = [e_digit; e_speaker], learned
embeddings of the digit and the speaker.

Causality: the network's input at position t is the embedding of x_{t-1}
(x_{-1} is the start class 128, amplitude 0), so logits_t depend on
x_{t-R} .. x_{t-1} only, with the receptive field

    R = 1 + sum_l d_l (kernel 2)                                             (`receptive_field`)

Positions before the start of the sequence are zeros at every layer (zero
padding of each dilated convolution).

Samplers (both run the library's one ancestral loop, `gm_jax.sampling.ancestral`,
and draw x_t from the logits of step t with the key fold_in(key, t), so for the
same key and parameters they draw the same waveform):

* `sample_naive`: for every new sample re-runs the whole stack over the last R
  positions (everything the new sample depends on): O(R L) work per sample.
* `sample_cached` (Paine et al. 2016, "Fast Wavenet Generation Algorithm"): one
  queue per layer holding that layer's last d_l inputs h_l; each new sample
  pops h_l[t - d_l], runs every layer once at position t and pushes h_l[t]
  (`WaveNet.step`): O(L) work per sample.

`PAPER` holds the paper's hyperparameters (Sec. 2.3, 3.1).
"""
from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax import distributions, sampling
from gm_jax.nn import Dense, gated_activation

NUM_CLASSES = 256
START_CLASS = 128  # mu-law class of amplitude 0: the input before the first sample


def dilations(layers_per_block: int, num_blocks: int) -> tuple[int, ...]:
    """(1, 2, ..., 2^(layers_per_block - 1)) repeated `num_blocks` times."""
    if layers_per_block < 1 or num_blocks < 1:
        raise ValueError(f"layers_per_block and num_blocks must be >= 1, got {layers_per_block}, {num_blocks}")
    return tuple(2 ** i for i in range(layers_per_block)) * num_blocks


def receptive_field(dilation_seq: Sequence[int], kernel_size: int = 2) -> int:
    """Samples x_{t-R} .. x_{t-1} that p(x_t | ...) can depend on: R = 1 + sum_l d_l (kernel_size - 1).

    (The 1 is the input embedding of x_{t-1}.) Divide by 8,000 Hz for seconds.
    """
    return 1 + sum(int(d) * (kernel_size - 1) for d in dilation_seq)


class DilatedCausalConv(nn.Module):
    """A kernel-2 causal convolution with dilation d (Sec. 2.1, Fig. 3): y[t] = W_0 h[t - d] + W_1 h[t] + b.

    Its parameters are those of a `Dense` layer on [h[t - d]; h[t]]: `kernel` [2 C, features] (rows :C are
    W_0, the tap at t - d; rows C: are W_1) and `bias` [features]. Over a whole sequence it is one matmul
    of h with [W_0 | W_1] and a shift of the W_0 half by d positions (h W_0 shifted = (h shifted) W_0),
    so no shifted copy of h is concatenated to h.
    """

    features: int
    dilation: int

    @nn.compact
    def __call__(self, h: jax.Array, h_prev: jax.Array | None = None, mask: jax.Array | None = None) -> jax.Array:
        """y of a whole sequence or of one position.

        Args:
          h: float [B, T, C] (the sequence, h_prev None) or [B, C] (one position t, with h_prev).
          h_prev: float [B, C], h[t - d] of that one position.
          mask: optional float [B, T, 1] of the sequence: 0 marks positions that do not exist (zeros when
            the past tap reads them).

        Returns:
          float [B, T, features] (positions t < d read zeros as h[t - d]) or [B, features].
        """
        c, f = h.shape[-1], self.features
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (2 * c, f)).astype(h.dtype)
        bias = self.param("bias", nn.initializers.zeros, (f,)).astype(h.dtype)
        if h_prev is not None:
            return jnp.concatenate([h_prev, h], axis=-1) @ kernel + bias
        b, t = h.shape[:2]
        y = (h.reshape(-1, c) @ jnp.concatenate([kernel[:c], kernel[c:]], axis=1)).reshape(b, t, 2 * f)
        past = y[..., :f] if mask is None else y[..., :f] * mask
        past = jnp.pad(past, ((0, 0), (self.dilation, 0), (0, 0)))[:, :t]
        return past + y[..., f:] + bias


class WaveNet(nn.Module):
    """The WaveNet stack (module docstring).

    Attributes:
      dilation_seq: dilation of each layer, e.g. `dilations(9, 2)`.
      residual_channels: width R of the residual stream.
      skip_channels: width of the skip connections and of the output layers.
      num_digits, num_speakers: sizes of the conditioning vocabularies (0 = no such conditioning).
      cond_dim: embedding width of each conditioning variable.
      num_classes: output classes (256 for 8-bit mu-law).
    """

    dilation_seq: tuple[int, ...]
    residual_channels: int = 32
    skip_channels: int = 64
    num_digits: int = 10
    num_speakers: int = 6
    cond_dim: int = 16
    num_classes: int = NUM_CLASSES

    def setup(self):
        r, s = self.residual_channels, self.skip_channels
        self.embed = nn.Embed(self.num_classes, r, name="input_embed")
        if self.num_digits:
            self.digit_embed = nn.Embed(self.num_digits, self.cond_dim)
        if self.num_speakers:
            self.speaker_embed = nn.Embed(self.num_speakers, self.cond_dim)
        n = len(self.dilation_seq)
        # the kernel-2 dilated convolution (filter and gate halves)
        self.conv = [DilatedCausalConv(2 * r, d, name=f"layer{i}_dilated_conv")
                     for i, d in enumerate(self.dilation_seq)]
        self.cond_proj = [Dense(2 * r, use_bias=False, name=f"layer{i}_cond") for i in range(n)]
        # 1x1 residual (first r outputs) and skip (last s outputs) projections of z
        self.res_skip = [Dense(r + s, name=f"layer{i}_residual_skip") for i in range(n)]
        self.out1 = Dense(s, name="out1")
        self.out2 = Dense(self.num_classes, name="out2")

    def condition(self, digit, speaker) -> jax.Array:
        """c = [e_digit; e_speaker]: float [B, C] from int [B] labels (a zero-width vector without conditioning)."""
        parts = []
        if self.num_digits:
            parts.append(self.digit_embed(jnp.asarray(digit, jnp.int32)))
        if self.num_speakers:
            parts.append(self.speaker_embed(jnp.asarray(speaker, jnp.int32)))
        if not parts:
            b = jnp.shape(digit)[0] if digit is not None else 1
            return jnp.zeros((b, 0), jnp.float32)
        return jnp.concatenate(parts, axis=-1)

    def _layer(self, i: int, conv, h_cur, cond):
        """Layer i at some positions: (its dilated convolution's output, h[t], V c) -> (h_next[t], skip[t])."""
        z = gated_activation(conv + cond)
        rs = self.res_skip[i](z)
        return h_cur + rs[..., : self.residual_channels], rs[..., self.residual_channels:]

    def _head(self, skip):
        return self.out2(nn.relu(self.out1(nn.relu(skip))))

    def __call__(self, inputs, digit, speaker, valid=None) -> jax.Array:
        """Logits of every position.

        Args:
          inputs: int32 [B, T] network inputs: position t holds x_{t-1} (position 0 the start class 128);
            see `shift_inputs`. Or float [B, T, num_classes] one-hot (or soft) inputs, the same as the
            integer form for one-hot rows (used to take gradients with respect to the inputs).
          digit, speaker: int32 [B] labels.
          valid: optional bool [B, T]: positions that exist (False marks positions before the
            sequence start, treated as zero padding at every layer); default all valid.

        Returns:
          float32 [B, T, num_classes] logits; logits[:, t] parameterise p(x_t | x_<t, c).
        """
        if jnp.ndim(inputs) == 3:
            h = jnp.asarray(inputs, jnp.float32) @ self.embed.embedding
        else:
            h = self.embed(inputs)
        cond = self.condition(digit, speaker)
        mask = None if valid is None else valid[..., None].astype(h.dtype)
        skip = 0.0
        for i in range(len(self.dilation_seq)):
            c = self.cond_proj[i](cond)[:, None, :]
            h, s = self._layer(i, self.conv[i](h, mask=mask), h, c)
            skip = skip + s
        return self._head(skip)

    def step(self, inputs, cond_proj, queues, t):
        """One position of the fast sampler (Paine et al. 2016, Algorithm 1).

        Args:
          inputs: int32 [B] the input at position t (x_{t-1}).
          cond_proj: tuple of float [B, 2R], V c of every layer (`cond_projections`).
          queues: tuple of float [B, d_l, R]: queue l holds h_l at positions t - d_l .. t - 1 in slots
            (position mod d_l).
          t: int32 scalar, the position.

        Returns:
          (logits float32 [B, num_classes], the updated queues).
        """
        h = self.embed(inputs)
        skip = 0.0
        new_queues = []
        for i, d in enumerate(self.dilation_seq):
            slot = t % d
            q = queues[i]
            prev = jax.lax.dynamic_index_in_dim(q, slot, axis=1, keepdims=False)  # h_l[t - d] (pop)
            new_queues.append(jax.lax.dynamic_update_index_in_dim(q, h, slot, axis=1))  # h_l[t] (push)
            h, s = self._layer(i, self.conv[i](h, h_prev=prev), h, cond_proj[i])
            skip = skip + s
        return self._head(skip), tuple(new_queues)

    def cond_projections(self, digit, speaker):
        """V_l c for every layer: tuple of float [B, 2R]."""
        cond = self.condition(digit, speaker)
        return tuple(p(cond) for p in self.cond_proj)


def shift_inputs(x: jax.Array) -> jax.Array:
    """Network inputs of a sequence: int32 [B, T] x -> [START_CLASS, x_0, ..., x_{T-2}]."""
    x = jnp.asarray(x, jnp.int32)
    return jnp.pad(x[:, :-1], ((0, 0), (1, 0)), constant_values=START_CLASS)


def init_params(model: WaveNet, key: jax.Array, length: int = 16):
    """Parameters of `model` (every layer, including those only `step` reaches, is built by `__call__`)."""
    x = jnp.full((1, length), START_CLASS, jnp.int32)
    lab = jnp.zeros((1,), jnp.int32)
    return model.init(key, x, lab, lab)["params"]


def conditional_logits(model: WaveNet, params, x: jax.Array, digit, speaker) -> jax.Array:
    """The logits of p(x_t | x_<t, c) of every sample t (one pass over `shift_inputs(x)`): float32
    [B, T, 256] over the mu-law classes.

    Args:
      x: int32 [B, T] mu-law classes in 0..255.
      digit, speaker: int32 [B].
    """
    return model.apply({"params": params}, shift_inputs(x), digit, speaker).astype(jnp.float32)


def log_probs(model: WaveNet, params, x: jax.Array, digit, speaker) -> jax.Array:
    """log p(x_t | x_<t, c) of every sample: float32 [B, T] nats (from `conditional_logits`).

    Args:
      x: int32 [B, T] mu-law classes in 0..255.
      digit, speaker: int32 [B].
    """
    return distributions.categorical_log_prob(conditional_logits(model, params, x, digit, speaker), x, event_ndims=0)


def sample_naive(model: WaveNet, params, key: jax.Array, digit, speaker, length: int,
                 temperature: float = 1.0) -> jax.Array:
    """Naive ancestral sampling (`sampling.ancestral`): the full stack over the last R positions for every
    new sample.

    Args:
      model: the WaveNet; params: its parameters.
      key: PRNG key; sample t uses `fold_in(key, t)`.
      digit, speaker: int32 [B] labels.
      length: samples to draw (static int >= 1).
      temperature: float > 0, logits are divided by it.

    Returns:
      int32 [B, length] mu-law classes (the same as `sample_cached` for the same key and parameters).
    """
    digit = jnp.asarray(digit, jnp.int32)
    speaker = jnp.asarray(speaker, jnp.int32)
    b = digit.shape[0]
    r = receptive_field(model.dilation_seq)
    offsets = jnp.arange(r)

    def step(cache, x, t):
        # buf[r - 1 + t] = network input at position t (x_{t-1}); the first r - 1 entries are padding
        buf = jnp.concatenate([jnp.full((b, r), START_CLASS, jnp.int32), x], axis=1)
        window = jax.lax.dynamic_slice_in_dim(buf, t, r, axis=1)  # positions t - r + 1 .. t
        valid = jnp.broadcast_to((t - r + 1 + offsets) >= 0, (b, r))
        return model.apply({"params": params}, window, digit, speaker, valid)[:, -1], cache

    x, _ = sampling.ancestral(step, None, jnp.zeros((b, length), jnp.int32), key, 0, temperature=temperature)
    return x


def sample_cached(model: WaveNet, params, key: jax.Array, digit, speaker, length: int,
                  temperature: float = 1.0) -> jax.Array:
    """Fast ancestral sampling with per-layer queues (Paine et al. 2016): `WaveNet.step` in
    `sampling.ancestral`, O(L) work per sample.

    Same arguments and result as `sample_naive` (identical samples for the same key and parameters,
    up to float rounding differences between the two computations, which can flip a draw only when a
    uniform falls within ~1e-6 of a class boundary).
    """
    digit = jnp.asarray(digit, jnp.int32)
    speaker = jnp.asarray(speaker, jnp.int32)
    b = digit.shape[0]
    variables = {"params": params}
    cond = model.apply(variables, digit, speaker, method=WaveNet.cond_projections)
    queues = tuple(jnp.zeros((b, d, model.residual_channels), jnp.float32) for d in model.dilation_seq)

    def step(queues, x, t):
        x_prev = jnp.where(t == 0, START_CLASS, jax.lax.dynamic_index_in_dim(x, t - 1, 1, keepdims=False))
        return model.apply(variables, x_prev, cond, queues, t, method=WaveNet.step)

    x, _ = sampling.ancestral(step, queues, jnp.zeros((b, length), jnp.int32), key, 0, temperature=temperature)
    return x


# The paper's setting where it is stated (van den Oord et al. 2016 give few hyperparameters). Sec. 3.1
# (multi-speaker speech): receptive field about 300 ms; dilations 1, 2, ..., 512 repeated (Sec. 2.3): 10
# layers per block, 3 blocks; 16 kHz audio, 256 mu-law classes; global conditioning on the speaker
# (one-hot). Channel widths are not stated in the paper; 32 residual / 512 skip channels are those of
# ibab/tensorflow-wavenet.
PAPER = {"layers_per_block": 10, "num_blocks": 3, "residual_channels": 32, "skip_channels": 512,
         "receptive_field_samples": receptive_field(dilations(10, 3))}
