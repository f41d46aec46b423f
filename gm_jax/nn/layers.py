"""Convolution layers: the causal ones of the PixelCNN family and their activations, and the
phase-by-phase form of the transposed convolution (`FractionallyStridedConv2D`).

Shapes are NHWC throughout; kernels are HWIO (as `flax.linen.Conv`).

* `MaskedConv2D` (van den Oord et al. 2016a, "Pixel Recurrent Neural
  Networks", Sec. 3.4, Fig. 2): a convolution whose kernel is multiplied by a
  raster-order mask; mask "A" (first layer) hides the centre pixel's own
  channel, mask "B" (later layers) lets a channel see itself. With `groups=C`
  the centre tap is also masked per channel group (R -> G -> B).
* `DownShiftedConv2D`, `DownRightShiftedConv2D` and their transposed (2x
  upsampling) versions (Salimans et al. 2017, "PixelCNN++", Sec. 2.3 and the
  openai/pixel-cnn code): padding before a VALID convolution so that the
  output at (r, c) sees only rows <= r (down-shifted, all columns within the
  kernel) or rows <= r and columns <= c (down-right-shifted). `down_shift` /
  `right_shift` then move a whole feature map one row down / one column right,
  turning "<= r" into "< r".
* `gated_activation` (van den Oord et al. 2016b, Eq. 2): tanh(W_f x) * sigmoid(W_g x).
* `concat_elu` (Salimans et al. 2017): elu([x, -x]).
"""
from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def causal_mask(kernel_size: Sequence[int], in_features: int, out_features: int, mask_type: str,
                groups: int = 1) -> np.ndarray:
    """The raster-order mask of a `MaskedConv2D` kernel.

    Taps above the centre row, and left of the centre in the centre row, are 1;
    taps after the centre are 0. At the centre tap, input channel group g_in
    feeds output group g_out iff g_in < g_out (mask "A") or g_in <= g_out
    (mask "B"); features are split into `groups` contiguous blocks (one per
    colour channel; van den Oord et al. 2016a, Fig. 2 right).

    Args:
      kernel_size: (kh, kw), both odd.
      in_features, out_features: channel counts, each divisible by `groups`.
      mask_type: "A" or "B".
      groups: number of colour channels (1 for grey images).

    Returns:
      float32 array [kh, kw, in_features, out_features] of 0/1.

    Raises:
      ValueError: even kernel sizes, an unknown mask type, or features not divisible by groups.
    """
    kh, kw = kernel_size
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"masked convolutions need odd kernel sizes, got {tuple(kernel_size)}")
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if groups < 1 or in_features % groups or out_features % groups:
        raise ValueError(f"in_features={in_features} and out_features={out_features} must be divisible by groups={groups}")
    m = np.zeros((kh, kw, in_features, out_features), np.float32)
    ch, cw = kh // 2, kw // 2
    m[:ch] = 1.0
    m[ch, :cw] = 1.0
    g_in = np.arange(in_features) // (in_features // groups)
    g_out = np.arange(out_features) // (out_features // groups)
    centre = g_in[:, None] < g_out[None, :] if mask_type == "A" else g_in[:, None] <= g_out[None, :]
    m[ch, cw] = centre.astype(np.float32)
    return m


def conv_padding(padding, in_hw: Sequence[int], kernel_hw: Sequence[int],
                 strides: Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """`padding` ("SAME", "VALID" or ((top, bottom), (left, right))) as explicit non-negative pairs.

    Raises:
      ValueError: an unknown padding string, or negative / malformed explicit padding.
    """
    if isinstance(padding, str):
        if padding not in ("SAME", "VALID"):
            raise ValueError(f"padding must be 'SAME', 'VALID' or ((top, bottom), (left, right)), got {padding!r}")
        return tuple(tuple(int(v) for v in p)
                     for p in jax.lax.padtype_to_pads(tuple(in_hw), tuple(kernel_hw), tuple(strides), padding))
    pads = tuple(tuple(int(v) for v in p) for p in padding)
    if len(pads) != 2 or any(len(p) != 2 or min(p) < 0 for p in pads):
        raise ValueError(f"explicit padding must be ((top, bottom), (left, right)) of non-negative ints, got {padding}")
    return pads


def _lax_conv(x, kernel, strides, padding):
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=DIMENSION_NUMBERS)


PATCH_MATMUL_MAX_IN_FEATURES = 8  # conv2d: at most this many input channels -> im2col + one matmul


