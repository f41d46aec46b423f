"""PyTorch twins of `vae_mnist` (the VAE of Kingma & Welling 2014 with a Bernoulli decoder): the default MLP
VAE (784-500-500-50, ReLU) and the conv VAE (`architecture="conv"`, `hidden=(32, 64)`: two stride-2 3x3 convs,
two stride-2 3x3 transposed convs and a 3x3 output conv), with the same parameter shapes and the same loss as
`gm_jax.models.vae`: the one-sample negative ELBO, nats per image (Bernoulli NLL + the closed-form KL), batch mean.

Flax's SAME padding of the stride-2 convs is asymmetric (0 before, 1 after on 28 -> 14 -> 7), and its
`ConvTranspose(3, stride 2, SAME)` pads the dilated input (2, 1); the twin pads explicitly (`F.pad`) and crops
the last row/column of `nn.ConvTranspose2d(padding=0)`, so it computes the same function. Flattens and
reshapes are NCHW here and HWC in gm_jax: `load` permutes the dense kernels to match.
"""
from __future__ import annotations

from itertools import pairwise

import jax
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.twins.common import Twin, assign, conv_weight, dense_weight, t


def linear(lin, p, rows=None, cols=None):
    """Copy a Flax Dense into `lin`; `rows` / `cols`: (C, H, W) of an HWC-flattened input / output to permute to CHW."""
    k, b = np.asarray(p["kernel"]), np.asarray(p["bias"])
    if rows is not None:
        c, h, w = rows
        k = k.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
    if cols is not None:
        c, h, w = cols
        k = k.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(-1, c * h * w)
        b = b.reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
    assign(lin.weight, dense_weight(k))
    assign(lin.bias, t(b))


def conv(m, p, transpose=False):
    k = np.asarray(p["kernel"])
    # lax.conv_transpose (transpose_kernel=False) correlates with the kernel as stored; torch's transposed conv is
    # the gradient of a correlation, i.e. it applies the spatially flipped [C_in, C_out, kh, kw] kernel.
    w = t(k[::-1, ::-1].transpose(2, 3, 0, 1).copy()) if transpose else conv_weight(k)
    assign(m.weight, w)
    assign(m.bias, t(p["bias"]))


class MLPVAE(nn.Module):
    def __init__(self, num_pixels, hidden, latent_dim):
        super().__init__()
        widths = [num_pixels, *hidden]
        self.encoder = nn.Sequential(*[m for a, b in pairwise(widths) for m in (nn.Linear(a, b), nn.ReLU())],
                                     nn.Linear(widths[-1], 2 * latent_dim))
        widths = [latent_dim, *reversed(hidden)]
        self.decoder = nn.Sequential(*[m for a, b in pairwise(widths) for m in (nn.Linear(a, b), nn.ReLU())],
                                     nn.Linear(widths[-1], num_pixels))

    def encode(self, x):  # [N, 1, H, W] -> mean, log_var [N, L]
        return self.encoder(x.flatten(1)).chunk(2, 1)

    def decode(self, z, shape):  # -> logits [N, 1, H, W]
        return self.decoder(z).view(z.shape[0], *shape)

    def load(self, p):
        for i, lin in enumerate(m for m in self.encoder if isinstance(m, nn.Linear)):
            linear(lin, p["encoder"][f"Dense_{i}"])
        for i, lin in enumerate(m for m in self.decoder if isinstance(m, nn.Linear)):
            linear(lin, p["decoder"][f"Dense_{i}"])


class ConvVAE(nn.Module):
    def __init__(self, image_shape, channels, latent_dim):
        super().__init__()
        h, w, c_img = image_shape
        s = 2 ** len(channels)
        self.small = (channels[-1], h // s, w // s)
        cs = [c_img, *channels]
        self.enc_convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2) for a, b in pairwise(cs))
        self.enc_out = nn.Linear(channels[-1] * h // s * w // s, 2 * latent_dim)
        self.dec_in = nn.Linear(latent_dim, channels[-1] * h // s * w // s)
        cs = [channels[-1], *reversed(channels)]
        self.dec_convs = nn.ModuleList(nn.ConvTranspose2d(a, b, 3, stride=2) for a, b in pairwise(cs))
        self.dec_out = nn.Conv2d(channels[0], c_img, 3, padding=1)

    def encode(self, x):
        h = x
        for conv_ in self.enc_convs:  # SAME, stride 2, even size: pad (0, 1) per axis
            h = F.relu(conv_(F.pad(h, (0, 1, 0, 1))))
        return self.enc_out(h.flatten(1)).chunk(2, 1)

    def decode(self, z, shape):
        h = F.relu(self.dec_in(z)).view(z.shape[0], *self.small)
        for deconv in self.dec_convs:  # torch pads the dilated input (2, 2): drop the last row/col for SAME's (2, 1)
            h = F.relu(deconv(h)[:, :, :-1, :-1])
        return self.dec_out(h)

    def load(self, p):
        e, d = p["encoder"], p["decoder"]
        for i, m in enumerate(self.enc_convs):
            conv(m, e[f"Conv_{i}"])
        linear(self.enc_out, e["Dense_0"], rows=self.small)
        linear(self.dec_in, d["Dense_0"], cols=self.small)
        for i, m in enumerate(self.dec_convs):
            conv(m, d[f"ConvTranspose_{i}"], transpose=True)
        conv(self.dec_out, d["Conv_0"])


def _build(exp):
    c = exp.config
    if c.dataset != "binarized_mnist":
        raise ValueError("the VAE twins cover dataset=binarized_mnist (no dynamic binarization)")
    if c.architecture == "conv":
        return ConvVAE(exp.data_shape, tuple(c.hidden), c.latent_dim)
    return MLPVAE(int(np.prod(exp.data_shape)), tuple(c.hidden), c.latent_dim)


def _eps(keys, batch_size, latent_dim):
    """The experiment's eps: per example, the first half of split(key) draws N(0, I_L); None: torch's generator."""
    if keys is None:
        return torch.randn(batch_size, latent_dim)
    eps_keys = jax.vmap(jax.random.split, out_axes=1)(jax.random.wrap_key_data(keys))[0]
    return t(jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(eps_keys))


def neg_elbo(model, batch, keys):
    """-ELBO (Kingma & Welling 2014, Eq. 10) with one reparameterized sample, nats per image, batch mean."""
    x = t(np.transpose(batch["image"], (0, 3, 1, 2)), torch.float32)  # {0, 1} [N, 1, 28, 28]
    mean, log_var = model.encode(x)
    z = mean + torch.exp(0.5 * log_var) * _eps(keys, x.shape[0], mean.shape[1]).to(mean)
    recon = F.binary_cross_entropy_with_logits(model.decode(z, x.shape[1:]), x, reduction="sum")
    kl = -0.5 * torch.sum(1.0 + log_var - mean.square() - log_var.exp())
    return (recon + kl) / x.shape[0]


TWINS = [
    Twin(name="vae_mnist", experiment="vae_mnist", build=_build, load=lambda m, p: m.load(p), loss=neg_elbo),
    Twin(name="vae_conv_mnist", experiment="vae_mnist", build=_build, load=lambda m, p: m.load(p), loss=neg_elbo,
         overrides={"architecture": "conv", "hidden": (32, 64)}),
]
