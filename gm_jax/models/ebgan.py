"""The energy-based GAN (Zhao, Mathieu & LeCun 2017, "Energy-based Generative Adversarial Network").

The discriminator is an energy function D(x) >= 0, low near the data and high
elsewhere, made of an autoencoder whose energy is its reconstruction error
(Sec. 2.3): D(x) = ||Dec(Enc(x)) - x||. Here the energy of one example is the
mean squared error over its pixels,

    D(x) = (1 / P) sum_p (Dec(Enc(x))_p - x_p)^2,   P = H * W * C pixels,

of images in [-1, 1] (so 0 <= D(x) <= 4 for a reconstruction inside [-1, 1]);
the margin m is in these units.

The game, with [u]^+ = max(0, u) (Sec. 2.1), each averaged over the minibatch:

* discriminator (Eq. 1): L_D(x, z) = D(x) + [m - D(G(z))]^+, which pushes the
  energy of data down and that of fakes up to the margin m and no further;
* generator (Eq. 2): L_G(z) = D(G(z)), plus (EBGAN-PT, Sec. 2.4) a weighted
  "pulling-away term" on the encoder's codes S of the fakes,

    PT(S) = 1 / (N (N - 1)) sum_i sum_{j != i} (S_i^T S_j / (|S_i| |S_j|))^2   (Eq. 6),

  the mean squared cosine similarity of distinct codes of a batch of N fakes:
  0 for mutually orthogonal codes, 1 for codes that all point the same way, so
  minimising it pushes the generator away from making one image (mode collapse).

`EBGANObjective` is these losses as the objective of `gm_jax.models.gan.GAN`;
the players are `gan.DCGANGenerator` and `EBGANDiscriminator`, whose output is
`(energy [B], code [B, F])`. Energies are squared errors in [-1, 1] pixel
units, not nats.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax.models.gan import batch_norm, dcgan_init
from gm_jax.nn import Conv, Dense, FractionallyStridedConv2D


def reconstruction_energy(reconstruction: jax.Array, x: jax.Array) -> jax.Array:
    """D(x) (Zhao et al. 2017, Sec. 2.3) as the per-example mean squared error over the pixels.

    Args:
      reconstruction, x: float [B, H, W, C] (images in [-1, 1]).

    Returns:
      float [B], `mean over (H, W, C) of (reconstruction - x)^2`.
    """
    return jnp.mean(jnp.square(reconstruction - x), axis=tuple(range(1, x.ndim)))


def margin_loss(real_energy: jax.Array, fake_energy: jax.Array, margin: float) -> jax.Array:
    """The discriminator's loss L_D = D(x) + [m - D(G(z))]^+ (Zhao et al. 2017, Eq. 1), batch means.

    Args:
      real_energy: float [B], D on data.
      fake_energy: float [B'], D on generated examples.
      margin: m > 0, in the energy's units.

    Returns:
      float scalar `mean(real_energy) + mean(max(0, margin - fake_energy))`.
    """
    return jnp.mean(real_energy) + jnp.mean(jax.nn.relu(margin - fake_energy))


def generator_energy_loss(fake_energy: jax.Array) -> jax.Array:
    """The generator's loss L_G = D(G(z)) (Zhao et al. 2017, Eq. 2): the mean energy of the fakes [B]."""
    return jnp.mean(fake_energy)


def pulling_away_term(codes: jax.Array) -> jax.Array:
    """The pulling-away term of EBGAN-PT (Zhao et al. 2017, Sec. 2.4, Eq. 6).

    PT(S) = 1 / (N (N - 1)) sum_{i != j} (S_i^T S_j / (|S_i| |S_j|))^2, the mean squared cosine
    similarity over ordered pairs of distinct rows.

    Args:
      codes: float [N, F], N >= 2 (the encoder's codes of a batch of fakes).

    Returns:
      float scalar in [0, 1]: 0 for mutually orthogonal codes, 1 for parallel ones.

    Raises:
      ValueError: codes not of shape [N, F] with N >= 2.
    """
    if codes.ndim != 2 or codes.shape[0] < 2:
        raise ValueError(f"pulling_away_term needs codes of shape [N, F] with N >= 2, got {tuple(codes.shape)}")
    n = codes.shape[0]
    unit = codes / jnp.sqrt(jnp.sum(jnp.square(codes), axis=1, keepdims=True) + 1e-12)
    cosine = unit @ unit.T
    off_diagonal = 1.0 - jnp.eye(n, dtype=cosine.dtype)
    return jnp.sum(jnp.square(cosine) * off_diagonal) / (n * (n - 1))


class EBGANObjective:
    """The EBGAN game (Zhao et al. 2017, Eqs. 1, 2 and 6) as an objective of `gm_jax.models.gan.GAN`.

    The discriminator's output is `(energy float [B], code float [B, F])` (`EBGANDiscriminator`).

    Args:
      margin: m > 0 of the margin loss (energy units: the per-pixel squared error of
        `reconstruction_energy`).
      pt_weight: >= 0, the weight of the pulling-away term in the generator's loss (0: plain EBGAN;
        0.1 in the paper's EBGAN-PT).

    Raises:
      ValueError: margin <= 0 or pt_weight < 0 (or not finite).
    """

    def __init__(self, margin: float, pt_weight: float = 0.0):
        if not (math.isfinite(margin) and margin > 0):
            raise ValueError(f"EBGAN margin m must be a finite number > 0, got {margin}")
        if not (math.isfinite(pt_weight) and pt_weight >= 0):
            raise ValueError(f"EBGAN pt_weight (pulling-away term weight) must be a finite number >= 0, got {pt_weight}")
        self.margin, self.pt_weight = float(margin), float(pt_weight)

    def discriminator_loss(self, real_out, fake_out):
        """(L_D of Eq. 1, {"d_real_energy", "d_fake_energy": the mean energies of data and fakes})."""
        real_energy, fake_energy = real_out[0], fake_out[0]
        loss = margin_loss(real_energy, fake_energy, self.margin)
        return loss, {"d_real_energy": jnp.mean(real_energy), "d_fake_energy": jnp.mean(fake_energy)}

    def generator_loss(self, fake_out):
        """(D(G(z)) + pt_weight PT(codes of the fakes), {"g_energy": D(G(z)), "pt": PT}).

        PT is computed over the batch the loss sees (under pmap: each device's share)."""
        energy, codes = fake_out
        g_energy, pt = generator_energy_loss(energy), pulling_away_term(codes)
        return g_energy + self.pt_weight * pt, {"g_energy": g_energy, "pt": pt}


class EBGANDiscriminator(nn.Module):
    """The autoencoder discriminator: images [B, H, W, C] in [-1, 1] -> (energy float32 [B], code float32 [B, F]).

    Encoder: 4x4 stride-2 convolutions (`channels`), LeakyReLU(0.2), batch norm on every layer but the
    first (the DCGAN discriminator's rules, `gan.DCGANDiscriminator`), then a dense code of `code_dim`
    features. Decoder (the DCGAN generator's rules): a dense projection back to the encoder's last
    map, batch norm and ReLU, 4x4 stride-2 transposed convolutions (`FractionallyStridedConv2D`)
    through the encoder's channels in reverse, and a linear output of C channels. The energy is
    `reconstruction_energy` (the per-example mean squared error over pixels, Zhao et al. 2017, Sec. 2.3).

    Attributes:
      channels: the encoder's channels, e.g. (32, 64) for 28x28 -> 14x14x32 -> 7x7x64.
      code_dim: F, the size of the code (the encoder's output, on which the pulling-away term acts).
      axis_name: device axis of the batch norm statistics (None on one device).

    Raises:
      ValueError: empty channels, x not [B, H, W, C] with H and W divisible by 2^len(channels).
    """

    channels: Sequence[int]
    code_dim: int = 64
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x, y=None, train: bool = True):
        scale = 2 ** len(self.channels)
        if not self.channels or x.ndim != 4 or x.shape[1] % scale or x.shape[2] % scale:
            raise ValueError(f"EBGANDiscriminator with channels={tuple(self.channels)} needs images [B, H, W, C] with "
                             f"H, W divisible by {scale}, got shape {tuple(x.shape)}")
        h = x
        for i, c in enumerate(self.channels):
            h = Conv(c, (4, 4), strides=(2, 2), padding="SAME", use_bias=i == 0, kernel_init=dcgan_init)(h)
            if i > 0:
                h = batch_norm(train, self.axis_name)(h)
            h = nn.leaky_relu(h, 0.2)
        map_shape = h.shape[1:]
        code = Dense(self.code_dim, kernel_init=dcgan_init)(h.reshape(h.shape[0], -1))
        h = Dense(math.prod(map_shape), use_bias=False, kernel_init=dcgan_init)(code)
        h = nn.relu(batch_norm(train, self.axis_name)(h.reshape(h.shape[0], *map_shape)))
        for c in reversed(tuple(self.channels[:-1])):
            h = FractionallyStridedConv2D(c, (4, 4), (2, 2), use_bias=False, kernel_init=dcgan_init)(h)
            h = nn.relu(batch_norm(train, self.axis_name)(h))
        reconstruction = FractionallyStridedConv2D(x.shape[-1], (4, 4), (2, 2), kernel_init=dcgan_init)(h)
        return reconstruction_energy(reconstruction, x), code