def _patch_matmul_conv(x: jax.Array, kernel: jax.Array, strides, pads) -> jax.Array:
    """The convolution as im2col and one matmul: the kh kw shifted (strided) views of the padded input,
    concatenated on the channel axis into [N, H_out, W_out, kh kw C_in] patches, times the kernel as a
    [kh kw C_in, C_out] matrix. Autodiff makes its kernel gradient one matmul and its input gradient one
    matmul plus the patches' adjoint (the shifted views' padded sum)."""
    n, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    (sh, sw), (ph, pw) = strides, pads
    ho, wo = (h + sum(ph) - kh) // sh + 1, (w + sum(pw) - kw) // sw + 1
    xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
    patches = jnp.concatenate([xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
                               for i in range(kh) for j in range(kw)], axis=-1)
    return (patches.reshape(-1, kh * kw * c) @ kernel.reshape(-1, c_out)).reshape(n, ho, wo, c_out)


# conv2d: a stride-1 kernel of at most TAP_SUM_MAX_TAPS taps to at most TAP_SUM_MAX_OUT_FEATURES output
# channels -> one matmul + the sum of the shifted taps (`_tap_sum_conv`)
TAP_SUM_MAX_OUT_FEATURES = 1
TAP_SUM_MAX_TAPS = 9


def _tap_sum_conv(x: jax.Array, kernel: jax.Array, pads) -> jax.Array:
    """The stride-1 convolution as one matmul of x with every tap's kernel side by side, [N H W, C_in] x
    [C_in, kh kw C_out], then the sum of the kh kw tap outputs, each shifted into place:
    y[p, q] = sum_ij z_ij[p + i - top, q + j - left] with z_ij = x W_ij. For few output channels the
    product is narrow, and no layer-sized input transpose is needed for the kernel gradient (one matmul
    of x with the shifted output gradients), which XLA:CPU makes for its own convolution's."""
    n, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    (top, bottom), (left, right) = pads
    ho, wo = h + top + bottom - kh + 1, w + left + right - kw + 1
    z = x.reshape(-1, c) @ kernel.transpose(2, 0, 1, 3).reshape(c, kh * kw * c_out)  # [N H W, kh kw C_out]
    z = z.reshape(n, h, w, kh, kw, c_out)
    z = jnp.pad(z, ((0, 0), (top, bottom), (left, right), (0, 0), (0, 0), (0, 0)))
    return sum(z[:, i:i + ho, j:j + wo, i, j] for i in range(kh) for j in range(kw))


def conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array | None = None, strides=(1, 1),
           padding="VALID") -> jax.Array:
    """NHWC x HWIO convolution (+ bias): the primitive every layer here, `Conv` and the cached samplers use.

    A 1x1 kernel (stride 1, no padding) is computed as the matmul [N H W, C_in] x [C_in, C_out] it is:
    XLA:CPU runs a 1x1 convolution's kernel gradient (a contraction over N, H and W) several times slower
    as a convolution than as a matmul. An input of at most `PATCH_MATMUL_MAX_IN_FEATURES` channels (an
    image, a flow's half of one) is convolved as im2col + one matmul: its patch matrix is narrow, and
    XLA:CPU's convolution gradients for few input channels run at a fraction of the same matmuls' speed.
    A stride-1 kernel of at most 3x3 taps to one output channel (an image's last layer) is one matmul and
    a shifted sum of its taps (`_tap_sum_conv`): XLA:CPU's kernel gradient first transposes the whole
    input, a pass slower than the layer's arithmetic when the input is an elementwise result. Measured
    with more output channels or larger kernels, the tap sum lost in some train steps (the image flows',
    whose convolutions are compiled on YNNPACK; a 9x9 one), hence the narrow rule.
    Other kernels are XLA's convolution (`python -m benchmarks.conv_grad` times each pass of each form).
    Equal to `jax.lax.conv_general_dilated` to float32 round-off, values and gradients (tested).

    Args:
      x: float [N, H, W, C_in].
      kernel: [kh, kw, C_in, C_out] (cast to x's dtype).
      bias: [C_out] or None.
      strides: (s_h, s_w).
      padding: "SAME", "VALID" or ((top, bottom), (left, right)).

    Returns:
      [N, H_out, W_out, C_out], dtype of x.

    Raises:
      ValueError: x not rank 4, or channel counts that do not match, or bad padding.
    """
    if x.ndim != 4 or kernel.ndim != 4 or x.shape[-1] != kernel.shape[2]:
        raise ValueError(f"conv2d expects x [N, H, W, C_in] and kernel [kh, kw, C_in, C_out], got {x.shape} "
                         f"and {kernel.shape}")
    strides = tuple(int(s) for s in strides)
    pads = conv_padding(padding, x.shape[1:3], kernel.shape[:2], strides)
    kernel = kernel.astype(x.dtype)
    if kernel.shape[:2] == (1, 1) and strides == (1, 1) and pads == ((0, 0), (0, 0)):
        # a 1x1 convolution is a matmul over [N H W, C_in]; as one, all three of its passes are matmuls
        n, h, w, c_in = x.shape
        y = (x.reshape(-1, c_in) @ kernel[0, 0]).reshape(n, h, w, -1)
    elif (kernel.shape[-1] <= TAP_SUM_MAX_OUT_FEATURES and kernel.shape[0] * kernel.shape[1] <= TAP_SUM_MAX_TAPS
          and strides == (1, 1)):
        y = _tap_sum_conv(x, kernel, pads)
    elif x.shape[-1] <= PATCH_MATMUL_MAX_IN_FEATURES:
        y = _patch_matmul_conv(x, kernel, strides, pads)
    else:
        y = _lax_conv(x, kernel, strides, pads)
    return y if bias is None else y + bias


