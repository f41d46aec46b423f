"""SRGAN: single-image super-resolution by a residual generator and an adversarial loss
(Ledig et al. 2017, "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network").

* `SRResNet`, the generator of Fig. 4 (top): a 9x9 convolution and PReLU, B residual blocks
  (3x3 conv, BN, PReLU, 3x3 conv, BN, identity skip), a 3x3 conv and BN added to the output of the
  first layer (the long skip), log2(scale) sub-pixel upsampling blocks (a 3x3 conv to 4C channels, a
  x2 pixel shuffle, PReLU; Shi et al. 2016) and a 9x9 output convolution. The paper's output is
  linear; here a tanh maps it to the [-1, 1] of the images (`gan.from_uint8`).
* `SRDiscriminator`, Fig. 4 (bottom): a 3x3 convolution and LeakyReLU(0.2), then 3x3 convolutions
  with batch norm and LeakyReLU whose strides alternate 2, 1, 2, ... (the paper's eight layers:
  64, 64/2, 128, 128/2, 256, 256/2, 512, 512/2), a dense layer of 1024 units, LeakyReLU and one
  logit per image.
* `pixel_shuffle` / `space_to_depth`: the sub-pixel rearrangement and its inverse.

The SRGAN loss (Eq. 3) is `content + 1e-3 * adversarial`; the content loss is a pixel MSE ("SRGAN-MSE",
Sec. 2.2.1) or a VGG feature distance. The game and the two-player update are `gm_jax.models.gan`
(`GAN(content_loss=..., adversarial_weight=..., baseline=True)` also trains the MSE-only SRResNet
beside it). Both players take the conditioning `y`, the low-resolution image float [B, h, w, C] in
[-1, 1]: the generator's input; the discriminator ignores it (SRGAN's D sees only the
high-resolution image). The generator ignores its noise z (z_dim 0: a deterministic translator).
Batch norm layers carry an `axis_name` (cross-device statistics under pmap, as `gan.DCGANDiscriminator`).
"""
from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax.models.gan import batch_norm
from gm_jax.nn import Conv, Dense

# Ledig et al. 2017, Sec. 3.2 / Fig. 4: B = 16 residual blocks of 64 features, 4x upscaling by two
# sub-pixel layers; D with 64..512 channels in eight 3x3 layers and a dense layer of 1024 units;
# Adam with beta1 = 0.9, learning rate 1e-4 (Sec. 3.2); adversarial weight 1e-3 (Eq. 3).
PAPER = {"g_features": 64, "num_blocks": 16, "d_channels": (64, 64, 128, 128, 256, 256, 512, 512),
         "d_dense": 1024, "learning_rate": 1e-4, "beta1": 0.9, "adversarial_weight": 1e-3}


def pixel_shuffle(x: jax.Array, factor: int) -> jax.Array:
    """Depth to space (the sub-pixel convolution's rearrangement, Shi et al. 2016, Eq. 4).

    The channel order is PyTorch's `nn.PixelShuffle` (NCHW `[C r^2, H, W] -> [C, H r, W r]`) carried to
    NHWC: out[b, h r + i, w r + j, c] = x[b, h, w, c r^2 + i r + j]. (TensorFlow's `depth_to_space`
    orders the input channels as (i r + j) C + c instead.)

    Args:
      x: float [B, H, W, C * factor^2].
      factor: the upscaling r >= 1.

    Returns:
      [B, H * factor, W * factor, C].

    Raises:
      ValueError: x not rank 4, factor < 1, or channels not divisible by factor^2.
    """
    r = int(factor)
    if x.ndim != 4 or r < 1 or x.shape[-1] % (r * r):
        raise ValueError(f"pixel_shuffle expects x [B, H, W, C * r^2] and r >= 1; got shape {x.shape}, r={factor}")
    b, h, w, cr2 = x.shape
    c = cr2 // (r * r)
    x = x.reshape(b, h, w, c, r, r)  # [b, h, w, c, i, j]
    x = x.transpose(0, 1, 4, 2, 5, 3)  # [b, h, i, w, j, c]
    return x.reshape(b, h * r, w * r, c)


