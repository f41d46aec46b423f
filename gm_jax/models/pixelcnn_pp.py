"""PixelCNN++ (Salimans, Karpathy, Chen & Kingma 2017).

The model of the paper's Sec. 2 and the openai/pixel-cnn code, without weight
normalisation and data-dependent init (plain Flax convs):

* the likelihood of an 8-bit pixel is a discretized logistic mixture (Eq. 2;
  `gm_jax.distributions.discretized_logistic_mixture_log_prob`), with the colour
  channels of one pixel coupled linearly (Sec. 2.2) when C = 3;
* two streams, `u` (down-shifted convs: sees the rows above) and `ul`
  (down-right-shifted convs: sees the rows above and the row so far), built from
  gated ResNet blocks with concat_elu non-linearities and dropout (Sec. 2.3-2.6);
* downsampling by stride-2 shifted convolutions (three resolutions, 28 -> 14 -> 7
  for MNIST) and upsampling by shifted transposed convolutions, with shortcut
  connections from each block of the down pass to its mirror in the up pass
  (Sec. 2.4, Fig. 2).

`sample_naive` runs the full network once per pixel in the library's one
ancestral loop (`gm_jax.sampling.ancestral`, with the mixture's sampler as its
`draw_fn`); pixel i draws with `fold_in(key, i)`. `PAPER` holds the paper's
hyperparameters.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gm_jax import distributions, sampling
from gm_jax.models.pixelcnn import check_pixels, to_input
from gm_jax.nn import (
    Dense,
    DownRightShiftedConv2D,
    DownRightShiftedConvTranspose2D,
    DownShiftedConv2D,
    DownShiftedConvTranspose2D,
    concat_elu,
    down_shift,
    right_shift,
)


# The paper's network (Salimans et al. 2017, Sec. 3 and the openai/pixel-cnn defaults behind its CIFAR-10
# result): 160 filters, 5 gated ResNet blocks per resolution, 10 mixture components, dropout 0.5, three
# resolutions. Keys are `PixelCNNPP` attributes.
PAPER = {"features": 160, "num_resnet": 5, "num_mixtures": 10, "dropout": 0.5, "num_levels": 3}


class GatedResnet(nn.Module):
    """x + a * sigmoid(b), [a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(aux))))).

    Salimans et al. 2017 Sec. 2.3 (`gated_resnet` in openai/pixel-cnn). x float
    [N, H, W, F] -> same; `aux` [N, H, W, F'] or None; `right` picks the
    down-right-shifted (2, 2) conv over the down-shifted (2, 3) one.
    """

    features: int
    right: bool = False
    dropout: float = 0.5

    @nn.compact
    def __call__(self, x, aux=None, train: bool = False):
        conv = (lambda f: DownRightShiftedConv2D(f, (2, 2))) if self.right else (lambda f: DownShiftedConv2D(f, (2, 3)))
        c = conv(self.features)(concat_elu(x))
        if aux is not None:
            c = c + Dense(self.features)(concat_elu(aux))
        c = nn.Dropout(self.dropout, deterministic=not train)(concat_elu(c))
        a, b = jnp.split(conv(2 * self.features)(c), 2, axis=-1)
        return x + a * jax.nn.sigmoid(b)


class PixelCNNPP(nn.Module):
    """PixelCNN++ network: integer pixels [N, H, W, C] -> mixture parameters [N, H, W, P].

    P = 3K for C = 1 (logits, means, log scales) and 10K for C = 3 (plus 3 coupling
    coefficients per component), K = `num_mixtures`. H and W must be divisible
    by 2^(num_levels - 1).

    Attributes:
      image_shape: (H, W, C), C in {1, 3}.
      features: channels of every stream (nr_filters; 160 in the paper).
      num_resnet: gated ResNet blocks per resolution (5 in the paper).
      num_mixtures: K (10 in the paper).
      dropout: dropout rate inside the blocks (0.5 in the paper).
      num_levels: resolutions (3 in the paper).
      num_values: 256 for 8-bit data.
    """

    image_shape: tuple = (28, 28, 1)
    features: int = 32
    num_resnet: int = 1
    num_mixtures: int = 5
    dropout: float = 0.5
    num_levels: int = 3
    num_values: int = 256

    @nn.compact
    def __call__(self, x, labels=None, train: bool = False):
        h, w, c = self.image_shape
        if c not in (1, 3):
            raise ValueError(f"PixelCNNPP models 1- or 3-channel images, got image_shape {self.image_shape}")
        if h % 2 ** (self.num_levels - 1) or w % 2 ** (self.num_levels - 1):
            raise ValueError(f"image height and width must be divisible by {2 ** (self.num_levels - 1)}")
        f, nr = self.features, self.num_resnet
        xin = to_input(x, self.num_values)
        xin = jnp.concatenate([xin, jnp.ones_like(xin[..., :1])], axis=-1)  # marks the zero padding
        u_list = [down_shift(DownShiftedConv2D(f, (2, 3))(xin))]
        ul_list = [down_shift(DownShiftedConv2D(f, (1, 3))(xin)) + right_shift(DownRightShiftedConv2D(f, (2, 1))(xin))]
        for level in range(self.num_levels):
            for _ in range(nr):
                u_list.append(GatedResnet(f, False, self.dropout)(u_list[-1], None, train))
                ul_list.append(GatedResnet(f, True, self.dropout)(ul_list[-1], u_list[-1], train))
            if level < self.num_levels - 1:
                u_list.append(DownShiftedConv2D(f, (2, 3), strides=(2, 2))(u_list[-1]))
                ul_list.append(DownRightShiftedConv2D(f, (2, 2), strides=(2, 2))(ul_list[-1]))
        u, ul = u_list.pop(), ul_list.pop()
        for level in range(self.num_levels):
            for _ in range(nr if level == 0 else nr + 1):
                u = GatedResnet(f, False, self.dropout)(u, u_list.pop(), train)
                ul = GatedResnet(f, True, self.dropout)(ul, jnp.concatenate([u, ul_list.pop()], axis=-1), train)
            if level < self.num_levels - 1:
                u = DownShiftedConvTranspose2D(f, (2, 3))(u)
                ul = DownRightShiftedConvTranspose2D(f, (2, 2))(ul)
        assert not u_list and not ul_list
        k = self.num_mixtures
        return Dense(k * (3 if c == 1 else 10))(jax.nn.elu(ul))


def mixture_params(out: jax.Array, channels: int, num_mixtures: int):
    """Split network output [..., P] into (logit_weights [..., K], means [..., C, K],
    log_scales [..., C, K], coeffs [..., 3, K] or None)."""
    k, c = num_mixtures, channels
    lw = out[..., :k]
    means = out[..., k:k + c * k].reshape(*out.shape[:-1], c, k)
    log_scales = out[..., k + c * k:k + 2 * c * k].reshape(*out.shape[:-1], c, k)
    coeffs = None if c == 1 else out[..., k + 2 * c * k:].reshape(*out.shape[:-1], 3, k)
    return lw, means, log_scales, coeffs


def log_prob(model: PixelCNNPP, params, x: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
    """Exact log p(x) in nats, float32 [N] (Salimans et al. 2017, Eq. 2 over all pixels).

    Args:
      model, params: the network and its parameters.
      x: integer [N, H, W, C] pixels in [0, 255].
      dropout_key: a PRNG key to apply dropout (training), or None (evaluation: exact log-likelihood).

    Raises:
      ValueError: (concrete inputs) bad shape, dtype or pixel values.
    """
    check_pixels(x, model.num_values, model.image_shape)
    train = dropout_key is not None
    out = model.apply({"params": params}, x, None, train, rngs={"dropout": dropout_key} if train else None)
    lw, means, log_scales, coeffs = mixture_params(out, model.image_shape[-1], model.num_mixtures)
    return distributions.discretized_logistic_mixture_log_prob(x, lw, means, log_scales, coeffs,
                                                               num_values=model.num_values)


def conditionals(model: PixelCNNPP, params, x: jax.Array) -> dict:
    """The discretized logistic mixture p(x_ij | x_<ij) of every pixel (dropout off), one network pass:
    {"logit_weights": float32 [N, H, W, K], "means" and "log_scales": [N, H, W, C, K] (means in the [-1, 1]
    scale, before the channel coupling), and "coeffs": [N, H, W, 3, K] (raw, tanh not applied) only when
    C = 3}: the arguments of `distributions.discretized_logistic_mixture_log_prob`.

    Raises:
      ValueError: (concrete inputs) bad shape, dtype or pixel values.
    """
    check_pixels(x, model.num_values, model.image_shape)
    out = model.apply({"params": params}, x, None, False)
    lw, means, log_scales, coeffs = mixture_params(out, model.image_shape[-1], model.num_mixtures)
    d = {"logit_weights": lw, "means": means, "log_scales": log_scales}
    return d if coeffs is None else {**d, "coeffs": coeffs}


def log_prob_per_pixel(model: PixelCNNPP, params, x: jax.Array) -> jax.Array:
    """log p(x_ij | x_<ij) of every pixel (its C channels jointly, Salimans et al. 2017, Eq. 2 and
    Sec. 2.2), nats, float32 [N, H, W] (from `conditionals`); summed over [H, W] it is `log_prob` (dropout off).

    Raises:
      ValueError: (concrete inputs) bad shape, dtype or pixel values.
    """
    return distributions.discretized_logistic_mixture_log_prob(x, **conditionals(model, params, x),
                                                               num_values=model.num_values, event_ndims=0)


def sample_naive(model: PixelCNNPP, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
    """Ancestral sampling, one full network pass per pixel (`sampling.ancestral`, drawing from the mixture).

    Args:
      key: PRNG key; pixel i (raster index) draws its C channels with `fold_in(key, i)`.
      num_samples: N (static).
      labels: ignored (the model is unconditional).

    Returns:
      uint8 [N, H, W, C] in [0, 255].
    """
    h, w, c = model.image_shape
    n = num_samples

    def step(cache, x, i):
        out = model.apply({"params": params}, x.reshape(n, h, w, c)).reshape(n, h * w, -1)
        return jax.lax.dynamic_index_in_dim(out, i, 1, keepdims=False), cache

    def draw_fn(k, out):  # the discretized logistic mixture of out [N, P] -> int32 [N, C]
        lw, means, log_scales, coeffs = mixture_params(out, c, model.num_mixtures)
        return distributions.discretized_logistic_mixture_sample(k, lw, means, log_scales, coeffs, model.num_values)

    x, _ = sampling.ancestral(step, None, jnp.zeros((n, h * w, c), jnp.int32), key, 0, draw_fn=draw_fn)
    return x.reshape(n, h, w, c).astype(jnp.uint8)
