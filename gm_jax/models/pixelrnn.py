"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks"): the Row LSTM
and the Diagonal BiLSTM.

Both model p(x) = prod_i p(x_i | x_<i) over the pixels of a grey image in raster order (rows top to bottom,
columns left to right; Sec. 2), with one Bernoulli logit per pixel for binary data (`num_values=2`) or a
`num_values`-way softmax (256 for 8-bit data, Sec. 2.2). The network (Sec. 3.4, Table 1):

    7x7 mask-A conv (2h features) -> L residual LSTM layers -> ReLU, 1x1 mask-B conv -> ReLU, 1x1 mask-B conv

Each LSTM layer reads its input map u [N, H, W, 2h] and adds a 1x1 conv (h -> 2h) of its hidden states back to
it (the residual connection of Sec. 3.4, Fig. 5 left). An LSTM position has four gates (i, f, o, g), a cell c and
a hidden state h (Sec. 3.1, Eq. 3):

    [o, f, i, g] = [sigma, sigma, sigma, tanh](K_ss * h_prev + K_is * u),  c = f . c_prev + i . g,  h = o . tanh(c)

* `RowLSTMPixelRNN` (Sec. 3.1): rows are processed top to bottom (`lax.scan` over rows). The input-to-state
  part K_is is a 1 x k mask-B conv along the row (position (r, c) sees the layer input at (r, c - k//2 .. c)),
  computed for the whole image at once; the state-to-state part K_ss is a 1-D conv of width k over the previous
  row's hidden states (r - 1, c - k//2 .. c + k//2); c_prev is the cell at (r - 1, c). Its receptive field is a
  triangle above the pixel, widening by k//2 columns per row (plus the row so far through the first layer's
  mask and K_is): some pixels above-right / above-left are never seen (tested).
* `DiagonalBiLSTMPixelRNN` (Sec. 3.2): the map is skewed (row r shifted right by r) so that the diagonals become
  columns; a scan along the skewed columns computes the state at (r, c) from the states at (r - 1, c) and
  (r, c - 1) (a 2 x 1 conv K_ss over the previous skewed column; c_prev is the cell at (r, c - 1)); K_is is a
  1x1 mask-B conv. Skewed positions outside the image hold zero states. The right-to-left direction is the same
  layer (own parameters) on the horizontally flipped map; its output is shifted down one row before it is added
  to the left-to-right one, so no future pixel leaks in. Its dependency field covers every pixel above and to the
  left; the one exception (of the architecture, not of this code) is the last pixel of the row above, (r - 1,
  W - 1), which only the first layer's mask-A kernel reaches (for c >= W - 1 - first_kernel // 2): every
  hidden state of row r - 1 is blind to it by causality, and the down-shifted right-to-left states are from row
  r - 1 (tested exactly).

Samplers (both run `gm_jax.sampling.ancestral`; pixel i draws with `fold_in(key, i)`, so the same key gives the
same samples):

* `sample_naive`: one full network evaluation per pixel.
* `sample_cached`: the models' `init_cache` / `step` carry the LSTM states, so each pixel costs O(layers) small
  work. Row LSTM: per layer the previous row's hidden states and cells and the current row's layer inputs.
  Diagonal BiLSTM: per layer the left-to-right states of the previous row and of the left neighbour; the
  right-to-left contribution to row r depends on rows < r only, so it is computed once per row when the row
  starts (a right-to-left scan over the completed row's layer inputs, like `GatedPixelCNN._row`).

Likelihood: `pixelcnn.log_prob` / `log_prob_per_pixel` / `conditional_logits` take these models unchanged
(exact log p(x) in nats). Context (2016a, Table 4, binarized MNIST test NLL): PixelCNN 81.30, Row LSTM 80.54,
Diagonal BiLSTM (7 layers, h = 16, Sec. 4) 79.20 nats.

Only grey images (C = 1) and unconditional models: a colour PixelRNN needs the per-channel masks inside the
recurrences (Sec. 3.4), which are not implemented here.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax import sampling
from gm_jax.models import pixelcnn
from gm_jax.models.pixelcnn import (
    _event,
    _out_dim,
    _pointwise,
    _step_logits,
    _unpadded,
    _write_pixel,
    sample_dtype,
    to_input,
)
from gm_jax.nn import MaskedConv2D, down_shift

def lstm_cell(gates: jax.Array, c_prev: jax.Array):
    """One LSTM update (2016a, Eq. 3): gates float [..., 4h] (pre-activations of i, f, o, g, in that order),
    c_prev [..., h] -> (h [..., h], c [..., h])."""
    i, f, o, g = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c_prev + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


class StateToState(nn.Module):
    """The kernel of a state-to-state convolution K_ss, as the matrix it is applied as: float32
    [taps * h, 4h] (row t * h + j: input feature j of tap t), applied to the concatenated neighbour states
    [..., taps * h]. It is a parameter holder (the recurrence runs in a `lax.scan`, which uses the matrix).

    Row LSTM: taps = k, the states of columns c - k//2 .. c + k//2 of the previous row. Diagonal BiLSTM: taps = 2,
    the states above and beside (left; right for the right-to-left direction).
    """

    taps: int
    features: int

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("kernel", nn.initializers.lecun_normal(), (self.taps * self.features, 4 * self.features))


def skew(x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> [N, H, W + H - 1, C]: row r shifted right by r (zeros elsewhere), so the image's
    diagonals r + c = j become the columns j (2016a, Sec. 3.2, Fig. 3). Pad each row with H zeros, flatten the
    rows, drop the last H entries and fold into rows of W + H - 1: row r then starts r entries later (pads and
    reshapes only, so the gradient is cheap too)."""
    n, h, w, c = x.shape
    flat = jnp.pad(x, ((0, 0), (0, 0), (0, h), (0, 0))).reshape(n, h * (w + h), c)
    return flat[:, :h * (w + h - 1)].reshape(n, h, w + h - 1, c)


def unskew(x: jax.Array, w: int) -> jax.Array:
    """The inverse of `skew`: [N, H, W + H - 1, C] -> [N, H, W, C] (the same fold backwards)."""
    n, h, _, c = x.shape
    flat = jnp.pad(x.reshape(n, h * (w + h - 1), c), ((0, 0), (0, h), (0, 0)))
    return flat.reshape(n, h, w + h, c)[:, :, :w]


def diagonal_lstm(pre: jax.Array, kernel: jax.Array) -> jax.Array:
    """Diagonal LSTM recurrences (left to right) of D independent directions at once, hidden states float32
    [D, N, H, W, h].

    The Diagonal BiLSTM's two directions (the right-to-left one on the mirrored image) share one scan over
    the skewed columns, their state-to-state products one batched matmul per column: half the sequential
    steps of two scans (timings in the README's Benchmarks section).

    Args:
      pre: [D, N, H, W, 4h] the input-to-state pre-activations (K_is * u, with bias) of each direction.
      kernel: [D, 2h, 4h] the state-to-state kernels (`StateToState(2, h)`): taps (above, left).
    """
    d, n, h, w, f4 = pre.shape
    f = f4 // 4
    rows = jnp.arange(h)
    valid = (jnp.arange(w + h - 1)[:, None] >= rows[None]) & (jnp.arange(w + h - 1)[:, None] < rows[None] + w)

    def column(carry, inp):  # carry: the states of skewed column j - 1, [D N, H, h] each
        hs, cs = carry
        pre_j, valid_j = inp
        above = jnp.pad(hs, ((0, 0), (1, 0), (0, 0)))[:, :-1]  # (r - 1, j - 1): the image pixel above
        state = jnp.concatenate([above, hs], -1).reshape(d, n * h, 2 * f)  # with (r, j - 1): the left one
        gates = jnp.einsum("dmk,dkg->dmg", state, kernel).reshape(d * n, h, f4)
        hn, cn = lstm_cell(pre_j + gates, cs)
        m = valid_j[None, :, None].astype(hn.dtype)  # zero states outside the image
        return (hn * m, cn * m), hn * m

    zero = jnp.zeros((d * n, h, f), pre.dtype)
    skewed = skew(pre.reshape(d * n, h, w, f4))
    _, out = jax.lax.scan(column, (zero, zero), (jnp.moveaxis(skewed, 2, 0), valid))  # [W + H - 1, D N, H, h]
    return unskew(jnp.moveaxis(out, 0, 2), w).reshape(d, n, h, w, f)


def row_lstm(pre: jax.Array, kernel: jax.Array, k: int) -> jax.Array:
    """A Row LSTM layer's recurrence, hidden states float32 [N, H, W, h].

    Args:
      pre: [N, H, W, 4h] the input-to-state pre-activations (the 1 x k mask-B conv of the layer input, with bias).
      kernel: [k h, 4h] the state-to-state kernel (`StateToState(k, h)`): taps columns c - k//2 .. c + k//2 of
        the previous row.
      k: the state-to-state width (odd).
    """
    n, h, w, f4 = pre.shape
    f, p = f4 // 4, k // 2

    def row(carry, pre_r):  # carry: the previous row's states, [N, W, h] each
        hs, cs = carry
        hp = jnp.pad(hs, ((0, 0), (p, p), (0, 0)))
        win = jnp.concatenate([hp[:, d:d + w] for d in range(k)], -1)  # [N, W, k h]
        hs, cs = lstm_cell(pre_r + win @ kernel, cs)
        return (hs, cs), hs

    zero = jnp.zeros((n, w, f), pre.dtype)
    _, out = jax.lax.scan(row, (zero, zero), jnp.moveaxis(pre, 1, 0))  # [H, N, W, h]
    return jnp.moveaxis(out, 0, 1)


class _PixelRNN(nn.Module):
    """Shared attributes and layers (see the subclasses)."""

    image_shape: tuple = (28, 28, 1)
    num_values: int = 2
    features: int = 16
    num_layers: int = 2
    first_kernel: int = 7
    output_features: int = 32

    def _io_layers(self):
        if len(self.image_shape) != 3 or self.image_shape[-1] != 1:
            raise ValueError(f"{type(self).__name__} models grey images [H, W, 1], got image_shape {self.image_shape}")
        if self.first_kernel % 2 == 0 or self.first_kernel < 1:
            raise ValueError(f"first_kernel must be odd and positive, got {self.first_kernel}")
        f = self.features
        self.conv_in = MaskedConv2D(2 * f, (self.first_kernel,) * 2, "A")
        self.res = [MaskedConv2D(2 * f, (1, 1), "B", name=f"res{l}") for l in range(self.num_layers)]
        self.out_a = MaskedConv2D(self.output_features, (1, 1), "B")
        self.out_b = MaskedConv2D(_out_dim(self.num_values), (1, 1), "B")

    @staticmethod
    def _no_labels(labels):
        if labels is not None:
            raise ValueError("PixelRNN models here are unconditional: labels must be None")

    def _input(self, x):
        return self.conv_in(to_input(x, self.num_values))

    def _head(self, u):
        return self.out_b(nn.relu(self.out_a(nn.relu(u))))

    def _step_head(self, u):
        """`_head` at one position, u [N, 2h] -> the logits `sampling.draw` takes ([N] or [N, num_values])."""
        return _step_logits(_pointwise(self.out_b, nn.relu(_pointwise(self.out_a, nn.relu(u)))), self.num_values)

    def _window_in(self, xbuf, r, col):
        """The first layer's output at pixel (r, col), [N, 2h], from the padded input buffer."""
        k = self.first_kernel
        win = jax.lax.dynamic_slice(xbuf, (0, r, col, 0), (xbuf.shape[0], k, k, 1))
        return _unpadded(self.conv_in, win)[:, 0, 0]

    def _empty_input_buffer(self, n):
        h, w, _ = self.image_shape
        p = self.first_kernel // 2
        xbuf = jnp.zeros((n, h + 2 * p, w + 2 * p, 1), jnp.float32)
        # pixels not drawn yet are masked out, but hold the naive sampler's input value (pixel 0)
        return xbuf.at[:, p:p + h, p:p + w].set(to_input(jnp.zeros((), jnp.int32), self.num_values))


class RowLSTMPixelRNN(_PixelRNN):
    """Row LSTM PixelRNN (2016a, Sec. 3.1 and 3.4).

    Attributes:
      image_shape: (H, W, 1).
      num_values: 2 (one Bernoulli logit per pixel) or e.g. 256 (softmax).
      features: h, the LSTM state size; the residual stream has 2h channels.
      num_layers: Row LSTM layers.
      first_kernel: size of the first (mask A) convolution (odd).
      kernel_size: k (odd), the width of the input-to-state (1 x k, mask B) and state-to-state (1-D) convolutions.
      output_features: width of the 1x1 output layer.

    Call: integer pixels [N, H, W, 1] (labels must be None) -> logits float32 [N, H, W, 1, out], out = 1
    (binary) or num_values. `init_cache` / `step`: the cached sampler.

    Raises (at init / apply):
      ValueError: image_shape with C != 1, even kernel sizes, or labels given.
    """

    kernel_size: int = 3

    def setup(self):
        self._io_layers()
        k, f = self.kernel_size, self.features
        if k % 2 == 0 or k < 1:
            raise ValueError(f"kernel_size must be odd and positive, got {k}")
        self.i2s = [MaskedConv2D(4 * f, (1, k), "B", name=f"i2s{l}") for l in range(self.num_layers)]
        self.s2s = [StateToState(k, f, name=f"s2s{l}") for l in range(self.num_layers)]

    def __call__(self, x: jax.Array, labels=None) -> jax.Array:
        self._no_labels(labels)
        u = self._input(x)
        for l in range(self.num_layers):
            u = u + self.res[l](row_lstm(self.i2s[l](u), self.s2s[l](), self.kernel_size))
        return self._head(u)[..., None, :]

    def init_cache(self, n: int) -> dict:
        """The empty cache of `step` for n images: `xbuf` [N, H + 2p, W + 2p, 1] (p = first_kernel // 2) the
        network input of every pixel; per layer `ubuf` [N, W + 2q, 2h] (q = kernel_size // 2) the layer's
        inputs in the current row, `prev_h` [N, W + 2q, h] / `prev_c` [N, W, h] the states of the previous row,
        `cur_h` / `cur_c` [N, W, h] those of the current row."""
        _, w, _ = self.image_shape
        f, q, L = self.features, self.kernel_size // 2, self.num_layers
        z = jnp.zeros
        return {"xbuf": self._empty_input_buffer(n),
                "ubuf": tuple(z((n, w + 2 * q, 2 * f), jnp.float32) for _ in range(L)),
                "prev_h": tuple(z((n, w + 2 * q, f), jnp.float32) for _ in range(L)),
                "prev_c": tuple(z((n, w, f), jnp.float32) for _ in range(L)),
                "cur_h": tuple(z((n, w, f), jnp.float32) for _ in range(L)),
                "cur_c": tuple(z((n, w, f), jnp.float32) for _ in range(L))}

    def step(self, cache: dict, x: jax.Array, i: jax.Array):
        """The logits of pixel i from the cache: O(num_layers) small work per pixel.

        Args:
          cache: from `init_cache` (or the previous step).
          x: int [N, H * W] pixels in raster order; those before i are drawn.
          i: int32 scalar, the raster index.

        Returns:
          (logits float32 [N] (binary: the Bernoulli logit) or [N, num_values], the cache).
        """
        n, w = x.shape[0], self.image_shape[1]
        f, k = self.features, self.kernel_size
        q = k // 2
        c = dict(cache)
        c["xbuf"] = _write_pixel(c["xbuf"], x, i, w, (self.first_kernel // 2,) * 2, self.num_values)
        r, col = jnp.divmod(i, w)
        first = col == 0  # a new row: the current row's states become the previous row's
        u = self._window_in(c["xbuf"], r, col)
        new = {name: [] for name in ("ubuf", "prev_h", "prev_c", "cur_h", "cur_c")}
        for l in range(self.num_layers):
            prev_h = jnp.where(first, jnp.pad(c["cur_h"][l], ((0, 0), (q, q), (0, 0))), c["prev_h"][l])
            prev_c = jnp.where(first, c["cur_c"][l], c["prev_c"][l])
            ubuf = jax.lax.dynamic_update_slice(c["ubuf"][l], u[:, None], (0, col + q, 0))
            pre = _unpadded(self.i2s[l], jax.lax.dynamic_slice(ubuf, (0, col, 0), (n, k, 2 * f))[:, None])[:, 0, 0]
            win = jax.lax.dynamic_slice(prev_h, (0, col, 0), (n, k, f)).reshape(n, k * f)
            hs, cs = lstm_cell(pre + win @ self.s2s[l](),
                               jax.lax.dynamic_index_in_dim(prev_c, col, 1, keepdims=False))
            new["cur_h"].append(jax.lax.dynamic_update_slice(c["cur_h"][l], hs[:, None], (0, col, 0)))
            new["cur_c"].append(jax.lax.dynamic_update_slice(c["cur_c"][l], cs[:, None], (0, col, 0)))
            new["ubuf"].append(ubuf)
            new["prev_h"].append(prev_h)
            new["prev_c"].append(prev_c)
            u = u + _pointwise(self.res[l], hs)
        c.update({name: tuple(v) for name, v in new.items()})
        return self._step_head(u), c


class DiagonalBiLSTMPixelRNN(_PixelRNN):
    """Diagonal BiLSTM PixelRNN (2016a, Sec. 3.2 and 3.4).

    Attributes:
      image_shape: (H, W, 1).
      num_values: 2 (one Bernoulli logit per pixel) or e.g. 256 (softmax).
      features: h, the LSTM state size of each direction; the residual stream has 2h channels.
      num_layers: Diagonal BiLSTM layers.
      first_kernel: size of the first (mask A) convolution (odd).
      output_features: width of the 1x1 output layer.

    Call: integer pixels [N, H, W, 1] (labels must be None) -> logits float32 [N, H, W, 1, out], out = 1
    (binary) or num_values. `init_cache` / `step`: the cached sampler.

    Raises (at init / apply):
      ValueError: image_shape with C != 1, an even first_kernel, or labels given.
    """

    def setup(self):
        self._io_layers()
        f, L = self.features, self.num_layers
        self.i2s_l2r = [MaskedConv2D(4 * f, (1, 1), "B", name=f"i2s_l2r{l}") for l in range(L)]
        self.i2s_r2l = [MaskedConv2D(4 * f, (1, 1), "B", name=f"i2s_r2l{l}") for l in range(L)]
        self.s2s_l2r = [StateToState(2, f, name=f"s2s_l2r{l}") for l in range(L)]
        self.s2s_r2l = [StateToState(2, f, name=f"s2s_r2l{l}") for l in range(L)]

    def __call__(self, x: jax.Array, labels=None) -> jax.Array:
        self._no_labels(labels)
        u = self._input(x)
        for l in range(self.num_layers):
            pre = jnp.stack([self.i2s_l2r[l](u), self.i2s_r2l[l](u)[:, :, ::-1]])  # r2l: on the mirrored image
            l2r, r2l = diagonal_lstm(pre, jnp.stack([self.s2s_l2r[l](), self.s2s_r2l[l]()]))
            r2l = r2l[:, :, ::-1]
            u = u + self.res[l](l2r + down_shift(r2l))  # r2l of row r - 1 joins row r: no future pixel
        return self._head(u)[..., None, :]

    def init_cache(self, n: int) -> dict:
        """The empty cache of `step` for n images: `xbuf` [N, H + 2p, W + 2p, 1] (p = first_kernel // 2) the
        network input of every pixel; per layer `urow` [N, W, 2h] the layer's inputs in the current row,
        `prev_h` / `cur_h` [N, W, h] the left-to-right hidden states of the previous / current row, `left_h`
        / `left_c` [N, h] the left-to-right states of the previous pixel, and `r2l` [N, W, h] the
        right-to-left hidden states of the previous row (the down-shifted contribution to the current row)."""
        _, w, _ = self.image_shape
        f, L = self.features, self.num_layers
        z = jnp.zeros
        return {"xbuf": self._empty_input_buffer(n),
                "urow": tuple(z((n, w, 2 * f), jnp.float32) for _ in range(L)),
                "prev_h": tuple(z((n, w, f), jnp.float32) for _ in range(L)),
                "cur_h": tuple(z((n, w, f), jnp.float32) for _ in range(L)),
                "left_h": tuple(z((n, f), jnp.float32) for _ in range(L)),
                "left_c": tuple(z((n, f), jnp.float32) for _ in range(L)),
                "r2l": tuple(z((n, w, f), jnp.float32) for _ in range(L))}

    def _r2l_rows(self, urow, r2l, r):
        """The right-to-left hidden states of row r - 1 of every layer, [N, W, h] each (zeros at r = 0): a
        right-to-left scan over the completed row's layer inputs `urow`, with the states of row r - 2 (`r2l`)
        above. Called once per row, when row r starts."""
        out = []
        for l in range(self.num_layers):
            pre = self.i2s_r2l[l](urow[l][:, None])[:, 0]  # [N, W, 4h]
            kernel = self.s2s_r2l[l]()

            def pixel(carry, inp, kernel=kernel):  # carry: the states of the pixel to the right
                hs, cs = carry
                pre_c, above = inp
                hs, cs = lstm_cell(pre_c + jnp.concatenate([above, hs], -1) @ kernel, cs)
                return (hs, cs), hs

            zero = jnp.zeros(r2l[l].shape[::2], jnp.float32)
            _, hs = jax.lax.scan(pixel, (zero, zero), (jnp.moveaxis(pre, 1, 0), jnp.moveaxis(r2l[l], 1, 0)),
                                 reverse=True)
            out.append(jnp.where(r == 0, 0.0, jnp.moveaxis(hs, 0, 1)))
        return tuple(out)

    def step(self, cache: dict, x: jax.Array, i: jax.Array):
        """The logits of pixel i from the cache: O(num_layers) small work per pixel, plus one right-to-left
        scan per layer when a row starts.

        Args:
          cache: from `init_cache` (or the previous step).
          x: int [N, H * W] pixels in raster order; those before i are drawn.
          i: int32 scalar, the raster index.

        Returns:
          (logits float32 [N] (binary: the Bernoulli logit) or [N, num_values], the cache).
        """
        w = self.image_shape[1]
        c = dict(cache)
        c["xbuf"] = _write_pixel(c["xbuf"], x, i, w, (self.first_kernel // 2,) * 2, self.num_values)
        r, col = jnp.divmod(i, w)
        first = col == 0
        c["r2l"] = nn.cond(first, lambda mdl, urow, r2l, r: mdl._r2l_rows(urow, r2l, r),
                           lambda mdl, urow, r2l, r: r2l, self, c["urow"], c["r2l"], r)
        u = self._window_in(c["xbuf"], r, col)
        new = {name: [] for name in ("urow", "prev_h", "cur_h", "left_h", "left_c")}
        for l in range(self.num_layers):
            prev_h = jnp.where(first, c["cur_h"][l], c["prev_h"][l])
            left_h = jnp.where(first, 0.0, c["left_h"][l])
            left_c = jnp.where(first, 0.0, c["left_c"][l])
            above = jax.lax.dynamic_index_in_dim(prev_h, col, 1, keepdims=False)
            gates = _pointwise(self.i2s_l2r[l], u) + jnp.concatenate([above, left_h], -1) @ self.s2s_l2r[l]()
            hs, cs = lstm_cell(gates, left_c)
            new["urow"].append(jax.lax.dynamic_update_slice(c["urow"][l], u[:, None], (0, col, 0)))
            new["cur_h"].append(jax.lax.dynamic_update_slice(c["cur_h"][l], hs[:, None], (0, col, 0)))
            new["prev_h"].append(prev_h)
            new["left_h"].append(hs)
            new["left_c"].append(cs)
            u = u + _pointwise(self.res[l], hs + jax.lax.dynamic_index_in_dim(c["r2l"][l], col, 1, keepdims=False))
        c.update({name: tuple(v) for name, v in new.items()})
        return self._step_head(u), c


PIXELRNN_MODELS = (RowLSTMPixelRNN, DiagonalBiLSTMPixelRNN)


def _check_model(model, labels):
    if not isinstance(model, PIXELRNN_MODELS):
        raise TypeError(f"expected a RowLSTMPixelRNN or DiagonalBiLSTMPixelRNN, got {type(model).__name__}")
    if labels is not None:
        raise ValueError("PixelRNN models here are unconditional: labels must be None")


def sample_naive(model: nn.Module, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
    """Ancestral sampling with one full network pass per pixel (`pixelcnn.sample_naive`: the same loop).

    Args:
      model, params: a `RowLSTMPixelRNN` / `DiagonalBiLSTMPixelRNN` and its parameters.
      key: PRNG key; pixel i (raster index) draws with `fold_in(key, i)`.
      num_samples: N (static).
      labels: must be None (unconditional models).

    Returns:
      uint8 [N, H, W, 1] pixels in [0, num_values) (int32 for num_values > 256).

    Raises:
      TypeError: not a PixelRNN model. ValueError: labels given.
    """
    _check_model(model, labels)
    return pixelcnn.sample_naive(model, params, key, num_samples)


def sample_cached(model: nn.Module, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
    """Fast ancestral sampling that carries the per-layer LSTM states (the models' `init_cache` / `step`).

    Gives the same samples as `sample_naive` for the same key and parameters (up to float rounding in the
    logits, which flips a draw only when a uniform lands within ~1e-6 of a threshold).

    Args / Returns / Raises: as `sample_naive`.
    """
    _check_model(model, labels)
    variables = {"params": params}
    cache = model.apply(variables, num_samples, method=type(model).init_cache)
    h, w, _ = model.image_shape

    def step(cache, x, i):
        return model.apply(variables, cache, x, i, method=type(model).step)

    x, _ = sampling.ancestral(step, cache, jnp.zeros((num_samples, h * w), jnp.int32), key, 0,
                              event=_event(model.num_values))
    return x.reshape(num_samples, h, w, 1).astype(sample_dtype(model.num_values))
