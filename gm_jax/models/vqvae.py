"""VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning") with a learned prior.

The encoder maps an image to a grid of vectors z_e(x) [h, w, D]; each is
replaced by its nearest codebook vector e_k (K vectors of D dimensions,
Eq. 1-2), and the decoder models p(x | z_q(x)). Training minimises (Eq. 3)

    -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2

with the straight-through estimator: the decoder's gradient with respect to
z_q is passed to z_e unchanged (`straight_through`). The second term, the
*codebook loss*, moves the codes toward the encoder outputs; the third, the
*commitment loss*, keeps the encoder close to its codes (beta = 0.25 in all the
paper's experiments). Instead of the codebook loss the codes can follow an
exponential moving average of the encoder outputs assigned to them
(Appendix A.1, Eq. 6-8: `ema_update`). Codes that no encoder output uses any
more ("dead codes") are restarted at encoder outputs (`restart_dead_codes`; not
in the paper: the usual remedy against codebook collapse, e.g. Dhariwal et al.
2020, Jukebox, Sec. 3).

The prior p(z) over the h x w grid of code indices is a Gated PixelCNN
(`gm_jax.models.pixelcnn.GatedPixelCNN`, one-hot inputs, K-way softmax,
optionally class-conditional), trained on the codes of the frozen encoder
(Sec. 3.2). With a deterministic posterior q(z | x) = 1[z = z_q(x)] (entropy
0), the ELBO is the bound

    log p(x) >= log p(x | z_q(x)) + log p(z_q(x))          (`log_prob_bound`)

Sampling (`sample`): codes from the prior by the cached (or naive) ancestral
sampler, then pixels from the decoder.

Parameters: `{"encoder", "decoder", "codebook": float32 [K, D]}` (the `VQVAE`
module); the prior's are separate (a `GatedPixelCNN`). Losses are in nats per
image; the squared distances are summed over the grid and the D dimensions.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax import distributions
from gm_jax.models import pixelcnn
from gm_jax.nn import Conv, FractionallyStridedConv2D, pmean

CODEBOOK_UPDATES = ("ema", "gradient")

# van den Oord et al. 2017, Sec. 4.1 (CIFAR10): two stride-2 4x4 convolutions and two residual blocks
# (ReLU, 3x3 conv, ReLU, 1x1 conv) of 256 units in the encoder, the mirror image in the decoder, K = 512,
# beta = 0.25, Adam with learning rate 2e-4, batch 128, 250,000 steps; EMA decay 0.99 (Appendix A.1).
PAPER = {"hidden": 256, "num_residual": 2, "num_codes": 512, "beta": 0.25, "ema_decay": 0.99,
         "learning_rate": 2e-4, "batch_size": 128, "vqvae_steps": 250_000}


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))) (Sec. 4.1); channels unchanged."""

    hidden: int

    @nn.compact
    def __call__(self, x):
        h = Conv(self.hidden, (3, 3))(nn.relu(x))
        return x + Conv(x.shape[-1], (1, 1))(nn.relu(h))