class MaskedConv2D(nn.Module):
    """Raster-order masked convolution, SAME size, stride 1 (van den Oord et al. 2016a, Sec. 3.4).

    Input float [N, H, W, C_in] -> output [N, H, W, features]. Parameters:
    `kernel` [kh, kw, C_in, features] (the mask is applied at every call) and `bias`.
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    mask_type: str = "B"
    groups: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        mask = causal_mask((kh, kw), x.shape[-1], self.features, self.mask_type, self.groups)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        # rows below the centre are all masked: convolve with the top kh // 2 + 1 rows only (same outputs,
        # (kh // 2 + 1) / kh of the work), padded kh // 2 rows on top and none below
        ch = kh // 2
        return conv2d(x, (kernel * mask)[:ch + 1], bias, padding=((ch, 0), (kw // 2, kw // 2)))


def down_shift(x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> same shape, moved one row down (row 0 becomes zeros)."""
    return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def right_shift(x: jax.Array) -> jax.Array:
    """[N, H, W, C] -> same shape, moved one column right (column 0 becomes zeros)."""
    return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


def down_shifted_padding(kernel_size: Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(rows, cols) zero padding of a down-shifted conv: kh-1 rows on top, (kw-1)/2 columns each side."""
    kh, kw = kernel_size
    return (kh - 1, 0), ((kw - 1) // 2, (kw - 1) // 2)


def down_right_shifted_padding(kernel_size: Sequence[int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(rows, cols) zero padding of a down-right-shifted conv: kh-1 rows on top, kw-1 columns on the left."""
    kh, kw = kernel_size
    return (kh - 1, 0), (kw - 1, 0)


class _ShiftedConv(nn.Module):
    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] = (1, 1)
    right: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        if not self.right and kw % 2 == 0:
            raise ValueError(f"a down-shifted conv needs an odd kernel width, got {tuple(self.kernel_size)}")
        pad = (down_right_shifted_padding if self.right else down_shifted_padding)((kh, kw))
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        # the padding goes to the convolution, not jnp.pad: XLA:CPU's kernel gradient of a convolution of a
        # jnp.pad-ed input runs at half the speed (`python -m benchmarks.conv_grad`)
        return conv2d(x, kernel, bias, strides=self.strides, padding=pad)


class DownShiftedConv2D(_ShiftedConv):
    """Conv whose output at (r, c) sees input rows r-kh+1..r, columns c-(kw-1)/2..c+(kw-1)/2.

    Salimans et al. 2017 (`down_shifted_conv2d`). Input float [N, H, W, C]
    -> [N, ceil(H / s_h), ceil(W / s_w), features]; kernel width must be odd.
    """

    kernel_size: Sequence[int] = (2, 3)


class DownRightShiftedConv2D(_ShiftedConv):
    """Conv whose output at (r, c) sees input rows r-kh+1..r, columns c-kw+1..c.

    Salimans et al. 2017 (`down_right_shifted_conv2d`). Input float [N, H, W, C]
    -> [N, ceil(H / s_h), ceil(W / s_w), features].
    """

    kernel_size: Sequence[int] = (2, 2)
    right: bool = True


