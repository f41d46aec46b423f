"""PixelVAE (Gulrajani et al. 2017, "PixelVAE: A Latent Variable Model for Natural Images").

A VAE whose decoder is autoregressive: p(x | z) = prod_i p(x_i | x_<i, z), a
small Gated PixelCNN (van den Oord et al. 2016b) conditioned on z.

* Prior and posterior as the VAE's (`gm_jax.models.vae`): z ~ N(0, I) of
  `latent_dim`, q(z | x) = N(mean(x), diag exp(log_var(x))) from a
  convolutional encoder (`vae.ConvEncoder`).
* The latent feature map: `vae.ConvDecoder` upsamples z to s(z), float32
  [B, H, W, D] (a dense layer to an (H/4, W/4) map and two stride-2
  transposed convolutions, Sec. 3 / Fig. 2 of the paper: "the latent
  variables are upsampled to image size").
* The decoder: a `GatedPixelCNN(map_conditioning=True)` whose every gated
  layer adds 1x1 projections of s(z) at each position to its vertical- and
  horizontal-stack pre-activations (2016b, Eq. 5, with the spatial h = s(z)).
  Position (i, j) of s(z) depends on z only, never on pixels, so the decoder
  stays autoregressive in x for every z. (The authors' binarized-MNIST code adds a linear
  function of z to every gate as a bias, "cond_z_bias"; a spatial map holds that case.)

Objectives, nats per image:

* negative ELBO: -log p(x | z) (exact, one PixelCNN pass) + KL(q(z | x) || N(0, I))
  in closed form, one reparameterized z (Kingma & Welling 2014, Eq. 10);
* the importance-weighted bound with k samples (Burda et al. 2016, Eq. 8), the test NLL estimate:
  k PixelCNN passes per image (`vae.importance_weighted_log_prob`).

With a decoder this strong the KL term shrinks (the decoder models local
structure by itself and z keeps only global structure: Sec. 4.1, Fig. 3 of the paper),
so the KL is reported beside the NLL.

Samplers: z ~ N(0, I), s(z) once, then the Gated PixelCNN's ancestral samplers
(`pixelcnn.sample_cached` / `sample_naive`, the library's one autoregressive core)
with s(z) as the conditioning map.
"""
from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

import gm_jax.distributions as dist
from gm_jax.models import pixelcnn, vae

SAMPLERS = ("cached", "naive")


class PixelVAE(nn.Module):
    """Encoder, latent map and autoregressive decoder of a PixelVAE on binary images.

    Attributes:
      latent_dim: L.
      image_shape: (H, W, 1), H and W divisible by 4.
      encoder_channels: channels of the encoder's two stride-2 3x3 convolutions.
      map_channels: channels of the latent map's two stride-2 transposed convolutions.
      map_features: D, the channels of s(z).
      features, num_layers, kernel_size, output_features: the Gated PixelCNN's (`pixelcnn.GatedPixelCNN`).

    Parameters: {"encoder", "to_map", "pixelcnn"}; `params["pixelcnn"]` are the parameters of the
    `GatedPixelCNN` that `decoder_pixelcnn(model)` builds.
    """

    latent_dim: int = 16
    image_shape: tuple = (28, 28, 1)
    encoder_channels: Sequence[int] = (32, 64)
    map_channels: Sequence[int] = (32, 64)
    map_features: int = 16
    features: int = 32
    num_layers: int = 4
    kernel_size: int = 5
    output_features: int = 64

    def setup(self):
        h, w, c = self.image_shape
        if c != 1 or h % 4 or w % 4:
            raise ValueError(f"PixelVAE models grey images [H, W, 1] with H and W divisible by 4, got {self.image_shape}")
        self.encoder = vae.ConvEncoder(tuple(self.encoder_channels), self.latent_dim)
        self.to_map = vae.ConvDecoder(tuple(self.map_channels), (h, w, self.map_features))
        self.pixelcnn = decoder_pixelcnn(self)

    def __call__(self, x, z):
        """For `init`: x [B, H, W, 1] in {0, 1}, z [B, L] -> ((mean, log_var), decoder logits [B, H, W, 1])."""
        return self.encode(x), self.logits(x, self.latent_map(z))

    def encode(self, x):
        """x [B, H, W, 1] in {0, 1} -> (mean, log_var), float32 [B, L] each."""
        return self.encoder(jnp.asarray(x, jnp.float32))

    def latent_map(self, z):
        """z float32 [B, L] -> s(z) float32 [B, H, W, D]."""
        return self.to_map(z)

    def logits(self, x, cond_map):
        """Bernoulli logits of p(x_i = 1 | x_<i, z) for every pixel: float32 [B, H, W, 1].

        Args:
          x: [B, H, W, 1] in {0, 1} (any integer or float dtype).
          cond_map: s(z), float32 [B, H, W, D].
        """
        return self.pixelcnn(jnp.asarray(x, jnp.int32), cond_map=cond_map)[..., 0]


