"""pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial Networks"):
the U-Net generator with dropout as its only noise, and the PatchGAN discriminator.

The objective (Isola et al. 2017, Eq. 4) is the conditional GAN loss plus lambda times the L1
distance to the target,

    G* = arg min_G max_D  L_cGAN(G, D) + lambda L_L1(G),
    L_cGAN = E_{x,y}[log D(x, y)] + E_{y,z}[log(1 - D(G(z, y), y))],   L_L1 = E ||x - G(z, y)||_1,

with x the target image and y the input image (our names: the paper's x is our y). It is
`gm_jax.models.gan.GAN` with a PatchGAN `D(x, y)` (the minimax losses average over the patches'
logits) and `content_loss = lambda * mean |fake - real|` (`gm_jax.recipes.translation`).

The noise (Sec. 2.1): "we provide noise only in the form of dropout, applied on several layers of
our generator at both training and test time". Here the dropout masks are not drawn from a PRNG
inside the module: they are the per-example noise z of the GAN. `UNetGenerator.noise(key)` draws
z ~ U[0, 1)^noise_dim, one uniform per dropped unit, and the generator keeps unit u iff
`z[u] < keep_prob` (= 1 - dropout_rate), scaling kept units by 1 / keep_prob (inverted dropout).
So the masks of example i come from example i's key alone (the same under one device, pmap or
sharded jit), `GAN.generate` samples with dropout exactly as training does, and the same key gives
the same translation.

Modules are called as `generator(z, y, train)` and `discriminator(x, y, train)` with `y` the input
image float32 [B, H, W, C_in] in [-1, 1], and have an `axis_name` field for batch norm under pmap
(as `gan.DCGANDiscriminator`). Weights are initialised from N(0, 0.02) (Isola et al. 2017, Appendix 6.2).
The paper's 70x70 PatchGAN has its C512 layer at stride 1 (the authors' code; with every layer at
stride 2 the receptive field would not be 70).
"""
from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax.models.gan import batch_norm
from gm_jax.models.gan import dcgan_init as _init  # N(0, 0.02), the paper's init (Sec. 6.2)
from gm_jax.nn import Conv, FractionallyStridedConv2D

# Isola et al. 2017, Appendix 6.1 (architectures) and Sec. 3.3 / 4 (training): the 256x256 U-Net
# (encoder C64-C128-C256-C512-C512-C512-C512-C512, the decoder its mirror with skips; dropout 50% in
# the first three decoder layers), the 70x70 PatchGAN (C64-C128-C256-C512: three stride-2 and one
# stride-1 4x4 convolution, then a stride-1 4x4 convolution to one logit), lambda = 100,
# Adam(2e-4, beta1 = 0.5), batch size 1 (the facades / maps experiments).
PAPER = {
    "g_channels": (64, 128, 256, 512, 512, 512, 512, 512),
    "dropout_layers": 3,
    "dropout_rate": 0.5,
    "d_channels": (64, 128, 256, 512),
    "d_strides": (2, 2, 2, 1),
    "receptive_field": 70,
    "content_weight": 100.0,
    "learning_rate": 2e-4,
    "beta1": 0.5,
    "batch_size": 1,
}


