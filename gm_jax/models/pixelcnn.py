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

Samplers (both run the library's one ancestral loop, `gm_jax.sampling.ancestral`,
with `sampling.draw`; same key + params => identical samples; pixel i draws
with `fold_in(key, i)`, i = raster index):

* `sample_naive`: one full network evaluation per pixel (O(H W) full passes).
* `sample_cached`: Ramachandran et al. 2017 ("Fast Generation for
  Convolutional Autoregressive Models"): the models' `init_cache` / `step`
  methods keep per-layer activation buffers; each step applies the same layers
  as training to the buffered receptive-field windows and computes only the
  activations of the new position. For the Gated PixelCNN the vertical stack of
  a row is computed once when the row starts (it depends on rows above only),
  and each pixel then costs L tiny (1 x k) convolutions.

Completion (`complete`): keeps the observed pixels of an image and samples the
others through the same loop and keys, with either sampler's step; exact for
masks whose observed pixels come first in raster order (`is_raster_prefix`).
"""
from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax import distributions, sampling
from gm_jax.nn import (
    Dense,
    DownRightShiftedConv2D,
    DownShiftedConv2D,
    MaskedConv2D,
    causal_mask,
    conv2d,
    down_shift,
    gated_activation,
    right_shift,
)


INPUT_ENCODINGS = ("scalar", "one_hot")


def to_input(x: jax.Array, num_values: int, encoding: str = "scalar") -> jax.Array:
    """Integer pixels [..., 1] -> network input [..., C_in] float32.

    `"scalar"` (C_in = 1): {0, 1} as floats for binary data, else scaled to [-1, 1] (ordered
    values: 8-bit intensities). `"one_hot"` (C_in = num_values): for unordered values such as the
    codes of a VQ-VAE (a convolution of the one-hot vector is a learned embedding per value).
    """
    if encoding == "one_hot":
        return jax.nn.one_hot(jnp.asarray(x, jnp.int32)[..., 0], num_values, dtype=jnp.float32)
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
    out = 1 (binary) or num_values. `init_cache` / `step`: the cached sampler
    (Ramachandran et al. 2017) through the same layers, one pixel at a time.
    """

    image_shape: tuple = (28, 28, 1)
    num_values: int = 2
    features: int = 32
    num_layers: int = 7
    first_kernel: int = 7
    output_features: int = 64

    def setup(self):
        g, f = self.image_shape[-1], self.features
        self.conv_in = MaskedConv2D(2 * f, (self.first_kernel,) * 2, "A", g)
        self.res_a = [MaskedConv2D(f, (1, 1), "B", g, name=f"res{l}_a") for l in range(self.num_layers)]
        self.res_b = [MaskedConv2D(f, (3, 3), "B", g, name=f"res{l}_b") for l in range(self.num_layers)]
        self.res_c = [MaskedConv2D(2 * f, (1, 1), "B", g, name=f"res{l}_c") for l in range(self.num_layers)]
        self.out_a = MaskedConv2D(self.output_features, (1, 1), "B", g)
        self.out_b = MaskedConv2D(g * _out_dim(self.num_values), (1, 1), "B", g)

    def __call__(self, x: jax.Array, labels=None) -> jax.Array:
        g = self.image_shape[-1]
        h = self.conv_in(to_input(x, self.num_values))
        for a, b, c in zip(self.res_a, self.res_b, self.res_c):
            r = b(nn.relu(a(nn.relu(h))))
            h = h + c(nn.relu(r))
        out = self.out_b(nn.relu(self.out_a(nn.relu(h))))
        return out.reshape(*out.shape[:3], g, _out_dim(self.num_values))

    def init_cache(self, n: int):
        """The empty cache of `step` for n images: (input buffer [N, H + 2p, W + 2p, 1], p = first_kernel // 2,
        holding the network input of every pixel, and per residual block the buffer [N, H + 2, W + 2, F] of
        the outputs of its first 1x1 conv, the input of its 3x3 conv).

        Raises:
          NotImplementedError: more than one channel (use `sample_naive`).
        """
        h, w, c = self.image_shape
        if c != 1:
            raise NotImplementedError("the cached PixelCNN sampler handles one channel; use sample_naive")
        p = self.first_kernel // 2
        xbuf = jnp.zeros((n, h + 2 * p, w + 2 * p, 1), jnp.float32)
        # pixels not drawn yet are masked out, but hold the naive sampler's input value (pixel 0)
        xbuf = xbuf.at[:, p:p + h, p:p + w].set(to_input(jnp.zeros((), jnp.int32), self.num_values))
        bufs = tuple(jnp.zeros((n, h + 2, w + 2, self.features), jnp.float32) for _ in range(self.num_layers))
        return xbuf, bufs

    def step(self, cache, x: jax.Array, i: jax.Array):
        """The logits of pixel i from the cache: O(1) new work per pixel (Ramachandran et al. 2017).

        Pixel i - 1 (drawn last) enters the input buffer; every layer then computes
        only its output at pixel i, from the buffered window of its input.

        Args:
          cache: from `init_cache` (or the previous step).
          x: int [N, H * W] pixels in raster order; those before i are drawn.
          i: int32 scalar, the raster index.

        Returns:
          (logits float32 [N] (binary: the Bernoulli logit) or [N, num_values], the cache).
        """
        xbuf, bufs = cache
        n, w, f = x.shape[0], self.image_shape[1], self.features
        k = self.first_kernel
        p = k // 2
        xbuf = _write_pixel(xbuf, x, i, w, (p, p), self.num_values)
        r, col = jnp.divmod(i, w)
        hv = _unpadded(self.conv_in, jax.lax.dynamic_slice(xbuf, (0, r, col, 0), (n, k, k, 1)))[:, 0, 0]
        new_bufs = []
        for a, b, c, buf in zip(self.res_a, self.res_b, self.res_c, bufs):
            t = nn.relu(_pointwise(a, nn.relu(hv)))
            buf = jax.lax.dynamic_update_slice(buf, t[:, None, None], (0, r + 1, col + 1, 0))
            t = _unpadded(b, jax.lax.dynamic_slice(buf, (0, r, col, 0), (n, 3, 3, f)))[:, 0, 0]
            hv = hv + _pointwise(c, nn.relu(t))
            new_bufs.append(buf)
        logits = _pointwise(self.out_b, nn.relu(_pointwise(self.out_a, nn.relu(hv))))
        return _step_logits(logits, self.num_values), (xbuf, tuple(new_bufs))


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
      input_encoding: how pixels enter the network (`to_input`): "scalar" (ordered values) or
        "one_hot" (unordered values, e.g. the codes of a VQ-VAE prior).
      map_conditioning: True: a feature map `cond_map` float32 [N, H, W, D] (e.g. the latent map of a
        PixelVAE) enters every gated layer through 1x1 projections added to the vertical- and
        horizontal-stack pre-activations at each position (2016b, Eq. 5, with a spatial h).

    Call: integer pixels [N, H, W, 1], labels int [N] (when num_classes > 0), cond_map (when
    map_conditioning) -> logits [N, H, W, 1, out]. `init_cache` / `step`: the cached sampler
    through the same layers, one pixel at a time.
    """

    image_shape: tuple = (28, 28, 1)
    num_values: int = 2
    features: int = 32
    num_layers: int = 6
    kernel_size: int = 5
    num_classes: int = 0
    output_features: int = 64
    input_encoding: str = "scalar"
    map_conditioning: bool = False

    def setup(self):
        if self.input_encoding not in INPUT_ENCODINGS:
            raise ValueError(f"unknown input_encoding {self.input_encoding!r}; valid choices: {list(INPUT_ENCODINGS)}")
        if self.image_shape[-1] != 1:
            raise ValueError(f"GatedPixelCNN models grey images [H, W, 1], got image_shape {self.image_shape}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        f, k = self.features, self.kernel_size
        kv, kh = (k // 2 + 1, k), (1, k // 2 + 1)
        self.v_in = DownShiftedConv2D(f, kv)
        self.h_in = DownRightShiftedConv2D(f, kh)
        self.link_in = Dense(f)
        self.v_convs = [DownShiftedConv2D(2 * f, kv) for _ in range(self.num_layers)]
        self.h_convs = [DownRightShiftedConv2D(2 * f, kh) for _ in range(self.num_layers)]
        self.links = [Dense(2 * f) for _ in range(self.num_layers)]
        self.h_outs = [Dense(f) for _ in range(self.num_layers)]
        if self.num_classes:
            self.v_cond = [nn.Embed(self.num_classes, 2 * f) for _ in range(self.num_layers)]
            self.h_cond = [nn.Embed(self.num_classes, 2 * f) for _ in range(self.num_layers)]
        if self.map_conditioning:
            self.v_map = [Dense(2 * f) for _ in range(self.num_layers)]
            self.h_map = [Dense(2 * f) for _ in range(self.num_layers)]
        self.out_a = Dense(self.output_features)
        self.out_b = Dense(_out_dim(self.num_values))

    @property
    def rows_above(self) -> int:
        """Rows above its own that a pixel's logits depend on: (k // 2) (L + 1) + 1.

        The vertical stack's input layer and each of the L gated layers reach k // 2 rows further up, and
        the down shift one more. Completion from the top rows of an image is only informed by rows this far
        above the pixel being drawn: with k = 5, L >= 12 lets the last row of a 28 x 28 image see row 0.
        """
        return (self.kernel_size // 2) * (self.num_layers + 1) + 1

    def conditioning(self, labels, n: int, cond_map=None):
        """Per-layer (v, h) biases, float32 [N, 1, 1, 2F] from the labels (zeros when unconditional), plus the
        projections [N, H, W, 2F] of `cond_map` with `map_conditioning`.

        Raises:
          ValueError: labels missing for a class-conditional model; `cond_map` missing, of the wrong shape,
            or given to a model without `map_conditioning`.
        """
        f, L = self.features, self.num_layers
        zero = jnp.zeros((n, 1, 1, 2 * f))
        cond = [(zero, zero)] * L
        if self.num_classes:
            if labels is None:
                raise ValueError(f"this GatedPixelCNN is class-conditional ({self.num_classes} classes): pass labels")
            labels = jnp.asarray(labels, jnp.int32)
            cond = [(self.v_cond[l](labels)[:, None, None], self.h_cond[l](labels)[:, None, None]) for l in range(L)]
        if not self.map_conditioning:
            if cond_map is not None:
                raise ValueError("this GatedPixelCNN takes no cond_map (map_conditioning=False)")
            return cond
        h, w, _ = self.image_shape
        if cond_map is None or cond_map.ndim != 4 or tuple(cond_map.shape[:3]) != (n, h, w):
            raise ValueError(f"this GatedPixelCNN is conditioned on a feature map: pass cond_map float [{n}, {h}, {w}, D], "
                             f"got {None if cond_map is None else cond_map.shape}")
        return [(v + self.v_map[l](cond_map), hb + self.h_map[l](cond_map)) for l, (v, hb) in enumerate(cond)]

    def __call__(self, x: jax.Array, labels=None, cond_map=None) -> jax.Array:
        xin = to_input(x, self.num_values, self.input_encoding)
        cond = self.conditioning(labels, x.shape[0], cond_map)
        v = down_shift(self.v_in(xin))
        h = right_shift(self.h_in(xin)) + self.link_in(v)
        for l in range(self.num_layers):
            v_pre = self.v_convs[l](v) + cond[l][0]
            h_pre = self.h_convs[l](h) + self.links[l](v_pre) + cond[l][1]
            v = gated_activation(v_pre)
            h = h + self.h_outs[l](gated_activation(h_pre))
        return self.head(h)[..., None, :]

    def head(self, h):
        return self.out_b(nn.relu(self.out_a(nn.relu(h))))

    def init_cache(self, labels, n: int, cond_map=None) -> dict:
        """The empty cache of `step` for n images (labels int [N] when class-conditional, cond_map float32
        [N, H, W, D] with `map_conditioning`).

        `xpad` [N, kv + H, W + 2 (k // 2), C_in]: the network input of every pixel (kv = k // 2 + 1 rows of
        zeros on top); `vbufs`: per layer the input of its vertical conv, [N, kv - 1 + H, W + 2 (k // 2), F],
        and `vrows` its current row [N, 1, W + 2 (k // 2), F]; `links` / `link0`: the vertical-to-horizontal
        links of the current row ([N, W, 2F] per layer / [N, W, F]);
        `hbufs`: per layer the horizontal stack's input in the current row, [N, kv - 1 + W, F]; `cond`: the
        per-layer biases of `conditioning` ([N, 1, 1, 2F], or [N, H, W, 2F] with a map).
        """
        h, w, _ = self.image_shape
        f, L, kv, half = self.features, self.num_layers, self.kernel_size // 2 + 1, self.kernel_size // 2
        unsampled = to_input(jnp.zeros((1,), jnp.int32), self.num_values, self.input_encoding)
        zeros = jnp.zeros
        return {"cond": self.conditioning(labels, n, cond_map),
                "xpad": zeros((n, kv + h, w + 2 * half, unsampled.shape[-1]), jnp.float32).at[
                    :, kv:, half:half + w].set(unsampled),
                "vbufs": tuple(zeros((n, kv - 1 + h, w + 2 * half, f), jnp.float32) for _ in range(L)),
                "vrows": tuple(zeros((n, 1, w + 2 * half, f), jnp.float32) for _ in range(L)),
                "links": tuple(zeros((n, w, 2 * f), jnp.float32) for _ in range(L)),
                "link0": zeros((n, w, f), jnp.float32),
                "hbufs": tuple(zeros((n, kv - 1 + w, f), jnp.float32) for _ in range(L))}

    def _row(self, xpad, vbufs, cond, r):
        """The vertical stack of row r (it sees rows < r only, so it is computed once, when the row starts).

        Returns (vrows, links, link0): per layer its input at row r, [N, 1, W + 2 (k // 2), F] (zero-padded
        columns; written into `vbufs` by `step`), the links of row r to the horizontal stack, and the input
        layer's link. Returning the rows rather than the updated buffers keeps the buffers out of the
        conditional's results, so they are not copied at every pixel."""
        n, w, f = xpad.shape[0], self.image_shape[1], self.features
        kv, half = self.kernel_size // 2 + 1, self.kernel_size // 2
        v = _unpadded(self.v_in, jax.lax.dynamic_slice(xpad, (0, r, 0, 0), (n, kv, w + 2 * half, xpad.shape[-1])))[:, 0]
        v = jnp.where(r == 0, 0.0, v)  # down_shift: row 0 sees nothing

        def padded(row):  # [N, W, F] -> [N, 1, W + 2 half, F]
            return jnp.pad(row, ((0, 0), (half, half), (0, 0)))[:, None]

        vrows, links = [padded(v)], []
        for l in range(self.num_layers):
            above = jax.lax.dynamic_slice(vbufs[l], (0, r, 0, 0), (n, kv - 1, w + 2 * half, f))
            v_pre = _unpadded(self.v_convs[l], jnp.concatenate([above, vrows[l]], axis=1))[:, 0] + _row_of(cond[l][0], r)
            links.append(self.links[l](v_pre) + _row_of(cond[l][1], r))
            if l + 1 < self.num_layers:
                vrows.append(padded(gated_activation(v_pre)))
        return tuple(vrows), tuple(links), self.link_in(v)

    def step(self, cache: dict, x: jax.Array, i: jax.Array):
        """The logits of pixel i from the cache (Ramachandran et al. 2017).

        Pixel i - 1 (drawn last) enters the input buffer; at the start of a row the
        vertical stack of the row is computed (`_row`); then each layer computes the
        horizontal stack at pixel i from its buffered 1 x (k // 2 + 1) window.

        Args:
          cache: from `init_cache` (or the previous step).
          x: int [N, H * W] pixels in raster order; those before i are drawn.
          i: int32 scalar, the raster index.

        Returns:
          (logits float32 [N] (binary: the Bernoulli logit) or [N, num_values], the cache).
        """
        n, w = x.shape[0], self.image_shape[1]
        kw = kv = self.kernel_size // 2 + 1
        half = self.kernel_size // 2  # = kw - 1
        c = dict(cache)
        xpad = c["xpad"] = _write_pixel(c["xpad"], x, i, w, (kv, half), self.num_values, self.input_encoding)
        r, col = jnp.divmod(i, w)
        c["vrows"], c["links"], c["link0"] = nn.cond(
            col == 0, lambda mdl, xpad, vbufs, cond, r, row: mdl._row(xpad, vbufs, cond, r),
            lambda mdl, xpad, vbufs, cond, r, row: row,
            self, xpad, c["vbufs"], c["cond"], r, (c["vrows"], c["links"], c["link0"]))
        c["vbufs"] = tuple(jax.lax.dynamic_update_slice(buf, row, (0, r + kv - 1, 0, 0))
                           for buf, row in zip(c["vbufs"], c["vrows"]))
        # pixels col - kw .. col - 1 of row r (xpad column = pixel column + kw - 1); none at column 0 (right_shift)
        t = _unpadded(self.h_in, jax.lax.dynamic_slice(xpad, (0, r + kv, col - 1, 0), (n, 1, kw, xpad.shape[-1])))[:, 0, 0]
        hv = jnp.where(col == 0, 0.0, t) + jax.lax.dynamic_index_in_dim(c["link0"], col, 1, keepdims=False)
        hbufs = []
        for l in range(self.num_layers):
            buf = jax.lax.dynamic_update_slice(c["hbufs"][l], hv[:, None], (0, col + kw - 1, 0))
            win = jax.lax.dynamic_slice(buf, (0, col, 0), (n, kw, self.features))[:, None]
            h_pre = _unpadded(self.h_convs[l], win)[:, 0, 0] + jax.lax.dynamic_index_in_dim(c["links"][l], col, 1,
                                                                                              keepdims=False)
            hv = hv + self.h_outs[l](gated_activation(h_pre))
            hbufs.append(buf)
        c["hbufs"] = tuple(hbufs)
        return _step_logits(self.head(hv), self.num_values), c


# -- the cached samplers' window helpers ------------------------------------------------------

def _row_of(bias: jax.Array, r) -> jax.Array:
    """Row r of a conditioning bias [N, 1 | H, 1 | W, C]: [N, 1 | W, C] (a per-image bias has one row)."""
    return jax.lax.dynamic_index_in_dim(bias, r if bias.shape[1] > 1 else 0, 1, keepdims=False)


def _unpadded(conv: nn.Module, window: jax.Array) -> jax.Array:
    """`conv` (a `MaskedConv2D` or shifted conv of the model, with its own parameters) applied to `window`
    without padding: only the outputs whose whole kernel lies inside the window (the layers pad to the
    image size for training; the cached step computes one output position from its buffered window)."""
    p = conv.variables["params"]
    kernel = p["kernel"]
    if isinstance(conv, MaskedConv2D):
        kernel = kernel * causal_mask(kernel.shape[:2], kernel.shape[2], kernel.shape[3], conv.mask_type, conv.groups)
    return conv2d(window, kernel, p["bias"])


def _pointwise(conv: nn.Module, v: jax.Array) -> jax.Array:
    """A 1x1 `MaskedConv2D` applied to one position: v [N, C_in] -> [N, features]."""
    return conv(v[:, None, None])[:, 0, 0]


def _write_pixel(buf, x, i, w, offset, num_values, encoding="scalar"):
    """`buf` [N, ., ., C_in] with pixel i - 1 of x [N, H * W] (raster order) written as network input
    (`to_input`) at (row + offset[0], column + offset[1]); unchanged at i = 0."""
    r, col = jnp.divmod(i - 1, w)
    at = (0, r + offset[0], col + offset[1], 0)
    value = to_input(jax.lax.dynamic_index_in_dim(x, i - 1, 1, keepdims=True)[..., None], num_values, encoding)
    old = jax.lax.dynamic_slice(buf, at, (buf.shape[0], 1, 1, buf.shape[-1]))
    return jax.lax.dynamic_update_slice(buf, jnp.where(i > 0, value[:, None], old), at)


def _step_logits(logits, num_values):
    """[N, out] -> the logits `sampling.draw` takes: [N] Bernoulli logits (binary) or [N, num_values]."""
    return logits[:, 0] if num_values == 2 else logits


def _event(num_values: int) -> str:
    return "bernoulli" if num_values == 2 else "categorical"


# -- likelihood ------------------------------------------------------------------------------

def log_prob_from_logits(logits: jax.Array, x: jax.Array, num_values: int, event_ndims: int = 3) -> jax.Array:
    """log p(x) in nats from logits [N, H, W, C, out] and integer pixels x [N, H, W, C]: [N] (summed over
    the `event_ndims` = 3 trailing axes), or [N, H, W, C] per sub-pixel with `event_ndims=0`."""
    if num_values == 2:
        return distributions.bernoulli_log_prob(logits[..., 0], x, event_ndims)
    return distributions.categorical_log_prob(logits, x, event_ndims)


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


def conditional_logits(model: nn.Module, params, x: jax.Array, labels=None) -> jax.Array:
    """The logits of p(x_i | x_<i) of every sub-pixel i (raster order, channels in order), one network pass:
    float32 [N, H, W, C] Bernoulli logits of x_i = 1 (binary data, `num_values=2`) or [N, H, W, C, num_values]
    categorical logits (unnormalised).

    Raises:
      ValueError: (concrete inputs) bad shape, dtype or pixel values.
    """
    check_pixels(x, model.num_values, model.image_shape)
    logits = model.apply({"params": params}, x, labels)
    return logits[..., 0] if model.num_values == 2 else logits


def log_prob_per_pixel(model: nn.Module, params, x: jax.Array, labels=None) -> jax.Array:
    """log p(x_i | x_<i) of every sub-pixel i (raster order, channels in order), nats, float32
    [N, H, W, C] (from `conditional_logits`); summed over [H, W, C] it is `log_prob` (the chain rule,
    van den Oord et al. 2016a, Eq. 1).

    Raises:
      ValueError: (concrete inputs) bad shape, dtype or pixel values.
    """
    logits = conditional_logits(model, params, x, labels)
    if model.num_values == 2:
        return distributions.bernoulli_log_prob(logits, x, event_ndims=0)
    return distributions.categorical_log_prob(logits, x, event_ndims=0)


def sample_dtype(num_values: int):
    """The dtype of samples: uint8 for up to 256 values, int32 beyond (e.g. a prior over 512 codes)."""
    return jnp.uint8 if num_values <= 256 else jnp.int32


def _check_sample_args(model, labels, n):
    if getattr(model, "num_classes", 0):
        if labels is None:
            raise ValueError("a class-conditional model needs labels [num_samples]")
        labels = jnp.asarray(labels, jnp.int32)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape [{n}], got {labels.shape}")
    return labels


# -- samplers ----------------------------------------------------------------------------------

def _map_kw(cond_map) -> dict:
    """The keyword of a `GatedPixelCNN(map_conditioning=True)`'s feature map (nothing when None)."""
    return {} if cond_map is None else {"cond_map": cond_map}


def sample_naive(model: nn.Module, params, key: jax.Array, num_samples: int, labels=None,
                 cond_map=None) -> jax.Array:
    """Ancestral sampling with one full network pass per sub-pixel (`sampling.ancestral`).

    Args:
      model, params: a `PixelCNN` / `GatedPixelCNN` and its parameters.
      key: PRNG key; sub-pixel i (raster index over H, W, C) draws with `fold_in(key, i)`.
      num_samples: N (static).
      labels: int [N] for class-conditional models.
      cond_map: float32 [N, H, W, D] for a `GatedPixelCNN(map_conditioning=True)` (e.g. a PixelVAE's s(z)).

    Returns:
      uint8 [N, H, W, C] pixels in [0, num_values) (int32 for num_values > 256: `sample_dtype`).
    """
    labels = _check_sample_args(model, labels, num_samples)
    h, w, c = model.image_shape
    n, d = num_samples, h * w * c
    x, _ = sampling.ancestral(_naive_step(model, params, n, labels, cond_map), None, jnp.zeros((n, d), jnp.int32),
                              key, 0, event=_event(model.num_values))
    return x.reshape(n, h, w, c).astype(sample_dtype(model.num_values))


def _naive_step(model: nn.Module, params, n: int, labels, cond_map):
    """The naive sampler's step: the logits of sub-pixel i from one full network pass over x [N, H * W * C]."""
    h, w, c = model.image_shape
    d = h * w * c

    def step(cache, x, i):
        logits = model.apply({"params": params}, x.reshape(n, h, w, c), labels, **_map_kw(cond_map)).reshape(n, d, -1)
        return _step_logits(jax.lax.dynamic_index_in_dim(logits, i, 1, keepdims=False), model.num_values), cache

    return step


def _cached_step(model: nn.Module, params, n: int, labels, cond_map):
    """(step, initial cache) of the cached sampler: the model's `init_cache` / `step` (a `GatedPixelCNN`'s cache
    takes the labels and the map; a `PixelCNN`'s or a PixelRNN's takes only n)."""
    variables = {"params": params}
    if isinstance(model, GatedPixelCNN):
        cache = model.apply(variables, labels, n, cond_map, method=GatedPixelCNN.init_cache)
    else:
        if cond_map is not None:
            raise ValueError(f"a {type(model).__name__} takes no cond_map (only a GatedPixelCNN with map_conditioning)")
        cache = model.apply(variables, n, method=type(model).init_cache)

    def step(cache, x, i):
        return model.apply(variables, cache, x, i, method=type(model).step)

    return step, cache


def sample_cached(model: nn.Module, params, key: jax.Array, num_samples: int, labels=None,
                  cond_map=None) -> jax.Array:
    """Fast ancestral sampling with per-layer activation caches (Ramachandran et al. 2017): the model's
    `init_cache` / `step` in `sampling.ancestral`.

    Gives the same samples as `sample_naive` for the same key and parameters
    (up to float rounding in the logits, which flips a draw only when a
    uniform lands within ~1e-6 of a threshold).

    Args / Returns: as `sample_naive`.

    Raises:
      NotImplementedError: a `PixelCNN` with more than one channel (use `sample_naive`).
    """
    labels = _check_sample_args(model, labels, num_samples)
    if not isinstance(model, (GatedPixelCNN, PixelCNN)):
        raise TypeError(f"sample_cached supports PixelCNN and GatedPixelCNN, got {type(model).__name__}")
    step, cache = _cached_step(model, params, num_samples, labels, cond_map)
    h, w, _ = model.image_shape
    x, _ = sampling.ancestral(step, cache, jnp.zeros((num_samples, h * w), jnp.int32), key, 0,
                              event=_event(model.num_values))
    return x.reshape(num_samples, h, w, 1).astype(sample_dtype(model.num_values))


# -- completion --------------------------------------------------------------------------------

COMPLETION_METHODS = ("cached", "naive")


def first_missing(observed) -> np.ndarray:
    """The raster index of the first missing sub-pixel of each image: int [N] (H * W * C where none is missing).

    Args:
      observed: concrete bool [N, H, W, C], True where the pixel is observed.
    """
    flat = np.asarray(observed, bool).reshape(len(observed), -1)
    return np.where(flat.all(1), flat.shape[1], np.argmin(flat, axis=1))


def is_raster_prefix(observed) -> np.ndarray:
    """bool [N]: whether the observed sub-pixels of each image are the first ones in raster order (rows top
    to bottom, columns left to right, channels in order), e.g. the top rows and the left part of the row
    below them: the masks for which `complete` samples the exact conditional.

    Args:
      observed: concrete bool [N, H, W, C].
    """
    flat = np.asarray(observed, bool).reshape(len(observed), -1)
    return np.all(flat == (np.arange(flat.shape[1])[None] < first_missing(observed)[:, None]), axis=1)


def complete(model: nn.Module, params, key: jax.Array, x: jax.Array, observed: jax.Array, start: int,
             labels=None, method: str = "cached", cond_map=None) -> jax.Array:
    """Completion: keep the observed sub-pixels of `x`, sample the others by ancestral sampling in raster order.

    Positions before `start` keep the values of `x` (`sampling.ancestral`'s `given`); from `start` on, each
    missing sub-pixel i is drawn from the model's p(x_i | x_<i) with the key `fold_in(key, i)` (the key of
    sub-pixel i in `sample_naive` / `sample_cached`), and each observed one keeps its value. For an image
    whose observed sub-pixels are a raster-order prefix (`is_raster_prefix`: all before its first missing
    one, none after) the completion is an exact draw of p(x_missing | x_observed) = prod over missing i of
    p(x_i | x_<i), the chain rule of the model's factorisation (van den Oord et al. 2016a, Eq. 1). For
    other masks it is NOT a draw of that conditional: the observed pixels after a missing one are clamped
    but cannot influence the pixels drawn before them (an approximation; a model that conditions on
    all observed pixels -- the VAE's pseudo-Gibbs completion, the EBM's Langevin completion -- is needed).

    "cached" (the model's `init_cache` / `step`, which visits every position from 0 to build its buffers;
    `PixelCNN`, `GatedPixelCNN` and the PixelRNNs) and "naive" (one full network pass per position from
    `start` on) draw the same completions for the same key (up to float rounding in the logits, as the
    samplers).

    Args:
      model, params: a `PixelCNN` / `GatedPixelCNN` (or a model with the same call, `init_cache(n)` and
        `step`, e.g. a PixelRNN) and its parameters.
      key: PRNG key.
      x: integer [N, H, W, C] pixels in [0, num_values); values at missing positions are ignored.
      observed: bool [N, H, W, C], True where the value of `x` is kept.
      start: static int, a raster position at or before every image's first missing sub-pixel
        (`first_missing(observed).min()`): positions before it are observed in every image.
      labels: int [N] for class-conditional models (completion from p(x | y)).
      method: "cached" or "naive" (static).
      cond_map: float32 [N, H, W, D] for a `GatedPixelCNN(map_conditioning=True)`.

    Returns:
      uint8 [N, H, W, C] (int32 for num_values > 256): equal to `x` where `observed`.

    Raises:
      ValueError: unknown `method`; labels missing for a class-conditional model.
    """
    if method not in COMPLETION_METHODS:
        raise ValueError(f"method must be one of {list(COMPLETION_METHODS)}, got {method!r}")
    n = x.shape[0]
    labels = _check_sample_args(model, labels, n)
    h, w, c = model.image_shape
    d = h * w * c
    values = jnp.asarray(x, jnp.int32).reshape(n, d)
    keep = jnp.asarray(observed, bool).reshape(n, d)
    event = _event(model.num_values)
    if method == "naive":
        step, cache, first = _naive_step(model, params, n, labels, cond_map), None, start
    else:
        (step, cache), first = _cached_step(model, params, n, labels, cond_map), 0

    def clamped_step(cache, xs, i):  # the logits, plus whether pixel i is observed and its value
        logits, cache = step(cache, xs, i)
        at = functools.partial(jax.lax.dynamic_index_in_dim, index=i, axis=1, keepdims=False)
        return (logits, at(keep), at(values)), cache

    def draw_fn(k, out):
        logits, kept, value = out
        return jnp.where(kept, value, sampling.draw(k, logits, event=event))

    out, _ = sampling.ancestral(clamped_step, cache, values, key, first, given=start, draw_fn=draw_fn)
    return out.reshape(n, h, w, c).astype(sample_dtype(model.num_values))