class _ShiftedConvTranspose(nn.Module):
    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] = (2, 2)
    right: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (kh, kw, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        # jax.lax.conv_transpose(x, kernel, strides, "VALID") (kh - 1 zeros before the dilated input)
        # cropped to rows [0, s_h H) and columns [c0, c0 + s_w W), computed phase by phase: the same
        # outputs without the dilation zeros, and a kernel gradient XLA:CPU computes several times faster
        c0 = 0 if self.right else (kw - 1) // 2
        return _phase_conv_transpose(x, kernel, tuple(self.strides), (kh - 1, kw - 1 - c0)) + bias


class DownShiftedConvTranspose2D(_ShiftedConvTranspose):
    """Causal 2x upsampling (Salimans et al. 2017, `down_shifted_deconv2d`).

    Input [N, H, W, C] -> [N, H * s_h, W * s_w, features]: output rows s*i..s*i+s-1
    see input row i only, so a map that sees rows < s*i in the fine grid stays causal.
    """

    kernel_size: Sequence[int] = (2, 3)


class DownRightShiftedConvTranspose2D(_ShiftedConvTranspose):
    """Causal 2x upsampling, down-right version (Salimans et al. 2017, `down_right_shifted_deconv2d`)."""

    kernel_size: Sequence[int] = (2, 2)
    right: bool = True


def _same_transpose_pad(k: int, s: int) -> int:
    """The zeros `jax.lax.conv_transpose(..., padding="SAME")` puts before the s-dilated input of one
    spatial dimension (kernel size k)."""
    return k - 1 if s > k - 1 else int(np.ceil((k + s - 2) / 2))


def _phase_taps(k: int, s: int, pad: int) -> list[tuple[np.ndarray, int, int]]:
    """One spatial dimension of a transposed convolution, split into its s output phases.

    `jax.lax.conv_transpose` pads the s-dilated input by `pad` before and correlates it with the
    kernel, so output o = s*m + a (phase a) is the sum over the taps t with (a + t - pad) % s == 0
    of x[m + d] * w[t], d = (a + t - pad) // s; a phase's taps are every s-th one, so its offsets d
    are consecutive. Returns, for each phase a, (taps int [n_a] in increasing order, pad_before =
    -d_first, pad_after = d_last); a phase without taps (s > k) has an empty tap array.
    """
    phases = []
    for a in range(s):
        taps = np.array([t for t in range(k) if (a + t - pad) % s == 0], np.int32)
        d = (a + taps - pad) // s
        phases.append((taps, int(-d[0]) if len(d) else 0, int(d[-1]) if len(d) else 0))
    return phases


def _phase_conv_transpose(x: jax.Array, kernel: jax.Array, strides, pads) -> jax.Array:
    """Outputs 0 .. s H - 1 (rows) and 0 .. s W - 1 (columns) of `jax.lax.conv_transpose(x, kernel,
    strides)` with `pads` = (rows, columns) zeros before the dilated input, as s_h s_w stride-1
    convolutions of the undilated input, one per output phase, interleaved (depth-to-space).

    x float [N, H, W, C_in], kernel [kh, kw, C_in, F] -> [N, s_h H, s_w W, F].
    """
    (kh, kw, _, f), (sh, sw) = kernel.shape, strides
    n, h, w, _ = x.shape
    rows = []
    for row_taps, r0, r1 in _phase_taps(kh, sh, pads[0]):
        cols = []
        for col_taps, c0, c1 in _phase_taps(kw, sw, pads[1]):
            if min(r0, r1, c0, c1) < 0:  # a pad this small would crop the input: no layer here needs one
                raise ValueError(f"no phase form for kernel {(kh, kw)}, strides {strides}, pads {pads}")
            if len(row_taps) and len(col_taps):
                sub_kernel = kernel[row_taps[:, None], col_taps[None, :]]
                cols.append(conv2d(x, sub_kernel, padding=((r0, r1), (c0, c1))))  # [N, H, W, F]
            else:
                cols.append(jnp.zeros((n, h, w, f), x.dtype))
        rows.append(jnp.stack(cols, axis=3))  # [N, H, W, s_w, F]
    return jnp.stack(rows, axis=2).reshape(n, h * sh, w * sw, f)  # [N, H, s_h, W, s_w, F] -> [N, s_h H, s_w W, F]


class FractionallyStridedConv2D(nn.Module):
    """Transposed ("fractionally-strided") convolution, SAME padding, computed phase by phase.

    The same function and parameters as `flax.linen.ConvTranspose(features, kernel_size,
    strides, padding="SAME")`, i.e. `jax.lax.conv_transpose` (Dumoulin & Visin 2016, Sec. 4;
    the DCGAN generator's upsampling layer, Radford et al. 2016), but evaluated without the
    zero-dilated input: each of the s_h * s_w output phases (a, b) (the outputs at rows
    s_h*i + a, columns s_w*j + b) is a stride-1 convolution of the undilated input with
    the taps of the kernel that land on it (for 4x4 stride 2: a 2x2 sub-kernel), and the
    phases are interleaved (depth-to-space; Shi et al. 2016, "Is the deconvolution layer
    the same as a convolutional layer?"). No multiplication by a dilation zero is computed
    or differentiated through. On XLA:CPU, at batch 64, the kernel gradient of the DCGAN
    generator's 4x4 stride-2 7x7x64 -> 14x14x32 layer takes 5.7 ms against 29.5 ms for
    `nn.ConvTranspose` (which XLA:CPU computes slowly), its forward pass 3.1 ms against 2.3 ms,
    and the whole DCGAN train step 20.9 ms against 45.7 ms; a layer with one output channel
    is slower than `nn.ConvTranspose` (four convolutions of one feature each)
    (`python -m benchmarks.conv_transpose`, 2-core CPU). Outputs and gradients agree with
    `nn.ConvTranspose` to float32 round-off (tested).

    Input float [N, H, W, C_in] -> [N, H * s_h, W * s_w, features]. Parameters: `kernel`
    [kh, kw, C_in, features] (HWIO, as `nn.ConvTranspose`) and `bias` [features] if `use_bias`.

    Raises:
      ValueError: the input is not rank 4 (NHWC).
    """

    features: int
    kernel_size: Sequence[int] = (4, 4)
    strides: Sequence[int] = (2, 2)
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"FractionallyStridedConv2D expects NHWC input [N, H, W, C], got shape {x.shape}")
        (kh, kw), (sh, sw) = tuple(self.kernel_size), tuple(self.strides)
        n, h, w, c = x.shape
        kernel = self.param("kernel", self.kernel_init, (kh, kw, c, self.features))
        y = _phase_conv_transpose(x, kernel, (sh, sw), (_same_transpose_pad(kh, sh), _same_transpose_pad(kw, sw)))
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


