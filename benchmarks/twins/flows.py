"""PyTorch twin of `glow_mnist` (Glow, Kingma & Dhariwal 2018, Fig. 2): the multi-scale flow of
`gm_jax.models.flows.glow` with the same parameters and the same loss, -log p(x~) + D ln 256 nats per
image (batch mean) of the uniformly dequantized 8-bit image x~ = (x + u) / 256, written the way a PyTorch
Glow is written (NCHW, `F.conv2d` for the 1x1 convolution and the conditioner, a flow as a list of
invertible layers each returning its log-det).

Per level: squeeze (gm_jax's channel order, (dh, dw, c)), `steps_per_level` x [ActNorm (parameters copied
from gm_jax's data-dependent init), LU-decomposed invertible 1x1 conv W = P L (U + diag(sign(s) exp(log_s)))
with log-det H W sum(log_s) (Glow Eq. 10; P and sign(s) are frozen parameters, as gm_jax keeps them in
the params behind `stop_gradient`), affine coupling y_b = (x_b + t) * (m + (1 - m) sigmoid(raw + 2)),
m = `min_scale`, conditioner conv3x3-ReLU-[conv1x1-ReLU]*(num_layers-1)-conv3x3], then a split of half the
channels (all levels but the last); logit preprocessing (RealNVP Sec. 4.1) in front; standard normal base.

The update is gm_jax's: global-norm gradient clipping at `grad_clip`, then Adam with the linear-warmup /
cosine-decay learning rate of `ImageFlowExperiment.optimizer`.
"""
from __future__ import annotations

import math

import jax
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.twins.common import Twin, assign, conv_weight, t

LN256 = math.log(256.0)
LOG_2PI = math.log(2 * math.pi)


