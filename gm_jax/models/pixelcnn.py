"""PixelCNN (van den Oord et al. 2016a) and Gated PixelCNN (van den Oord et al. 2016b).

Both model p(x) = prod_i p(x_i | x_<i) over pixels in raster order (rows top
to bottom, columns left to right, channels R -> G -> B within a pixel), with
one Bernoulli logit per sub-pixel for binary data (`num_values=2`) or a
`num_values`-way softmax (256 for 8-bit data, PixelRNN Sec. 2.2).

* `PixelCNN`: a 7x7 mask-"A" convolution, residual blocks of 1x1 -> 3x3
  mask-"B" -> 1x1 convolutions (PixelRNN paper, Sec. 3.4 and Fig. 5 right),
  two 1x1 output layers. It has the "blind spot" of stacked masked convs.
* `GatedPixelCNN`: a vertical stack (down-shifted convs: sees every row above)
  and a horizontal stack (down-right-shifted 1 x (k//2+1) convs: sees the row
  so far), joined by 1x1 links from the vertical to the horizontal stack, with
  gated units tanh(W_f * x + V_f h) * sigmoid(W_g * x + V_g h) (2016b, Eq. 2-4,
  Fig. 2); the class label h enters as a learned bias per layer. The shift
  formulation (Salimans et al. 2017) keeps the vertical stack strictly above
  the current row, so the receptive field has no blind spot.

Samplers (same key + params => identical samples; pixel i draws with
`fold_in(key, i)`, i = raster index):

* `sample_naive`: one full network evaluation per pixel inside one jitted
  `lax.fori_loop` (O(H W) full passes).
* `sample_cached`: Ramachandran et al. 2017 ("Fast Generation for
  Convolutional Autoregressive Models"): per-layer activation buffers; each
  step computes only the activations of the new position from the buffered
  receptive-field windows of the previous layer. For the Gated PixelCNN the
  vertical stack of a row is computed once when the row starts (it depends on
  rows above only), and each pixel then costs L tiny (1 x k) convolutions.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax import distributions
from gm_jax.nn import (
    DownRightShiftedConv2D,
    DownShiftedConv2D,
    MaskedConv2D,
    causal_mask,
    conv2d,
    down_shift,
    gated_activation,
    right_shift,
)


def to_input(x: jax.Array, num_values: int) -> jax.Array:
    """Integer pixels -> network input: {0, 1} as floats for binary data, else scaled to [-1, 1]."""
    x = jnp.asarray(x, jnp.float32)
    return x if num_values == 2 else x * (2.0 / (num_values - 1)) - 1.0


def check_pixels(x, num_values: int, image_shape=None) -> None:
    """Raise ValueError if concrete `x` is not integer pixels in [0, num_values) (no-op under jit).

    Args:
      x: [N, H, W, C] integer/bool array.
      num_values: 2 for binary pixels, 256 for 8-bit.
      image_shape: expected (H, W, C), or None.
    """
    if isinstance(x, jax.core.Tracer):
        return
    x = np.asarray(x)
    if image_shape is not None and (x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape)):
        raise ValueError(f"expected pixels of shape [N, {', '.join(map(str, image_shape))}], got {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
        raise ValueError(f"expected integer pixels in [0, {num_values - 1}], got dtype {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > num_values - 1):
        raise ValueError(f"expected pixel values in [0, {num_values - 1}], got values in [{x.min()}, {x.max()}]")


def _out_dim(num_values: int) -> int:
    return 1 if num_values == 2 else num_values


class PixelCNN(nn.Module):
    """PixelCNN of van den Oord et al. 2016a (Sec. 3.4, Table 4: 7x7 mask A, residual 3x3 mask B blocks).

    Attributes:
      image_shape: (H, W, C).
      num_values: 2 (Bernoulli logit per sub-pixel) or e.g. 256 (softmax).
      features: h; the residual stream has 2h channels (multiple of C).
      num_layers: residual blocks.
      first_kernel: size of the first (mask A) convolution.
      output_features: width of the 1x1 output layer (multiple of C).

    Call: integer pixels [N, H, W, C] -> logits float32 [N, H, W, C, out] with
    out = 1 (binary) or num_values.
    """

    image_shape: tuple = (28, 28, 1)
    num_values: int = 2
    features: int = 32
    num_layers: int = 7
    first_kernel: int = 7
    output_features: int = 64

    @nn.compact
    def __call__(self, x: jax.Array, labels=None) -> jax.Array:
        g = self.image_shape[-1]
        f = self.features
        h = MaskedConv2D(2 * f, (self.first_kernel,) * 2, "A", g, name="conv_in")(to_input(x, self.num_values))
        for l in range(self.num_layers):
            r = MaskedConv2D(f, (1, 1), "B", g, name=f"res{l}_a")(nn.relu(h))
            r = MaskedConv2D(f, (3, 3), "B", g, name=f"res{l}_b")(nn.relu(r))
            h = h + MaskedConv2D(2 * f, (1, 1), "B", g, name=f"res{l}_c")(nn.relu(r))
        h = MaskedConv2D(self.output_features, (1, 1), "B", g, name="out_a")(nn.relu(h))
        out = MaskedConv2D(g * _out_dim(self.num_values), (1, 1), "B", g, name="out_b")(nn.relu(h))
        return out.reshape(*out.shape[:3], g, _out_dim(self.num_values))


class GatedPixelCNN(nn.Module):
    """Gated PixelCNN (van den Oord et al. 2016b) with vertical/horizontal stacks and no blind spot.

    Attributes:
      image_shape: (H, W, 1) (grey images; colour channels are not split per group here).
      num_values: 2 or e.g. 256.
      features: F, channels of each stack.
      num_layers: gated layers after the input layer.
      kernel_size: k (odd): vertical convs are (k//2 + 1) x k, horizontal 1 x (k//2 + 1).
      num_classes: > 0 for class conditioning (a learned per-layer bias from the label, Eq. 4).
      output_features: width of the 1x1 output layer.

    Call: integer pixels [N, H, W, 1], labels int [N] (when num_classes > 0)
    -> logits [N, H, W, 1, out].
    """

    image_shape: tuple = (28, 28, 1)
    num_values: int = 2
    features: int = 32
    num_layers: int = 6
    kernel_size: int = 5
    num_classes: int = 0
    output_features: int = 64

    def setup(self):
        if self.image_shape[-1] != 1:
            raise ValueError(f"GatedPixelCNN models grey images [H, W, 1], got image_shape {self.image_shape}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        f, k = self.features, self.kernel_size
        kv, kh = (k // 2 + 1, k), (1, k // 2 + 1)
        self.v_in = DownShiftedConv2D(f, kv)
        self.h_in = DownRightShiftedConv2D(f, kh)
        self.link_in = nn.Dense(f)
        self.v_convs = [DownShiftedConv2D(2 * f, kv) for _ in range(self.num_layers)]
        self.h_convs = [DownRightShiftedConv2D(2 * f, kh) for _ in range(self.num_layers)]
        self.links = [nn.Dense(2 * f) for _ in range(self.num_layers)]
        self.h_outs = [nn.Dense(f) for _ in range(self.num_layers)]
        if self.num_classes:
            self.v_cond = [nn.Embed(self.num_classes, 2 * f) for _ in range(self.num_layers)]
            self.h_cond = [nn.Embed(self.num_classes, 2 * f) for _ in range(self.num_layers)]
        self.out_a = nn.Dense(self.output_features)
        self.out_b = nn.Dense(_out_dim(self.num_values))

    def conditioning(self, labels, n: int):
        """Per-layer (v, h) biases [N, 2F] from the labels (zeros when unconditional)."""
        f = self.features
        if not self.num_classes:
            return [(jnp.zeros((n, 2 * f)), jnp.zeros((n, 2 * f)))] * self.num_layers
        if labels is None:
            raise ValueError(f"this GatedPixelCNN is class-conditional ({self.num_classes} classes): pass labels")
        labels = jnp.asarray(labels, jnp.int32)
        return [(self.v_cond[l](labels), self.h_cond[l](labels)) for l in range(self.num_layers)]

    def __call__(self, x: jax.Array, labels=None) -> jax.Array:
        xin = to_input(x, self.num_values)
        cond = self.conditioning(labels, x.shape[0])
        v = down_shift(self.v_in(xin))
        h = right_shift(self.h_in(xin)) + self.link_in(v)
        for l in range(self.num_layers):
            v_pre = self.v_convs[l](v) + cond[l][0][:, None, None]
            h_pre = self.h_convs[l](h) + self.links[l](v_pre) + cond[l][1][:, None, None]
            v = gated_activation(v_pre)
            h = h + self.h_outs[l](gated_activation(h_pre))
        return self.head(h)[..., None, :]

    def head(self, h):
        return self.out_b(nn.relu(self.out_a(nn.relu(h))))


# -- likelihood ------------------------------------------------------------------------------

def log_prob_from_logits(logits: jax.Array, x: jax.Array, num_values: int) -> jax.Array:
    """log p(x) in nats [N] from logits [N, H, W, C, out] and integer pixels x [N, H, W, C]."""
    if num_values == 2:
        return distributions.bernoulli_log_prob(logits[..., 0], x)
    return distributions.categorical_log_prob(logits, x)


def log_prob(model: nn.Module, params, x: jax.Array, labels=None) -> jax.Array:
    """Exact log p(x) = sum_i log p(x_i | x_<i), nats, float32 [N].

    Args:
      model: a `PixelCNN` or `GatedPixelCNN`.
      params: its parameters.
      x: integer [N, H, W, C] pixels in [0, num_values).
      labels: int [N] for class-conditional models.

    Raises:
      ValueError: (concrete inputs) bad shape, dtype or pixel values.
    """
    check_pixels(x, model.num_values, model.image_shape)
    return log_prob_from_logits(model.apply({"params": params}, x, labels), x, model.num_values)


def draw(key: jax.Array, logits: jax.Array, num_values: int) -> jax.Array:
    """One draw per row of logits [N, out] -> int32 [N] (Bernoulli by u < sigmoid(l), else categorical)."""
    if num_values == 2:
        u = jax.random.uniform(key, logits.shape[:1])
        return (u < jax.nn.sigmoid(logits[:, 0])).astype(jnp.int32)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _check_sample_args(model, labels, n):
    if getattr(model, "num_classes", 0):
        if labels is None:
            raise ValueError("a class-conditional model needs labels [num_samples]")
        labels = jnp.asarray(labels, jnp.int32)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape [{n}], got {labels.shape}")
    return labels


# -- samplers ----------------------------------------------------------------------------------

def sample_naive(model: nn.Module, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
    """Ancestral sampling with one full network pass per sub-pixel, in one `lax.fori_loop`.

    Args:
      model, params: a `PixelCNN` / `GatedPixelCNN` and its parameters.
      key: PRNG key; sub-pixel i (raster index over H, W, C) draws with `fold_in(key, i)`.
      num_samples: N (static).
      labels: int [N] for class-conditional models.

    Returns:
      uint8 [N, H, W, C] pixels in [0, num_values).
    """
    labels = _check_sample_args(model, labels, num_samples)
    h, w, c = model.image_shape

    def body(i, x):
        r, rest = jnp.divmod(i, w * c)
        col, ch = jnp.divmod(rest, c)
        logits = model.apply({"params": params}, x, labels)[:, r, col, ch]
        value = draw(jax.random.fold_in(key, i), logits, model.num_values)
        return x.at[:, r, col, ch].set(value.astype(x.dtype))

    x0 = jnp.zeros((num_samples, h, w, c), jnp.int32)
    return jax.lax.fori_loop(0, h * w * c, body, x0).astype(jnp.uint8)


def sample_cached(model: nn.Module, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
    """Fast ancestral sampling with per-layer activation caches (Ramachandran et al. 2017).

    Gives the same samples as `sample_naive` for the same key and parameters
    (up to float rounding in the logits, which flips a draw only when a
    uniform lands within ~1e-6 of a threshold).

    Args / Returns: as `sample_naive`.

    Raises:
      NotImplementedError: a `PixelCNN` with more than one channel (use `sample_naive`).
    """
    labels = _check_sample_args(model, labels, num_samples)
    if isinstance(model, GatedPixelCNN):
        return _sample_cached_gated(model, params, key, num_samples, labels)
    if isinstance(model, PixelCNN):
        return _sample_cached_pixelcnn(model, params, key, num_samples)
    raise TypeError(f"sample_cached supports PixelCNN and GatedPixelCNN, got {type(model).__name__}")


def _masked(p, mask_type, groups=1):
    k = p["kernel"]
    return k * causal_mask(k.shape[:2], k.shape[2], k.shape[3], mask_type, groups), p["bias"]


def _sample_cached_pixelcnn(model: PixelCNN, params, key, n):
    h, w, c = model.image_shape
    if c != 1:
        raise NotImplementedError("the cached PixelCNN sampler handles one channel; use sample_naive")
    k0 = model.first_kernel
    p0 = k0 // 2
    w_in = _masked(params["conv_in"], "A")
    layers = [tuple(_masked(params[f"res{l}_{s}"], "B") for s in "abc") for l in range(model.num_layers)]
    out_a, out_b = _masked(params["out_a"], "B"), _masked(params["out_b"], "B")
    f = model.features

    def pointwise(v, kb):  # v [N, Cin] through a 1x1 conv
        return v @ kb[0][0, 0] + kb[1]

    def body(i, carry):
        xbuf, bufs = carry  # xbuf [N, H+2p0, W+2p0, 1]; bufs [L, N, H+2, W+2, F]
        r, col = jnp.divmod(i, w)
        win = jax.lax.dynamic_slice(xbuf, (0, r, col, 0), (n, k0, k0, 1))
        hv = conv2d(win, *w_in)[:, 0, 0]
        new_bufs = bufs
        for l, (a, b, cc) in enumerate(layers):
            t = jax.nn.relu(pointwise(jax.nn.relu(hv), a))
            buf = jax.lax.dynamic_update_slice(new_bufs[l], t[:, None, None], (0, r + 1, col + 1, 0))
            new_bufs = new_bufs.at[l].set(buf)
            t = conv2d(jax.lax.dynamic_slice(buf, (0, r, col, 0), (n, 3, 3, f)), *b)[:, 0, 0]
            hv = hv + pointwise(jax.nn.relu(t), cc)
        logits = pointwise(jax.nn.relu(pointwise(jax.nn.relu(hv), out_a)), out_b)
        value = draw(jax.random.fold_in(key, i), logits, model.num_values)
        xval = to_input(value, model.num_values)
        xbuf = jax.lax.dynamic_update_slice(xbuf, xval[:, None, None, None], (0, r + p0, col + p0, 0))
        return xbuf, new_bufs

    xbuf = jnp.zeros((n, h + 2 * p0, w + 2 * p0, 1), jnp.float32)
    if model.num_values != 2:  # unsampled pixels are masked out, but keep the naive sampler's input value
        xbuf = xbuf.at[:, p0:p0 + h, p0:p0 + w].set(to_input(jnp.zeros((), jnp.int32), model.num_values))
    bufs = jnp.zeros((model.num_layers, n, h + 2, w + 2, f), jnp.float32)
    xbuf, _ = jax.lax.fori_loop(0, h * w, body, (xbuf, bufs))
    x = xbuf[:, p0:p0 + h, p0:p0 + w]
    if model.num_values != 2:
        x = (x + 1.0) * ((model.num_values - 1) / 2.0)
    return jnp.round(x).astype(jnp.uint8)


def _sample_cached_gated(model: GatedPixelCNN, params, key, n, labels):
    h, w, _ = model.image_shape
    f, k, L = model.features, model.kernel_size, model.num_layers
    kv_h = k // 2 + 1  # vertical kernel height
    kw = k // 2 + 1  # horizontal kernel width
    half = k // 2  # vertical kernel half width
    P = params
    cond = model.apply({"params": params}, labels, n, method=GatedPixelCNN.conditioning)
    unsampled = to_input(jnp.zeros((), jnp.int32), model.num_values)

    def dense(name, v):
        return v @ P[name]["kernel"] + P[name]["bias"]

    def conv(name, win):
        return conv2d(win, P[name]["kernel"], P[name]["bias"])

    def row_body(r, carry):
        xpad, vbufs = carry  # xpad [N, kv_h + H, W + 2 half, 1]; vbufs [L, N, kv_h - 1 + H, W + 2 half, F]
        # vertical stack of row r (sees rows < r only): computed once per row
        v0 = conv("v_in", jax.lax.dynamic_slice(xpad, (0, r, 0, 0), (n, kv_h, w + 2 * half, 1)))[:, 0]
        v = jnp.where(r == 0, 0.0, v0)  # down_shift: row 0 is zeros
        link0 = dense("link_in", v)  # [N, W, F]
        vbufs = vbufs.at[0].set(jax.lax.dynamic_update_slice(vbufs[0], v[:, None], (0, r + kv_h - 1, half, 0)))
        links = []
        for l in range(L):  # vbufs[l] holds the input of layer l (rows padded by kv_h - 1 on top)
            rows = jax.lax.dynamic_slice(vbufs[l], (0, r, 0, 0), (n, kv_h, w + 2 * half, f))
            v_pre = conv(f"v_convs_{l}", rows)[:, 0] + cond[l][0][:, None]
            links.append(dense(f"links_{l}", v_pre) + cond[l][1][:, None])
            if l + 1 < L:
                v_new = gated_activation(v_pre)
                vbufs = vbufs.at[l + 1].set(
                    jax.lax.dynamic_update_slice(vbufs[l + 1], v_new[:, None], (0, r + kv_h - 1, half, 0)))

        def col_body(col, carry):
            xpad, xrow, hbufs = carry  # xrow [N, kw + W, 1]; hbufs [L, N, kw - 1 + W, F]
            i = r * w + col
            t = conv("h_in", jax.lax.dynamic_slice(xrow, (0, col, 0), (n, kw, 1))[:, None])[:, 0, 0]
            hv = jnp.where(col == 0, 0.0, t) + jax.lax.dynamic_index_in_dim(link0, col, 1, keepdims=False)
            for l in range(L):
                hbufs = hbufs.at[l].set(jax.lax.dynamic_update_slice(hbufs[l], hv[:, None], (0, col + kw - 1, 0)))
                win = jax.lax.dynamic_slice(hbufs[l], (0, col, 0), (n, kw, f))[:, None]
                h_pre = conv(f"h_convs_{l}", win)[:, 0, 0] + jax.lax.dynamic_index_in_dim(links[l], col, 1, keepdims=False)
                hv = hv + dense(f"h_outs_{l}", gated_activation(h_pre))
            logits = dense("out_b", jax.nn.relu(dense("out_a", jax.nn.relu(hv))))
            value = draw(jax.random.fold_in(key, i), logits, model.num_values)
            xval = to_input(value, model.num_values)
            xpad = jax.lax.dynamic_update_slice(xpad, xval[:, None, None, None], (0, r + kv_h, col + half, 0))
            xrow = jax.lax.dynamic_update_slice(xrow, xval[:, None, None], (0, col + kw, 0))
            return xpad, xrow, hbufs

        xrow = jnp.full((n, kw + w, 1), 0.0).at[:, kw:].set(unsampled)
        hbufs = jnp.zeros((L, n, kw - 1 + w, f), jnp.float32)
        xpad, _, _ = jax.lax.fori_loop(0, w, col_body, (xpad, xrow, hbufs))
        return xpad, vbufs

    xpad = jnp.zeros((n, kv_h + h, w + 2 * half, 1), jnp.float32)
    xpad = xpad.at[:, kv_h:, half:half + w].set(unsampled)
    vbufs = jnp.zeros((L, n, kv_h - 1 + h, w + 2 * half, f), jnp.float32)
    xpad, _ = jax.lax.fori_loop(0, h, row_body, (xpad, vbufs))
    x = xpad[:, kv_h:, half:half + w]
    if model.num_values != 2:
        x = (x + 1.0) * ((model.num_values - 1) / 2.0)
    return jnp.round(x).astype(jnp.uint8)