def gated_activation(x: jax.Array) -> jax.Array:
    """tanh(a) * sigmoid(b) for x = [a, b] split on the last axis (van den Oord et al. 2016b, Eq. 2).

    Args:
      x: float [..., 2F].

    Returns:
      float [..., F].

    Raises:
      ValueError: odd last dimension.
    """
    if x.shape[-1] % 2:
        raise ValueError(f"gated_activation needs an even number of features, got {x.shape[-1]}")
    a, b = jnp.split(x, 2, axis=-1)
    return jnp.tanh(a) * jax.nn.sigmoid(b)


def concat_elu(x: jax.Array) -> jax.Array:
    """elu(concat([x, -x], -1)) (Salimans et al. 2017, Sec. 2.3 / openai/pixel-cnn): [..., F] -> [..., 2F].

    Computed as concat([elu(x), elu(-x)]). With elu last, XLA:CPU copied elu's ops into the layout
    transpose the next convolution's kernel gradient makes of its input, a strided pass several times
    slower than transposing a stored map; with the concatenation last, the transposes read the stored
    result (`python -m benchmarks.twins --only pixelcnn_pp_mnist`).
    """
    return jnp.concatenate([jax.nn.elu(x), jax.nn.elu(-x)], axis=-1)


class Dense(nn.Module):
    """`flax.linen.Dense` (same parameters: `kernel` [C_in, features], `bias` [features]) computed as one 2-D
    matmul over the flattened leading axes.

    On XLA:CPU the kernel gradient of a dense layer applied to a feature map ([N, H, W, C] -> a contraction
    over N, H and W) runs several times slower as a 4-D contraction, whose operands XLA first copies into a
    transposed layout, than as the same contraction of [N H W, C] matrices.

    Input float [..., C_in] -> [..., features].
    """

    features: int
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
        y = (x.reshape(-1, x.shape[-1]) @ kernel.astype(x.dtype)).reshape(*x.shape[:-1], self.features)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y


class Conv(nn.Module):
    """`flax.linen.Conv` for NHWC images (same parameters: `kernel` [kh, kw, C_in, features] HWIO, `bias`
    [features]; same padding rules) on `conv2d`, so its backward pass runs at the speed of `conv2d`'s.

    Input float [N, H, W, C_in] -> [N, H_out, W_out, features] (SAME: H_out = ceil(H / s_h)).

    Raises:
      ValueError: input not rank 4, or bad padding.
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: str | Sequence[tuple[int, int]] = "SAME"
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"Conv expects NHWC input [N, H, W, C], got shape {x.shape}")
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
        bias = self.param("bias", self.bias_init, (self.features,)) if self.use_bias else None
        return conv2d(x, kernel, bias, self.strides, self.padding)