def space_to_depth(x: jax.Array, factor: int) -> jax.Array:
    """The inverse of `pixel_shuffle` (PyTorch's `nn.PixelUnshuffle` order carried to NHWC):
    out[b, h, w, c r^2 + i r + j] = x[b, h r + i, w r + j, c].

    Args:
      x: float [B, H * factor, W * factor, C].
      factor: r >= 1.

    Returns:
      [B, H, W, C * factor^2].

    Raises:
      ValueError: x not rank 4, factor < 1, or height/width not divisible by factor.
    """
    r = int(factor)
    if x.ndim != 4 or r < 1 or x.shape[1] % r or x.shape[2] % r:
        raise ValueError(f"space_to_depth expects x [B, H r, W r, C] and r >= 1; got shape {x.shape}, r={factor}")
    b, hr, wr, c = x.shape
    x = x.reshape(b, hr // r, r, wr // r, r, c)  # [b, h, i, w, j, c]
    x = x.transpose(0, 1, 3, 5, 2, 4)  # [b, h, w, c, i, j]
    return x.reshape(b, hr // r, wr // r, c * r * r)


def _prelu() -> nn.PReLU:
    # one learned slope per layer, initialised at 0.25 (He et al. 2015, Sec. 2.1; PyTorch's default)
    return nn.PReLU(negative_slope_init=0.25)


class SRResNet(nn.Module):
    """The SRGAN generator (Ledig et al. 2017, Fig. 4): low-resolution y -> high-resolution x in [-1, 1].

    Called as `G(z, y, train)`: z float [B, 0] is ignored (deterministic; the `gan.GAN` noise has z_dim 0),
    y float [B, h, w, C] in [-1, 1]; returns float32 [B, h * scale, w * scale, out_channels] (tanh).

    Attributes:
      features: channels of the trunk (paper: 64).
      num_blocks: residual blocks B (paper: 16).
      scale: upscaling factor, a power of 2 (one x2 sub-pixel block per factor of 2; paper: 4).
      out_channels: channels of the output image.

    Raises:
      ValueError: y not a rank-4 image batch, or scale not a power of 2.
    """

    features: int = 64
    num_blocks: int = 16
    scale: int = 4
    out_channels: int = 1
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z, y, train: bool = True):
        if y is None or jnp.ndim(y) != 4:
            raise ValueError(f"SRResNet expects the low-resolution image y [B, h, w, C], got "
                             f"{None if y is None else jnp.shape(y)}")
        if self.scale < 1 or self.scale & (self.scale - 1):
            raise ValueError(f"SRResNet scale must be a power of 2, got {self.scale}")
        f = self.features
        h = _prelu()(Conv(f, (9, 9))(jnp.asarray(y, jnp.float32)))
        skip = h
        for _ in range(self.num_blocks):
            r = batch_norm(train, self.axis_name)(Conv(f, (3, 3), use_bias=False)(h))
            r = _prelu()(r)
            r = batch_norm(train, self.axis_name)(Conv(f, (3, 3), use_bias=False)(r))
            h = h + r
        h = batch_norm(train, self.axis_name)(Conv(f, (3, 3), use_bias=False)(h)) + skip
        for _ in range(self.scale.bit_length() - 1):
            h = _prelu()(pixel_shuffle(Conv(4 * f, (3, 3))(h), 2))
        return jnp.tanh(Conv(self.out_channels, (9, 9))(h))


class SRDiscriminator(nn.Module):
    """The SRGAN discriminator (Ledig et al. 2017, Fig. 4): x [B, H, W, C] in [-1, 1] -> logits float32 [B].

    Called as `D(x, y, train)`; y (the low-resolution input) is ignored. 3x3 convolutions with strides
    1, 2, 1, 2, ... (layer i has stride 2 when i is odd), LeakyReLU(0.2) after each, batch norm on all but
    the first; then Dense(`dense`), LeakyReLU(0.2), Dense(1).

    Attributes:
      channels: channels of the convolutions (paper: 64, 64, 128, 128, 256, 256, 512, 512).
      dense: units of the hidden dense layer (paper: 1024).
    """

    channels: Sequence[int] = (64, 64, 128, 128, 256, 256, 512, 512)
    dense: int = 1024
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, y=None, train: bool = True):
        h = x
        for i, c in enumerate(self.channels):
            h = Conv(c, (3, 3), strides=(1 + i % 2,) * 2, use_bias=i == 0)(h)
            if i > 0:
                h = batch_norm(train, self.axis_name)(h)
            h = nn.leaky_relu(h, 0.2)
        h = nn.leaky_relu(Dense(self.dense)(h.reshape(h.shape[0], -1)), 0.2)
        return Dense(1)(h)[:, 0]

