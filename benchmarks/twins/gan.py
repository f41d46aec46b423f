"""PyTorch twin of `dcgan_mnist` (DCGAN, Radford et al. 2016; by default self-conditioned on 20 k-means clusters,
Liu et al. 2020): the players of `gm_jax.models.gan.DCGANGenerator` / `DCGANDiscriminator` with the same
parameter shapes, and `GAN.update` (Goodfellow et al. 2014, Algorithm 1) as the twin's step: `k` discriminator
updates on the real batch and fresh fakes (G in train mode, no gradient to G), then one generator update (D in
train mode, its parameters frozen), each player with its own Adam(lr, betas=(beta1, 0.999), eps=1e-8); losses
in nats per example: D's binary cross-entropy -V and the (non-)saturating generator loss.

Layers: G is Linear (no bias) -> BatchNorm -> ReLU, then 4x4 stride-2 `nn.ConvTranspose2d(padding=1)` (the
function of gm_jax's `FractionallyStridedConv2D` = `flax.linen.ConvTranspose(padding="SAME")`, which pads the
dilated input (2, 2) as torch does with padding=1; torch applies the spatially flipped kernel, so `load` flips
it) -> BatchNorm -> ReLU, and a tanh output. D is 4x4 stride-2 convs with Flax's SAME padding (symmetric (1, 1)
on 28 and 14, asymmetric (1, 2) on 7 -> 4: the extra row/column is an `F.pad`), BatchNorm on all but the first,
LeakyReLU(0.2), a linear logit. Conditioning: the one-hot cluster is concatenated to z, to D's input as constant
maps and to D's features before the logit. BatchNorm runs on batch statistics during training, one call per
batch (real and fake batches are normalised separately, as in gm_jax); `nn.BatchNorm2d(momentum=0.1)` is Flax's
momentum 0.9. Flattens and reshapes are NCHW here and HWC in gm_jax: `load` permutes the dense kernels.
"""
from __future__ import annotations

from itertools import pairwise

import jax
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.twins.common import Twin, assign, conv_weight, dense_weight, t
from gm_jax.training.loop import run_keys


def _hwc_to_chw(k, c, h, w, axis):
    """Permute the HWC-flattened axis `axis` (0: rows, 1: columns) of a dense kernel to CHW order."""
    if axis == 0:
        return k.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(c * h * w, -1)
    return k.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(-1, c * h * w)


def _bn(bn, p):
    assign(bn.weight, t(p["scale"]))
    assign(bn.bias, t(p["bias"]))


class Generator(nn.Module):
    def __init__(self, z_dim, num_classes, channels, image_shape):
        super().__init__()
        h, w, c_img = image_shape
        s = 2 ** len(channels)
        self.num_classes, self.small = num_classes, (channels[0], h // s, w // s)
        self.fc = nn.Linear(z_dim + num_classes, int(np.prod(self.small)), bias=False)
        self.bn0 = nn.BatchNorm2d(channels[0], eps=1e-5, momentum=0.1)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, 2, padding=1, bias=False)
                                 for a, b in pairwise(channels))
        self.bns = nn.ModuleList(nn.BatchNorm2d(b, eps=1e-5, momentum=0.1) for b in channels[1:])
        self.out = nn.ConvTranspose2d(channels[-1], c_img, 4, 2, padding=1)

    def forward(self, z, y=None):  # z [N, z_dim], y int [N] -> images [N, C, H, W] in [-1, 1]
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z)], 1)
        h = F.relu(self.bn0(self.fc(z).view(-1, *self.small)))
        for up, bn in zip(self.ups, self.bns):
            h = F.relu(bn(up(h)))
        return torch.tanh(self.out(h))

    def load(self, p):
        assign(self.fc.weight, dense_weight(_hwc_to_chw(np.asarray(p["Dense_0"]["kernel"]), *self.small, axis=1)))
        _bn(self.bn0, p["BatchNorm_0"])
        ups = [*self.ups, self.out]
        for i, up in enumerate(ups):
            q = p[f"FractionallyStridedConv2D_{i}"]  # HWIO, correlated as stored -> torch [I, O, kh, kw], flipped
            assign(up.weight, t(np.asarray(q["kernel"])[::-1, ::-1].transpose(2, 3, 0, 1).copy()))
            if up.bias is not None:
                assign(up.bias, t(q["bias"]))
        for i, bn in enumerate(self.bns):
            _bn(bn, p[f"BatchNorm_{i + 1}"])


