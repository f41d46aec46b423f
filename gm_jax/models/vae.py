"""Variational autoencoder (Kingma & Welling 2014) with a Bernoulli decoder.

Generative model: z ~ N(0, I) (latent_dim), x | z ~ Bernoulli(sigmoid(decoder(z)))
per pixel. Inference model: q(z | x) = N(mean(x), diag(exp(log_var(x)))).

Objectives, all in nats per image:

* negative ELBO (Kingma & Welling 2014, Eq. 10): `-E_q[log p(x|z)] + KL(q(z|x) || p(z))`,
  with the KL in closed form (their Appendix B) and one reparameterized sample
  `z = mean + exp(log_var / 2) * eps`, `eps ~ N(0, I)`;
* the importance-weighted bound (Burda et al. 2016, Eq. 8):
  `log p(x) >= E[log (1/k) sum_i p(x, z_i) / q(z_i | x)]`, used with large k
  as the test log-likelihood estimate.

What the model is for, besides sampling:

* learning with missing data: `neg_elbo(..., observed=mask)` sums the
  reconstruction term over the observed pixels only, the exact log-likelihood
  of the observed pixels under the factorised decoder, log p(x_obs | z) =
  sum_{i observed} log p(x_i | z); the encoder sees `masked_input(x, mask)`;
* completion of an arbitrary mask (`complete`): iterated conditional sampling,
  the pseudo-Gibbs chain of Rezende, Mohamed & Wierstra 2014, Appendix F;
  `impute_probs` is its one-step, deterministic version (decoder means at the
  posterior mean);
* paths in latent space (`interpolate`): linear, and spherical (slerp,
  Shoemake 1985; White 2016, "Sampling Generative Networks", Sec. 2.1), for
  the VAE's codes and for any generator's z (the GAN recipe uses it too).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

import gm_jax.distributions as dist
from gm_jax import sampling

from gm_jax.nn import Conv, Dense, FractionallyStridedConv2D

SCHEDULES = ("sigmoid", "linear", "none")  # of the KL weight (`kl_weight`)
INTERPOLATIONS = ("linear", "spherical")  # the paths of `interpolate`


class MLPEncoder(nn.Module):
    """x [B, H, W, C] float -> (mean, log_var), each float32 [B, latent_dim]."""

    hidden: Sequence[int]
    latent_dim: int

    @nn.compact
    def __call__(self, x):
        h = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            h = nn.relu(Dense(width)(h))
        stats = Dense(2 * self.latent_dim)(h)
        return jnp.split(stats, 2, axis=-1)


class MLPDecoder(nn.Module):
    """z [B, latent_dim] float -> Bernoulli logits float32 [B, *image_shape]."""

    hidden: Sequence[int]
    image_shape: Sequence[int]

    @nn.compact
    def __call__(self, z):
        h = z
        for width in reversed(self.hidden):
            h = nn.relu(Dense(width)(h))
        return Dense(math.prod(self.image_shape))(h).reshape(z.shape[0], *self.image_shape)


class ConvEncoder(nn.Module):
    """Two stride-2 3x3 convolutions then a dense layer: x [B, H, W, C] -> (mean, log_var)."""

    channels: Sequence[int]
    latent_dim: int

    @nn.compact
    def __call__(self, x):
        h = x
        for c in self.channels:
            h = nn.relu(Conv(c, (3, 3), strides=(2, 2))(h))
        stats = Dense(2 * self.latent_dim)(h.reshape(h.shape[0], -1))
        return jnp.split(stats, 2, axis=-1)


class ConvDecoder(nn.Module):
    """Dense to a (H/4, W/4) map, two stride-2 transposed convolutions, a 3x3 conv to logits."""

    channels: Sequence[int]
    image_shape: Sequence[int]

    @nn.compact
    def __call__(self, z):
        h_img, w_img, c_img = self.image_shape
        scale = 2 ** len(self.channels)
        if h_img % scale or w_img % scale:
            raise ValueError(f"conv decoder needs H and W divisible by {scale}, got {self.image_shape}")
        h = nn.relu(Dense(h_img // scale * w_img // scale * self.channels[-1])(z))
        h = h.reshape(z.shape[0], h_img // scale, w_img // scale, self.channels[-1])
        for i, c in enumerate(reversed(self.channels)):  # named as flax's ConvTranspose: same parameters
            h = nn.relu(FractionallyStridedConv2D(c, (3, 3), (2, 2), name=f"ConvTranspose_{i}")(h))
        return Conv(c_img, (3, 3))(h)


class VAE(nn.Module):
    """Encoder/decoder pair. `architecture` is `"mlp"` (hidden = layer widths) or
    `"conv"` (hidden = conv channels per stride-2 stage)."""

    latent_dim: int
    image_shape: Sequence[int]
    architecture: str = "mlp"
    hidden: Sequence[int] = (500, 500)
    # Mixed precision: the dtype the layers compute in (their float32 parameters are cast to it);
    # `encode` / `decode` return float32, so the ELBO's log-likelihood and KL terms stay in float32.
    dtype: Any = jnp.float32

    def setup(self):
        if self.architecture == "mlp":
            self.encoder = MLPEncoder(self.hidden, self.latent_dim)
            self.decoder = MLPDecoder(self.hidden, self.image_shape)
        elif self.architecture == "conv":
            self.encoder = ConvEncoder(self.hidden, self.latent_dim)
            self.decoder = ConvDecoder(self.hidden, self.image_shape)
        else:
            raise ValueError(f"unknown VAE architecture {self.architecture!r}; valid choices: ['conv', 'mlp']")

    def __call__(self, x, z):
        return self.encode(x), self.decode(z)

    def encode(self, x):
        """x float [B, H, W, C] in [0, 1] -> (mean, log_var) float32 [B, latent_dim] (computed in `dtype`)."""
        mean, log_var = self.encoder(jnp.asarray(x).astype(self.dtype))
        return mean.astype(jnp.float32), log_var.astype(jnp.float32)

    def decode(self, z):
        """z float [B, latent_dim] -> logits float32 [B, H, W, C] of p(x = 1 | z) (computed in `dtype`)."""
        return self.decoder(jnp.asarray(z).astype(self.dtype)).astype(jnp.float32)


def init_params(model: VAE, key: jax.Array):
    """Initial parameters of `model` (a pytree of float32 arrays)."""
    x = jnp.zeros((1, *model.image_shape), jnp.float32)
    z = jnp.zeros((1, model.latent_dim), jnp.float32)
    return model.init(key, x, z)["params"]


def masked_input(x: jax.Array, observed: jax.Array) -> jax.Array:
    """The encoder's view of an image with missing pixels: missing pixels set to 0, observed ones divided by
    the image's observed share (the scaling of inverted dropout, Srivastava et al. 2014, Sec. 10), so the
    encoder's first layer sees inputs of the same expected size whatever the share, and a complete image
    (share 1) is seen as it is.

    Args:
      x: float [B, H, W, C] in [0, 1].
      observed: [B, H, W, C] (or broadcastable to it), 1 / True where the pixel is observed.

    Returns:
      float32 [B, H, W, C]: `x * observed / mean(observed)` per image (0 for an image with none observed).
    """
    x = jnp.asarray(x, jnp.float32)
    m = jnp.broadcast_to(jnp.asarray(observed, jnp.float32), x.shape)
    share = m.reshape(m.shape[0], -1).mean(-1).reshape(-1, *([1] * (x.ndim - 1)))
    return x * m / jnp.maximum(share, 1.0 / math.prod(x.shape[1:]))


def neg_elbo(model: VAE, params, x: jax.Array, eps: jax.Array,
             observed: jax.Array | None = None) -> dict[str, jax.Array]:
    """Negative ELBO per image with one reparameterized sample (Kingma & Welling 2014, Eq. 10).

    With `observed` (learning with missing data): the ELBO of the observed pixels only,
    log p(x_obs) >= E_q[sum_{i observed} log p(x_i | z)] - KL(q(z | x_obs) || p(z)), exact for this factorised
    decoder (the missing pixels marginalise out of p(x | z) term by term); the encoder sees
    `masked_input(x, observed)`.

    Args:
      model: the VAE module.
      params: its parameters.
      x: float or uint8 [B, H, W, C], values in {0, 1} (missing pixels: any value; they are not read).
      eps: float32 [B, latent_dim] standard normal noise.
      observed: None (every pixel observed: the plain ELBO), or [B, H, W, C] 0/1 (or bool), 1 = observed.

    Returns:
      dict of float32 [B] arrays, nats per image: `"neg_elbo"` = `"recon"` + `"kl"`,
      where `"recon"` = -log p(x | z) (-log p(x_obs | z) with `observed`) and `"kl"` = KL(q(z | x) || N(0, I)).
    """
    x = jnp.asarray(x, jnp.float32)
    mean, log_var = model.apply({"params": params}, x if observed is None else masked_input(x, observed),
                                method=VAE.encode)
    z = mean + jnp.exp(0.5 * log_var) * eps
    logits = model.apply({"params": params}, z, method=VAE.decode)
    if observed is None:
        recon = -dist.bernoulli_log_prob(logits, x)
    else:
        recon = -jnp.sum(jnp.asarray(observed, jnp.float32) * dist.bernoulli_log_prob(logits, x, 0),
                         axis=tuple(range(1, x.ndim)))
    kl = dist.kl_diag_gaussian_standard_normal(mean, log_var)
    return {"neg_elbo": recon + kl, "recon": recon, "kl": kl}


def iwae_log_prob(
    model: VAE, params, x: jax.Array, key: jax.Array, num_samples: int, chunk_size: int = 100
) -> jax.Array:
    """Importance-weighted estimate of log p(x) (Burda et al. 2016, Eq. 8), nats per image.

    `log (1/k) sum_{i=1..k} p(x | z_i) p(z_i) / q(z_i | x)` with z_i ~ q(z | x).
    A lower bound on log p(x) in expectation that tightens as k grows; k = 1
    is the ELBO. Samples are drawn `chunk_size` at a time so memory stays
    O(chunk_size * B).

    Args:
      model, params: the VAE.
      x: [B, H, W, C] values in {0, 1}.
      key: PRNG key.
      num_samples: k >= 1.
      chunk_size: samples per decoder call; k is rounded up to a multiple of
        it only in work, never in the estimate (extra samples are masked out).

    Returns:
      float32 [B], nats.
    """
    x = jnp.asarray(x, jnp.float32)
    mean, log_var = model.apply({"params": params}, x, method=VAE.encode)

    def log_px_z(z):  # z [c, B, L] -> [c, B]
        logits = model.apply({"params": params}, z.reshape(-1, z.shape[-1]), method=VAE.decode)
        return dist.bernoulli_log_prob(logits.reshape(z.shape[0], *x.shape), x[None])

    return importance_weighted_log_prob(log_px_z, mean, log_var, key, num_samples, chunk_size)


def importance_weighted_log_prob(log_likelihood, mean: jax.Array, log_var: jax.Array, key: jax.Array,
                                 num_samples: int, chunk_size: int) -> jax.Array:
    """The IWAE estimate `log (1/k) sum_i p(x | z_i) N(z_i; 0, I) / q(z_i | x)`, z_i ~ q(z | x) = N(mean,
    diag exp(log_var)) (Burda et al. 2016, Eq. 8), for any decoder: the loop of every Gaussian-posterior model.

    Args:
      log_likelihood: z float32 [c, B, L] -> log p(x | z) float32 [c, B], nats.
      mean, log_var: float32 [B, L], the posterior's.
      key: PRNG key; chunk i draws its c samples with `fold_in(key, i)`.
      num_samples: k >= 1.
      chunk_size: samples per `log_likelihood` call (the last chunk's extra samples are masked out).

    Returns:
      float32 [B], nats: a lower bound on log p(x) in expectation, tightening as k grows (k = 1: the ELBO).
    """
    chunk_size = min(chunk_size, num_samples)
    num_chunks = -(-num_samples // chunk_size)
    std = jnp.exp(0.5 * log_var)

    def chunk_log_weights(i):
        eps = jax.random.normal(jax.random.fold_in(key, i), (chunk_size, *mean.shape))
        z = mean + std * eps  # [c, B, L]
        log_pz = dist.standard_normal_log_prob(z)
        log_qz = dist.diag_gaussian_log_prob(z, mean, log_var)
        valid = i * chunk_size + jnp.arange(chunk_size) < num_samples
        return jnp.where(valid[:, None], log_likelihood(z) + log_pz - log_qz, -jnp.inf)

    log_w = jax.lax.map(chunk_log_weights, jnp.arange(num_chunks))  # [chunks, c, B]
    log_w = log_w.reshape(-1, mean.shape[0])
    return jax.nn.logsumexp(log_w, axis=0) - jnp.log(num_samples)


def sample_probs(model: VAE, params, key: jax.Array, num_samples: int) -> jax.Array:
    """Bernoulli means p(x = 1 | z) for z ~ N(0, I): float32 [n, H, W, C] in [0, 1]."""
    z = jax.random.normal(key, (num_samples, model.latent_dim))
    return jax.nn.sigmoid(model.apply({"params": params}, z, method=VAE.decode))


def sample(model: VAE, params, key: jax.Array, num_samples: int) -> jax.Array:
    """Ancestral samples x ~ p(x | z), z ~ N(0, I): uint8 [n, H, W, C] in {0, 1}."""
    key_z, key_x = jax.random.split(key)
    probs = sample_probs(model, params, key_z, num_samples)
    return jax.random.bernoulli(key_x, probs).astype(jnp.uint8)


def kl_weight(step, schedule: str = "sigmoid", steps: int = 1000):
    """beta_t, the KL weight at training step `step` (a pure function of the step; float32 scalar): KL
    annealing (Bowman et al. 2016, Sec. 3.1), or the linear warm-up of the PixelVAE (Gulrajani et al. 2017).

    "linear": min(step / steps, 1); "sigmoid": the logistic curve 1 / (1 + exp(-10 (step / steps - 1/2)))
    rescaled to be exactly 0 at step 0 and 1 at `steps` (1 afterwards); "none": 1 from the start.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule={schedule!r}; valid choices: {list(SCHEDULES)}")
    if schedule == "none":
        return jnp.float32(1.0)
    u = jnp.clip(jnp.asarray(step, jnp.float32) / max(steps, 1), 0.0, 1.0)
    if schedule == "linear":
        return u
    lo, hi = jax.nn.sigmoid(-5.0), jax.nn.sigmoid(5.0)
    return jnp.clip((jax.nn.sigmoid(10.0 * (u - 0.5)) - lo) / (hi - lo), 0.0, 1.0)


# -- what the model is for: completion, imputation, latent paths ------------------------------------------

def impute_probs(model: VAE, params, x: jax.Array, mask: jax.Array) -> jax.Array:
    """Bernoulli means p(x = 1 | z) at z = the mean of q(z | `masked_input(x, mask)`): the one-step,
    deterministic imputation of the missing pixels (the observed ones are not replaced here).

    Args:
      model, params: the VAE.
      x: [B, H, W, C] values in {0, 1} (missing pixels: any value, not read).
      mask: [B, H, W, C] or [H, W, C], 1 / True = observed.

    Returns:
      float32 [B, H, W, C] in [0, 1].
    """
    mean, _ = model.apply({"params": params}, masked_input(x, mask), method=VAE.encode)
    return jax.nn.sigmoid(model.apply({"params": params}, mean, method=VAE.decode))


def complete(model: VAE, params, key: jax.Array, x: jax.Array, mask: jax.Array, num_steps: int) -> jax.Array:
    """Complete images with missing pixels by iterated conditional sampling (the pseudo-Gibbs chain of
    Rezende, Mohamed & Wierstra 2014, Appendix F): z ~ q(z | x_t), x' ~ p(x | z), x_{t+1} = x' on the missing
    pixels and x on the observed ones. The chain starts from the encoder's view of the observed pixels
    (`masked_input`); each of the `num_steps` steps draws with `fold_in(key, step)`. For a good encoder its
    stationary distribution approximates p(x_missing | x_observed).

    Args:
      model, params: the VAE.
      key: PRNG key (the same key gives the same completions).
      x: [B, H, W, C] values in {0, 1}.
      mask: [B, H, W, C], [H, W, C] or [H, W], bool or 0/1, 1 = observed (kept); see
        `sampling.completion_mask` (under jit only its shape and dtype are checked).
      num_steps: int >= 1, chain steps.

    Returns:
      uint8 [B, H, W, C] in {0, 1}, equal to x on the observed pixels.

    Raises:
      ValueError: a bad mask (`sampling.completion_mask`), or num_steps < 1.
    """
    observed = jnp.asarray(sampling.completion_mask(mask, jnp.shape(x)))
    if int(num_steps) < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    x = jnp.asarray(x, jnp.float32)
    apply = functools.partial(model.apply, {"params": params})

    def step(i, x_t):
        k_z, k_x = jax.random.split(jax.random.fold_in(key, i))
        mean, log_var = apply(jnp.where(i == 0, masked_input(x, observed), x_t), method=VAE.encode)
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(k_z, mean.shape)
        probs = jax.nn.sigmoid(apply(z, method=VAE.decode))
        return jnp.where(observed, x, jax.random.bernoulli(k_x, probs).astype(jnp.float32))

    return jax.lax.fori_loop(0, int(num_steps), step, x).astype(jnp.uint8)


def interpolate(z0: jax.Array, z1: jax.Array, num_points: int, method: str = "linear") -> jax.Array:
    """Points along a path from z0 to z1 in latent space, endpoints included.

    "linear": (1 - t) z0 + t z1. "spherical" (slerp; Shoemake 1985, White 2016 Sec. 2.1):
    sin((1 - t) w) / sin(w) z0 + sin(t w) / sin(w) z1, w the angle between z0 and z1, which keeps the norm
    near that of its endpoints (a linear path between two Gaussian draws in d dimensions passes through norms
    near sqrt(d / 2), where the N(0, I) prior has almost no mass); it falls back to the linear path where
    sin(w) < 1e-6 (parallel codes).

    Args:
      z0, z1: float [..., L], the same shape.
      num_points: int >= 2; t = linspace(0, 1, num_points).
      method: "linear" or "spherical".

    Returns:
      float32 [..., num_points, L].

    Raises:
      ValueError: shapes differ, num_points < 2, or an unknown method.
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"method={method!r}; valid choices: {list(INTERPOLATIONS)}")
    z0, z1 = jnp.asarray(z0, jnp.float32), jnp.asarray(z1, jnp.float32)
    if z0.shape != z1.shape or z0.ndim < 1:
        raise ValueError(f"z0 and z1 must have the same shape [..., L], got {z0.shape} and {z1.shape}")
    if int(num_points) < 2:
        raise ValueError(f"num_points must be >= 2, got {num_points}")
    t = jnp.linspace(0.0, 1.0, int(num_points))[:, None]  # [P, 1]
    a, b = z0[..., None, :], z1[..., None, :]  # [..., 1, L]
    linear = (1.0 - t) * a + t * b
    if method == "linear":
        return linear
    unit = lambda v: v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)  # noqa: E731
    omega = jnp.arccos(jnp.clip(jnp.sum(unit(a) * unit(b), -1, keepdims=True), -1.0, 1.0))
    sin = jnp.sin(omega)
    safe = jnp.where(sin < 1e-6, 1.0, sin)
    spherical = (jnp.sin((1.0 - t) * omega) * a + jnp.sin(t * omega) * b) / safe
    return jnp.where(sin < 1e-6, linear, spherical)