def decoder_pixelcnn(model: PixelVAE) -> pixelcnn.GatedPixelCNN:
    """The decoder of `model` as a `GatedPixelCNN` (its parameters: `params["pixelcnn"]`), for the samplers."""
    return pixelcnn.GatedPixelCNN(image_shape=tuple(model.image_shape), num_values=2, features=model.features,
                                  num_layers=model.num_layers, kernel_size=model.kernel_size,
                                  output_features=model.output_features, map_conditioning=True)


def init_params(model: PixelVAE, key: jax.Array):
    """Initial parameters of `model` (a pytree of float32 arrays)."""
    return model.init(key, jnp.zeros((1, *model.image_shape)), jnp.zeros((1, model.latent_dim)))["params"]


def _apply(model, params, *args, method):
    return model.apply({"params": params}, *args, method=method)


def neg_elbo(model: PixelVAE, params, x: jax.Array, eps: jax.Array) -> dict[str, jax.Array]:
    """Negative ELBO per image with one reparameterized sample (Kingma & Welling 2014, Eq. 10).

    Args:
      model, params: the PixelVAE.
      x: [B, H, W, 1] values in {0, 1} (float or integer).
      eps: float32 [B, L] standard normal noise; z = mean + exp(log_var / 2) * eps.

    Returns:
      dict of float32 [B], nats per image: "neg_elbo" = "recon" + "kl", "recon" = -log p(x | z) (exact
      autoregressive likelihood), "kl" = KL(q(z | x) || N(0, I)).
    """
    x = jnp.asarray(x, jnp.float32)
    mean, log_var = _apply(model, params, x, method=PixelVAE.encode)
    z = mean + jnp.exp(0.5 * log_var) * eps
    logits = _apply(model, params, x, _apply(model, params, z, method=PixelVAE.latent_map), method=PixelVAE.logits)
    recon = -dist.bernoulli_log_prob(logits, x)
    kl = dist.kl_diag_gaussian_standard_normal(mean, log_var)
    return {"neg_elbo": recon + kl, "recon": recon, "kl": kl}


def iwae_log_prob(model: PixelVAE, params, x: jax.Array, key: jax.Array, num_samples: int,
                  chunk_size: int = 10) -> jax.Array:
    """The importance-weighted estimate of log p(x) (Burda et al. 2016, Eq. 8), nats, float32 [B]: a lower
    bound in expectation, tightening as `num_samples` grows (1: the ELBO). Each chunk runs the PixelCNN on
    `chunk_size` * B images, so memory is O(chunk_size * B) activation maps.

    Args:
      model, params: the PixelVAE.
      x: [B, H, W, 1] values in {0, 1}.
      key: PRNG key (`vae.importance_weighted_log_prob`'s draws).
      num_samples: k >= 1.
      chunk_size: samples per PixelCNN pass.
    """
    x = jnp.asarray(x, jnp.float32)
    mean, log_var = _apply(model, params, x, method=PixelVAE.encode)

    def log_px_z(z):  # [c, B, L] -> [c, B]
        c = z.shape[0]
        xs = jnp.broadcast_to(x[None], (c, *x.shape)).reshape(-1, *x.shape[1:])
        cond_map = _apply(model, params, z.reshape(-1, z.shape[-1]), method=PixelVAE.latent_map)
        logits = _apply(model, params, xs, cond_map, method=PixelVAE.logits)
        return dist.bernoulli_log_prob(logits, xs).reshape(c, x.shape[0])

    return vae.importance_weighted_log_prob(log_px_z, mean, log_var, key, num_samples, chunk_size)


def sample_given_z(model: PixelVAE, params, key: jax.Array, z: jax.Array, method: str = "cached") -> jax.Array:
    """x ~ p(x | z) by ancestral sampling: uint8 [N, H, W, 1] in {0, 1}.

    Args:
      z: float32 [N, L] (e.g. prior draws, or posterior means for reconstructions).
      key: PRNG key of the pixels (pixel i draws with `fold_in(key, i)`, as `pixelcnn.sample_naive`).
      method: "cached" (Ramachandran et al. 2017) or "naive"; the same pixels for the same key.

    Raises:
      ValueError: an unknown method.
    """
    if method not in SAMPLERS:
        raise ValueError(f"unknown sampler {method!r}; valid choices: {list(SAMPLERS)}")
    cond_map = _apply(model, params, z, method=PixelVAE.latent_map)
    sampler = pixelcnn.sample_cached if method == "cached" else pixelcnn.sample_naive
    return sampler(decoder_pixelcnn(model), params["pixelcnn"], key, z.shape[0], cond_map=cond_map)


def sample(model: PixelVAE, params, key: jax.Array, num_samples: int, method: str = "cached") -> jax.Array:
    """Ancestral samples z ~ N(0, I), x ~ p(x | z): uint8 [num_samples, H, W, 1] in {0, 1}."""
    key_z, key_x = jax.random.split(key)
    z = jax.random.normal(key_z, (num_samples, model.latent_dim))
    return sample_given_z(model, params, key_x, z, method)