class Discriminator(nn.Module):
    def __init__(self, num_classes, channels, image_shape):
        super().__init__()
        size, _, c_img = image_shape
        self.num_classes, cin = num_classes, c_img + num_classes
        self.convs, self.bns, self.extra_pad = nn.ModuleList(), nn.ModuleList(), []
        for i, c in enumerate(channels):
            total = max((-(-size // 2) - 1) * 2 + 4 - size, 0)  # Flax SAME: total padding, the extra one after
            self.convs.append(nn.Conv2d(cin, c, 4, 2, padding=total // 2, bias=i == 0))
            self.extra_pad.append(total % 2)
            if i > 0:
                self.bns.append(nn.BatchNorm2d(c, eps=1e-5, momentum=0.1))
            cin, size = c, -(-size // 2)
        self.feat = (channels[-1], size, size)
        self.fc = nn.Linear(int(np.prod(self.feat)) + num_classes, 1)

    def forward(self, x, y=None):  # x [N, C, H, W] in [-1, 1] -> logits [N]
        h = x
        if self.num_classes:
            onehot = F.one_hot(y, self.num_classes).to(x)
            h = torch.cat([x, onehot[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        for i, conv in enumerate(self.convs):
            h = conv(F.pad(h, (0, 1, 0, 1)) if self.extra_pad[i] else h)
            h = F.leaky_relu(self.bns[i - 1](h) if i > 0 else h, 0.2)
        h = h.flatten(1)
        if self.num_classes:
            h = torch.cat([h, onehot], 1)
        return self.fc(h)[:, 0]

    def load(self, p):
        for i, conv in enumerate(self.convs):
            assign(conv.weight, conv_weight(p[f"Conv_{i}"]["kernel"]))
            if conv.bias is not None:
                assign(conv.bias, t(p[f"Conv_{i}"]["bias"]))
        for i, bn in enumerate(self.bns):
            _bn(bn, p[f"BatchNorm_{i}"])
        k = np.asarray(p["Dense_0"]["kernel"])
        n = int(np.prod(self.feat))
        k = np.concatenate([_hwc_to_chw(k[:n], *self.feat, axis=0), k[n:]])
        assign(self.fc.weight, dense_weight(k))
        assign(self.fc.bias, t(p["Dense_0"]["bias"]))


class DCGAN(nn.Module):
    """Both players and the settings of the update (k, the generator loss, z_dim, which labels condition them)."""

    def __init__(self, exp):
        super().__init__()
        c = exp.config
        if c.pack != 1 or c.g_ema_decay or c.lr_decay != "none":
            raise ValueError("the DCGAN twin covers pack=1, g_ema_decay=0, lr_decay=none (the default config)")
        nc = exp.condition_classes
        self.generator = Generator(c.z_dim, nc, tuple(c.g_channels), exp.data_shape)
        self.discriminator = Discriminator(nc, tuple(c.d_channels), exp.data_shape)
        self.k, self.z_dim, self.g_loss = int(c.k), int(c.z_dim), c.generator_loss
        self.label_key = "label" if exp.num_classes else ("cluster" if c.clusters else None)

    def real_inputs(self, batch):
        x = t(np.transpose(batch["image"], (0, 3, 1, 2)), torch.float32) / 127.5 - 1.0
        return x, (t(batch[self.label_key], torch.long) if self.label_key else None)

    def d_loss(self, x, fake, y):
        """-V(D, G): cross-entropy of data (1) vs fakes (0), each set averaged, nats."""
        real_logits, fake_logits = self.discriminator(x, y), self.discriminator(fake, y)
        return (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))

    def generator_loss(self, fake_logits):
        if self.g_loss == "non_saturating":  # -E log D(G(z))
            return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))  # E log(1 - D(G(z)))

    def update(self, optimizers, x, y, zs):
        """Algorithm 1: one discriminator update per z in zs[:-1] (the same real batch), then a generator update
        on zs[-1]."""
        g_opt, d_opt = optimizers
        for z in zs[:-1]:
            with torch.no_grad():
                fake = self.generator(z, y)
            d_opt.zero_grad(set_to_none=True)
            self.d_loss(x, fake, y).backward()
            d_opt.step()
        self.discriminator.requires_grad_(False)
        g_opt.zero_grad(set_to_none=True)
        self.generator_loss(self.discriminator(self.generator(zs[-1], y), y)).backward()
        g_opt.step()
        self.discriminator.requires_grad_(True)

    def load(self, p):
        self.generator.load(p["generator"])
        self.discriminator.load(p["discriminator"])


def _noise(keys, j, z_dim):
    """gm_jax's z of update phase j: N(0, I) from fold_in(key, j), one per example (keys: raw key data [B, 2])."""
    ks = jax.vmap(lambda k: jax.random.fold_in(k, j))(jax.random.wrap_key_data(keys))
    return t(jax.vmap(lambda k: jax.random.normal(k, (z_dim,)))(ks))


def _step(m, optimizers, batch):
    x, y = m.real_inputs(batch)
    m.update(optimizers, x, y, [torch.randn(x.shape[0], m.z_dim) for _ in range(m.k + 1)])


def _optimizers(m, exp):
    """(G's, D's) Adam: optax.adam(lr, b1=beta1) of `gan.dcgan_optimizer` (b2 0.999, eps 1e-8)."""
    c = exp.config
    return tuple(torch.optim.Adam(p.parameters(), lr=float(c.learning_rate), betas=(float(c.beta1), 0.999), eps=1e-8)
                 for p in (m.generator, m.discriminator))


def _d_loss(m, batch, keys):
    """The first discriminator update's loss, on gm_jax's noise of that phase (keys given) or torch's (None)."""
    x, y = m.real_inputs(batch)
    z = torch.randn(x.shape[0], m.z_dim) if keys is None else _noise(keys, 0, m.z_dim)
    return m.d_loss(x, m.generator(z, y).detach(), y)


def _jax_d_loss(exp, p, batch, keys):
    """gm_jax's d_loss of the first discriminator phase of `GAN.update` (the init state with these parameters)."""
    state = exp.init_state(run_keys(exp.config.seed)["init"]).replace(g_params=p["generator"],
                                                                       d_params=p["discriminator"])
    x, y = exp.real_inputs(batch)
    keys0 = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
    return exp.gan.discriminator_phase(state, x, y, keys0)[1]["d_loss"]


TWINS = [
    Twin(name="dcgan_mnist", experiment="dcgan_mnist", build=DCGAN, load=lambda m, p: m.load(p), loss=_d_loss,
         jax_loss=_jax_d_loss, step=_step, optimizer=_optimizers,
         variables=lambda exp, s: {"generator": s.g_params, "discriminator": s.d_params}),
]