class Encoder(nn.Module):
    """x float [N, H, W, C] -> z_e float32 [N, H/4, W/4, code_dim]: two stride-2 4x4 convolutions,
    residual blocks, a 1x1 convolution to the code dimension."""

    hidden: int
    num_residual: int
    code_dim: int

    @nn.compact
    def __call__(self, x):
        h = nn.relu(Conv(self.hidden // 2, (4, 4), strides=(2, 2))(x))
        h = Conv(self.hidden, (4, 4), strides=(2, 2))(h)
        for _ in range(self.num_residual):
            h = ResidualBlock(self.hidden)(h)
        return Conv(self.code_dim, (1, 1))(nn.relu(h))


class Decoder(nn.Module):
    """z_q float [N, h, w, code_dim] -> logits float32 [N, 4h, 4w, channels]: a 3x3 convolution, residual
    blocks, two stride-2 4x4 transposed convolutions."""

    hidden: int
    num_residual: int
    channels: int

    @nn.compact
    def __call__(self, z):
        h = Conv(self.hidden, (3, 3))(z)
        for _ in range(self.num_residual):
            h = ResidualBlock(self.hidden)(h)
        h = nn.relu(FractionallyStridedConv2D(self.hidden // 2, (4, 4), (2, 2))(nn.relu(h)))
        return FractionallyStridedConv2D(self.channels, (4, 4), (2, 2))(h)


class VQVAE(nn.Module):
    """Encoder, codebook and decoder of binary images (Bernoulli pixels).

    Attributes:
      image_shape: (H, W, C), H and W divisible by 4; the code grid is (H/4, W/4).
      hidden: channels of the encoder and decoder.
      num_residual: residual blocks in each.
      num_codes: K, codebook size (>= 2).
      code_dim: D, dimension of each code.

    Methods (`apply(..., method=...)`): `encode` (x -> z_e), `decode` (z_q -> logits), `codebook` (the
    [K, D] codes); `__call__` initialises all three.
    """

    image_shape: Sequence[int] = (28, 28, 1)
    hidden: int = 64
    num_residual: int = 1
    num_codes: int = 64
    code_dim: int = 16

    def setup(self):
        if self.num_codes < 2:
            raise ValueError(f"num_codes (the codebook size K) must be >= 2, got {self.num_codes}")
        h, w, c = self.image_shape
        if h % 4 or w % 4:
            raise ValueError(f"image height and width must be divisible by 4, got image_shape {tuple(self.image_shape)}")
        self.encoder = Encoder(self.hidden, self.num_residual, self.code_dim)
        self.decoder = Decoder(self.hidden, self.num_residual, c)
        k = self.num_codes  # uniform in [-1/K, 1/K) (the usual initialisation)
        self.codes = self.param("codebook", lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -1 / k, 1 / k),
                                (k, self.code_dim))

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.image_shape[0] // 4, self.image_shape[1] // 4

    def encode(self, x):
        """x float [N, H, W, C] in [0, 1] -> z_e float32 [N, H/4, W/4, D]."""
        return self.encoder(jnp.asarray(x, jnp.float32) * 2.0 - 1.0)

    def decode(self, z_q):
        """z_q float [N, H/4, W/4, D] -> Bernoulli logits float32 [N, H, W, C]."""
        return self.decoder(z_q)

    def codebook(self):
        """float32 [K, D]: the codes."""
        return self.codes

    def __call__(self, x):
        z_e = self.encode(x)
        return self.decode(z_e), self.codebook()


def quantize(codebook: jax.Array, z_e: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Nearest-neighbour assignment (Eq. 1-2).

    Args:
      codebook: float [K, D].
      z_e: float [..., D] encoder outputs.

    Returns:
      (indices int32 [...], z_q float [..., D] = codebook[indices]).
    """
    flat = z_e.reshape(-1, z_e.shape[-1])
    d2 = (flat ** 2).sum(-1, keepdims=True) - 2.0 * flat @ codebook.T + (codebook ** 2).sum(-1)[None]
    idx = jnp.argmin(d2, axis=-1).astype(jnp.int32).reshape(z_e.shape[:-1])
    return idx, codebook[idx]


def straight_through(z_e: jax.Array, z_q: jax.Array) -> jax.Array:
    """z_e + sg[z_q - z_e]: the value of z_q, the gradient of the identity to z_e (Sec. 3.2)."""
    return z_e + jax.lax.stop_gradient(z_q - z_e)


def vq_losses(z_e: jax.Array, z_q: jax.Array) -> dict[str, jax.Array]:
    """The codebook loss ||sg[z_e] - e||^2 and the commitment loss ||z_e - sg[e]||^2 (Eq. 3, unweighted),
    summed over the grid and code dimensions: float32 [N] each, for z_e, z_q [N, h, w, D]."""
    sq = lambda a, b: ((a - b) ** 2).reshape(a.shape[0], -1).sum(-1)
    return {"codebook": sq(jax.lax.stop_gradient(z_e), z_q), "commitment": sq(z_e, jax.lax.stop_gradient(z_q))}


def forward(model: VQVAE, params, x: jax.Array) -> dict[str, jax.Array]:
    """Encode, quantize, decode (straight-through) binary images x [N, H, W, C] in {0, 1}.

    Returns:
      {"indices": int32 [N, h, w], "z_e", "z_q": float32 [N, h, w, D], "logits": float32 [N, H, W, C],
       "recon": -log p(x | z_q(x)) nats [N], "codebook", "commitment": [N] (`vq_losses`)}.
    """
    v = {"params": params}
    z_e = model.apply(v, x, method=VQVAE.encode)
    idx, z_q = quantize(model.apply(v, method=VQVAE.codebook), z_e)
    logits = model.apply(v, straight_through(z_e, z_q), method=VQVAE.decode)
    recon = -distributions.bernoulli_log_prob(logits, jnp.asarray(x, jnp.float32), event_ndims=3)
    return {"indices": idx, "z_e": z_e, "z_q": z_q, "logits": logits, "recon": recon, **vq_losses(z_e, z_q)}


def decode_codes(model: VQVAE, params, indices: jax.Array) -> jax.Array:
    """Bernoulli logits float32 [N, H, W, C] of p(x | z_q) for code indices int [N, h, w]."""
    v = {"params": params}
    return model.apply(v, model.apply(v, method=VQVAE.codebook)[indices], method=VQVAE.decode)


# -- the codebook: moving averages and restarts ----------------------------------------------------

def ema_update(stats: dict, z_e: jax.Array, indices: jax.Array, num_codes: int, decay: float,
               eps: float = 1e-5, axis_name: str | None = None) -> tuple[dict, jax.Array]:
    """One step of the exponential-moving-average codebook (Appendix A.1, Eq. 6-8).

    N_i <- decay N_i + (1 - decay) n_i,  m_i <- decay m_i + (1 - decay) sum_{j: k_j = i} z_e,j,
    e_i = m_i / N~_i, with N~ the Laplace-smoothed counts (N_i + eps) / (sum N + K eps) * sum N, so a
    code with no assignments keeps a finite value.

    Args:
      stats: {"cluster_size": float32 [K], "embed_sum": float32 [K, D]}.
      z_e: float [..., D] encoder outputs; indices: int [...] their codes.
      axis_name: the device axis (the counts and sums are averaged over devices); None on one device.

    Returns:
      (new stats, new codebook float32 [K, D]).
    """
    flat, idx = z_e.reshape(-1, z_e.shape[-1]), indices.reshape(-1)
    onehot = jax.nn.one_hot(idx, num_codes, dtype=jnp.float32)
    counts, sums = pmean((onehot.sum(0), onehot.T @ flat), axis_name)
    size = decay * stats["cluster_size"] + (1 - decay) * counts
    embed_sum = decay * stats["embed_sum"] + (1 - decay) * sums
    total = size.sum()
    smoothed = (size + eps) / (total + num_codes * eps) * total
    return {"cluster_size": size, "embed_sum": embed_sum}, embed_sum / smoothed[:, None]


def restart_dead_codes(codebook: jax.Array, usage: jax.Array, candidates: jax.Array, key: jax.Array,
                       threshold: float) -> tuple[jax.Array, jax.Array]:
    """Move every code whose usage is below `threshold` to a random encoder output.

    Args:
      codebook: float32 [K, D].
      usage: float32 [K], a moving average of the share of the batch's positions assigned to each code
        (sums to ~1).
      candidates: float [M, D] encoder outputs to restart codes at (the batch's).
      key: PRNG key choosing the candidates (the same on every device).
      threshold: a code is dead below `threshold / K` (a fraction of the uniform share); 0 disables.

    Returns:
      (codebook, usage, dead bool [K]) with each dead code moved to a candidate and its usage reset to 1 / K.
    """
    k = codebook.shape[0]
    dead = usage < threshold / k
    pick = jax.random.randint(key, (k,), 0, candidates.shape[0])
    new = jnp.where(dead[:, None], candidates[pick].astype(codebook.dtype), codebook)
    return new, jnp.where(dead, 1.0 / k, usage), dead


def usage_share(indices: jax.Array, num_codes: int) -> jax.Array:
    """float32 [K]: the share of positions of `indices` (int [...]) assigned to each code."""
    return jax.nn.one_hot(indices.reshape(-1), num_codes, dtype=jnp.float32).mean(0)


def perplexity(share: jax.Array) -> jax.Array:
    """exp(entropy) of a code histogram (float [K], sums to 1): K when every code is used equally."""
    return jnp.exp(-jnp.sum(jnp.where(share > 0, share * jnp.log(jnp.where(share > 0, share, 1.0)), 0.0)))


# -- the prior and the bound -------------------------------------------------------------------------

def prior_log_prob(prior: pixelcnn.GatedPixelCNN, prior_params, indices: jax.Array, labels=None) -> jax.Array:
    """log p(z) of code grids `indices` int [N, h, w] under the Gated PixelCNN prior, nats, float32 [N]."""
    return pixelcnn.log_prob(prior, prior_params, indices[..., None], labels)


def log_prob_bound(model: VQVAE, params, prior: pixelcnn.GatedPixelCNN, prior_params, x: jax.Array,
                   labels=None) -> dict[str, jax.Array]:
    """The ELBO of the deterministic posterior: log p(x) >= log p(x | z_q(x)) + log p(z_q(x)).

    Args:
      x: binary images [N, H, W, C] in {0, 1}.
      labels: int [N] for a class-conditional prior (the bound of log p(x | y)).

    Returns:
      {"bound": float32 [N] nats, "recon": -log p(x | z_q(x)) [N], "prior": -log p(z_q(x)) [N],
       "indices": int32 [N, h, w]}.
    """
    out = forward(model, params, x)
    prior_nll = -prior_log_prob(prior, prior_params, out["indices"], labels)
    return {"bound": -(out["recon"] + prior_nll), "recon": out["recon"], "prior": prior_nll,
            "indices": out["indices"]}


def sample(model: VQVAE, params, prior: pixelcnn.GatedPixelCNN, prior_params, key: jax.Array, num_samples: int,
           labels=None, method: str = "cached", probs: bool = False) -> jax.Array:
    """Ancestral samples: z ~ p(z) (the prior's `sample_cached` or `sample_naive`, the same codes for the same
    key), then x ~ p(x | z_q).

    Args:
      key: split into the codes' key and the pixels' key.
      num_samples: N (static).
      labels: int [N] for a class-conditional prior.
      method: "cached" | "naive".
      probs: return the Bernoulli means float32 [N, H, W, C] instead of a draw.

    Returns:
      uint8 [N, H, W, C] in {0, 1} (or the means with `probs`).
    """
    code_key, pixel_key = jax.random.split(key)
    fn = pixelcnn.sample_cached if method == "cached" else pixelcnn.sample_naive
    indices = fn(prior, prior_params, code_key, num_samples, labels)[..., 0].astype(jnp.int32)
    logits = decode_codes(model, params, indices)
    if probs:
        return jax.nn.sigmoid(logits)
    return jax.random.bernoulli(pixel_key, jax.nn.sigmoid(logits)).astype(jnp.uint8)