# -- the U-Net generator (Isola et al. 2017, Sec. 3.2.1, Fig. 3; Appendix 6.1.1) ---------------------
class UNetGenerator(nn.Module):
    """U-Net: (z, input image y) -> image x float32 [B, H, W, out_channels] in [-1, 1] (tanh).

    The input is first padded (edge values repeated, equally on both sides) to the next multiple of
    2^n (n = len(channels)), so every stride-2 layer halves the size exactly (28 -> 32 -> 16 -> 8 ->
    4 -> 2 -> 1 for n = 5), and the output is cropped back to H x W.

    * encoder layer i = 1..n: 4x4 stride-2 convolution to `channels[i-1]`, batch norm, LeakyReLU(0.2);
      no batch norm on the first layer (Appendix 6.1.1) nor on the innermost (as the authors' code:
      at a 1x1 bottleneck and batch 1 it would zero the code);
    * decoder layer j = 1..n-1: 4x4 stride-2 transposed convolution (`gm_jax.nn.FractionallyStridedConv2D`)
      to `channels[n-1-j]`, batch norm, dropout (layers j <= dropout_layers), ReLU, then concatenated
      with encoder layer n-j (the skip connection: encoder layer i feeds decoder layer n-i);
    * output: a 4x4 stride-2 transposed convolution to `out_channels` and tanh.

    Dropout (Sec. 2.1, the generator's only noise, at training and test time alike): the masks are
    given by z float32 [B, noise_dim] in [0, 1) (`noise`): unit u of the dropped layers is kept iff
    z[:, u] < 1 - dropout_rate, and kept units are scaled by 1 / (1 - dropout_rate). z is consumed
    layer by layer in decoder order, each layer's units in [h, w, c] raster order. `train` only
    selects batch statistics (True) or running averages (False) in batch norm.

    Attributes:
      channels: encoder widths (c_1, ..., c_n), n >= 1; e.g. (32, 64, 128, 128, 128) for 28x28.
      image_shape: (H, W, C_in) of the input image y.
      out_channels: channels of the output image.
      dropout_layers: how many decoder layers (from the innermost) have dropout, 0..n-1.
      dropout_rate: the probability of dropping a unit, in [0, 1).

    Raises:
      ValueError (when called): empty channels, dropout_layers outside 0..n-1, dropout_rate outside
        [0, 1), y not of shape [B, *image_shape], or z not of shape [B, noise_dim].
    """

    channels: Sequence[int]
    image_shape: Sequence[int] = (28, 28, 1)
    out_channels: int = 1
    dropout_layers: int = 2
    dropout_rate: float = 0.5
    axis_name: str | None = None

    # -- the static sizes ---------------------------------------------------------------------------
    @property
    def padded_size(self) -> tuple[int, int]:
        """(H', W'): H and W rounded up to multiples of 2^len(channels)."""
        m = 2 ** len(self.channels)
        h, w = self.image_shape[:2]
        return -(-h // m) * m, -(-w // m) * m

    def dropout_shapes(self) -> list[tuple[int, int, int]]:
        """The (h, w, c) of each decoder layer with dropout, innermost first."""
        n, (h, w) = len(self.channels), self.padded_size
        return [(h >> (n - j), w >> (n - j), int(self.channels[n - 1 - j])) for j in range(1, self.dropout_layers + 1)]

    @property
    def noise_dim(self) -> int:
        """Units under dropout per example (the length of z); 0 without dropout."""
        return int(sum(np.prod(s) for s in self.dropout_shapes()))

    def noise(self, key: jax.Array) -> jax.Array:
        """z ~ U[0, 1)^noise_dim for ONE example (the dropout masks' draws): key -> float32 [noise_dim]."""
        return jax.random.uniform(key, (self.noise_dim,), jnp.float32)

    def dropout_masks(self, z: jax.Array) -> list[jax.Array]:
        """z float [B, noise_dim] -> one float32 mask [B, h, w, c] per dropped layer (innermost first), entries
        0 (dropped) or 1 / keep_prob (kept: z < keep_prob)."""
        keep = 1.0 - self.dropout_rate
        masks, start = [], 0
        for shape in self.dropout_shapes():
            size = int(np.prod(shape))
            part = z[:, start:start + size].reshape(z.shape[0], *shape)
            masks.append(jnp.where(part < keep, 1.0 / keep, 0.0).astype(jnp.float32))
            start += size
        return masks

    def _check(self, z, y):
        n = len(self.channels)
        if n < 1:
            raise ValueError("UNetGenerator needs at least one encoder layer (channels non-empty)")
        if not 0 <= self.dropout_layers <= n - 1:
            raise ValueError(f"dropout_layers must be in 0..{n - 1} (the decoder's inner layers), "
                             f"got {self.dropout_layers}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if y.ndim != 4 or tuple(y.shape[1:]) != tuple(self.image_shape):
            raise ValueError(f"UNetGenerator expects input images y [B, {', '.join(map(str, self.image_shape))}], "
                             f"got shape {tuple(y.shape)}")
        if tuple(z.shape) != (y.shape[0], self.noise_dim):
            raise ValueError(f"UNetGenerator expects z [B, noise_dim] = [{y.shape[0]}, {self.noise_dim}] (dropout "
                             f"draws), got shape {tuple(z.shape)}")

    @nn.compact
    def __call__(self, z: jax.Array, y: jax.Array, train: bool = True) -> jax.Array:
        self._check(z, y)
        n = len(self.channels)
        (h, w), (hp, wp) = self.image_shape[:2], self.padded_size
        top, left = (hp - h) // 2, (wp - w) // 2
        x = jnp.pad(y, ((0, 0), (top, hp - h - top), (left, wp - w - left), (0, 0)), mode="edge")
        skips = []
        for i, c in enumerate(self.channels):
            x = Conv(c, (4, 4), strides=(2, 2), padding="SAME", use_bias=i in (0, n - 1), kernel_init=_init)(x)
            if 0 < i < n - 1:
                x = batch_norm(train, self.axis_name)(x)
            x = nn.leaky_relu(x, 0.2)
            skips.append(x)
        masks = self.dropout_masks(z)
        for j in range(1, n):
            x = FractionallyStridedConv2D(int(self.channels[n - 1 - j]), (4, 4), (2, 2), use_bias=False,
                                          kernel_init=_init)(x)
            x = batch_norm(train, self.axis_name)(x)
            if j <= self.dropout_layers:
                x = x * masks[j - 1]
            x = jnp.concatenate([nn.relu(x), skips[n - 1 - j]], axis=-1)
        x = FractionallyStridedConv2D(self.out_channels, (4, 4), (2, 2), kernel_init=_init)(x)
        return jnp.tanh(x[:, top:top + h, left:left + w])


# -- the PatchGAN discriminator (Isola et al. 2017, Sec. 3.2.2; Appendix 6.1.2) -------------------------
def receptive_field(kernel_sizes: Sequence[int], strides: Sequence[int],
                    paddings: Sequence[int]) -> tuple[int, int, int]:
    """The receptive field of a stack of convolutions along one spatial axis.

    Args:
      kernel_sizes, strides, paddings: per layer, first layer first (padding: zeros before the input).

    Returns:
      (size, jump, start): output position i of the last layer sees the input positions
      [start + jump * i, start + jump * i + size) (clipped to the image); size = 1 + sum_l (k_l - 1) J_l,
      jump = prod_l s_l, start = -sum_l p_l J_l, with J_l the product of the strides before layer l.
    """
    size, jump, start = 1, 1, 0
    for k, s, p in zip(kernel_sizes, strides, paddings, strict=True):
        size += (k - 1) * jump
        start -= p * jump
        jump *= s
    return size, jump, start


class PatchGANDiscriminator(nn.Module):
    """PatchGAN: (output image x, input image y) -> logits float32 [B, h, w], one per patch.

    x [B, H, W, C_out] and y [B, H, W, C_in] (both in [-1, 1]) are concatenated along the channels
    (the conditional discriminator of Sec. 3.1 sees the pair). Then 4x4 convolutions with padding 1,
    one per `channels` entry with its stride, batch norm (not on the first layer, Appendix 6.1.2)
    and LeakyReLU(0.2), and a last 4x4 stride-1 convolution (padding 1) to one logit per position.
    Logit (i, j) depends only on the input patch of side `receptive_field()[0]` at
    rows/columns start + jump * (i, j) (`receptive_field`): it classifies whether that N x N patch
    is real or fake (Sec. 3.2.2); the minimax losses average over all patches.

    Attributes:
      channels: widths of the conv-BN-LeakyReLU layers, e.g. (64, 128, 256, 512) (70x70 PatchGAN).
      strides: the stride of each of those layers, e.g. (2, 2, 2, 1).

    Raises:
      ValueError (when called): channels and strides of different lengths, or x and y that differ
        in batch or spatial shape.
    """

    channels: Sequence[int]
    strides: Sequence[int]
    axis_name: str | None = None

    def receptive_field(self) -> tuple[int, int, int]:
        """(size, jump, start) of one logit along each spatial axis (see the module function)."""
        n = len(self.channels) + 1
        return receptive_field([4] * n, [*self.strides, 1], [1] * n)

    @nn.compact
    def __call__(self, x: jax.Array, y: jax.Array, train: bool = True) -> jax.Array:
        if len(self.channels) != len(self.strides):
            raise ValueError(f"PatchGANDiscriminator: channels {tuple(self.channels)} and strides "
                             f"{tuple(self.strides)} must have one entry per layer")
        if x.ndim != 4 or y.ndim != 4 or x.shape[:3] != y.shape[:3]:
            raise ValueError(f"PatchGANDiscriminator expects x [B, H, W, C] and y [B, H, W, C'] of one batch and "
                             f"size, got {tuple(x.shape)} and {tuple(y.shape)}")
        h = jnp.concatenate([x, y.astype(x.dtype)], axis=-1)
        for i, (c, s) in enumerate(zip(self.channels, self.strides)):
            h = Conv(c, (4, 4), strides=(s, s), padding=((1, 1), (1, 1)), use_bias=i == 0, kernel_init=_init)(h)
            if i > 0:
                h = batch_norm(train, self.axis_name)(h)
            h = nn.leaky_relu(h, 0.2)
        return Conv(1, (4, 4), padding=((1, 1), (1, 1)), kernel_init=_init)(h)[..., 0]