def squeeze(x):
    """[B, C, H, W] -> [B, 4C, H/2, W/2], channel (dh * 2 + dw) * C + c (gm_jax's `flows.squeeze` order)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 3, 5, 1, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.loc, self.log_scale = nn.Parameter(torch.zeros(c)), nn.Parameter(torch.zeros(c))

    def forward(self, x):
        y = (x + self.loc[:, None, None]) * self.log_scale.exp()[:, None, None]
        return y, x.shape[2] * x.shape[3] * self.log_scale.sum()

    def load(self, p):
        assign(self.loc, t(p["loc"])), assign(self.log_scale, t(p["log_scale"]))


class InvConv1x1LU(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.p = nn.Parameter(torch.eye(c), requires_grad=False)
        self.sign_s = nn.Parameter(torch.ones(c), requires_grad=False)
        self.l, self.u = nn.Parameter(torch.zeros(c, c)), nn.Parameter(torch.zeros(c, c))
        self.log_s = nn.Parameter(torch.zeros(c))
        self.register_buffer("eye", torch.eye(c))

    def forward(self, x):
        lower = torch.tril(self.l, -1) + self.eye
        upper = torch.triu(self.u, 1) + torch.diag(self.sign_s * self.log_s.exp())
        w = self.p @ lower @ upper  # y = x W over channels (gm_jax) -> conv weight W^T [out, in, 1, 1]
        return F.conv2d(x, w.T[:, :, None, None]), x.shape[2] * x.shape[3] * self.log_s.sum()

    def load(self, p):
        p = p["lu"]
        for name in ("p", "sign_s", "l", "u", "log_s"):
            assign(getattr(self, name), t(p[name]))


class AffineCoupling(nn.Module):
    def __init__(self, c, hidden, num_layers, min_scale):
        super().__init__()
        self.half, self.min_scale = c // 2, min_scale
        out = c - c // 2
        convs = [nn.Conv2d(self.half, hidden, 3, padding=1)]
        convs += [nn.Conv2d(hidden, hidden, 1) for _ in range(num_layers - 1)]
        self.convs, self.last = nn.ModuleList(convs), nn.Conv2d(hidden, 2 * out, 3, padding=1)

    def forward(self, x):
        xa, xb = x[:, : self.half], x[:, self.half:]
        h = xa
        for conv in self.convs:
            h = F.relu(conv(h))
        raw, shift = self.last(h).chunk(2, 1)
        scale = self.min_scale + (1 - self.min_scale) * torch.sigmoid(raw + 2.0)
        return torch.cat([xa, (xb + shift) * scale], 1), scale.log().flatten(1).sum(1)

    def load(self, p):
        p = p["conditioner"]
        for i, conv in enumerate([*self.convs, self.last]):
            assign(conv.weight, conv_weight(p[f"Conv_{i}"]["kernel"])), assign(conv.bias, t(p[f"Conv_{i}"]["bias"]))


class Glow(nn.Module):
    def __init__(self, image_shape, num_levels, steps_per_level, hidden, num_layers, min_scale, logit_alpha):
        super().__init__()
        c = image_shape[-1]
        self.alpha, self.levels = logit_alpha, nn.ModuleList()
        for i in range(num_levels):
            c *= 4
            self.levels.append(nn.ModuleList(
                m for _ in range(steps_per_level)
                for m in (ActNorm(c), InvConv1x1LU(c), AffineCoupling(c, hidden, num_layers, min_scale))))
            c -= c // 2  # the split (unused after the last level)

    def forward(self, x):  # x~ [B, C, H, W] in [0, 1) -> log p(x~) [B], nats
        a = self.alpha
        p = a + (1 - 2 * a) * x
        h = p.log() - torch.log1p(-p)
        ld = (math.log(1 - 2 * a) - p.log() - torch.log1p(-p)).flatten(1).sum(1)
        log_pz = 0.0
        for i, level in enumerate(self.levels):
            h = squeeze(h)
            for layer in level:
                h, l = layer(h)
                ld = ld + l
            if i < len(self.levels) - 1:
                z, h = h[:, : h.shape[1] // 2], h[:, h.shape[1] // 2:]
                log_pz = log_pz - 0.5 * (LOG_2PI + z.square()).flatten(1).sum(1)
        return log_pz - 0.5 * (LOG_2PI + h.square()).flatten(1).sum(1) + ld

    def load(self, params):
        levels = params["layers_1"]  # layers_0: Logit (no parameters); layers_1: MultiScale
        for i, level in enumerate(self.levels):  # levels_i: Chain [Squeeze, (ActNorm, 1x1, coupling) * K]
            for j, layer in enumerate(level):
                layer.load(levels[f"levels_{i}"][f"layers_{j + 1}"])


def _glow(exp):
    c = exp.config
    if not (c.lu and c.preprocess == "logit"):
        raise ValueError("the Glow twin covers the default config (lu=True, preprocess='logit')")
    return Glow(exp.data_shape, c.num_levels, c.steps_per_level, c.hidden, c.num_layers, c.min_scale, c.logit_alpha)


def jax_uniform(keys, shape):
    """gm_jax's dequantization noise: `jax.random.uniform(key_b, shape)` per example key (raw key data [B, 2])."""
    ks = jax.random.wrap_key_data(np.asarray(keys, np.uint32))
    return np.asarray(jax.vmap(lambda k: jax.random.uniform(k, shape))(ks))


def _nll(m, b, keys):
    """-log p(x~) + D ln 256, nats per image (batch mean); u from the gm_jax keys in the check, torch when timing."""
    x = t(np.transpose(b["image"], (0, 3, 1, 2)), torch.float32)
    u = torch.rand_like(x) if keys is None else t(jax_uniform(keys, b["image"].shape[1:])).permute(0, 3, 1, 2)
    return -(m((x + u) / 256.0) - x[0].numel() * LN256).mean()


def _optimizer(m, exp):
    """Adam + gm_jax's schedule (optax.warmup_cosine_decay_schedule) + its global-norm clip."""
    c = exp.config
    warm = max(1, min(c.warmup_steps, max(c.num_steps - 1, 1)))
    decay, alpha = max(c.num_steps, warm + 1) - warm, c.lr_final_fraction

    def factor(s):
        if s < warm:
            return s / warm
        return alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(s - warm, decay) / decay))

    opt = torch.optim.Adam(m.parameters(), lr=float(c.learning_rate), betas=(0.9, 0.999), eps=1e-8)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor), float(c.grad_clip)


def _step(m, opt, batch):
    opt, sched, clip = opt
    opt.zero_grad(set_to_none=True)
    _nll(m, batch, None).backward()
    nn.utils.clip_grad_norm_(m.parameters(), clip)
    opt.step()
    sched.step()


TWINS = [
    Twin(name="glow_mnist", experiment="glow_mnist", build=_glow, load=lambda m, p: m.load(p), loss=_nll,
         step=_step, optimizer=_optimizer),
]
