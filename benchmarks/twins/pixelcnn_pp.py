"""PyTorch twin of `pixelcnn_pp_mnist` (PixelCNN++, Salimans et al. 2017): the network of
`gm_jax.models.pixelcnn_pp.PixelCNNPP` (no weight norm, as gm_jax) with the same parameters and the same
loss, the discretized logistic mixture NLL of the 8-bit pixels in nats per image (batch mean), written the
way a PyTorch PixelCNN++ is written (NCHW, padded `nn.Conv2d` / `nn.ConvTranspose2d` for the down- and
down-right-shifted (de)convolutions, 1x1 convs for the `nin` links, `nn.Dropout` in the gated ResNets).

Dropout: the default has dropout 0.5. Flax draws its masks from the per-example keys folded with the
module path, which torch cannot reproduce, so the initial-loss check runs both sides without dropout
(`jax_loss` is gm_jax's exact `log_prob`, dropout off; the twin in eval mode). The timed steps run both
with dropout (gm_jax's `loss_fn`; the twin in train mode, masks from torch's generator).
"""
from __future__ import annotations

import collections
import itertools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.twins.common import Twin, assign, conv_weight, dense_weight, t
from gm_jax.models import pixelcnn_pp


def concat_elu(x):
    return F.elu(torch.cat([x, -x], 1))


def down_shift(x):
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def right_shift(x):
    return F.pad(x, (1, 0))[..., :-1]


class ShiftedConv(nn.Conv2d):
    """Down-shifted (right=False: kh-1 rows on top, (kw-1)/2 columns each side) or down-right-shifted
    (kh-1 rows on top, kw-1 columns left) zero padding, then a VALID convolution."""

    def __init__(self, cin, cout, kh, kw, right=False, stride=1):
        super().__init__(cin, cout, (kh, kw), stride)
        self.pad = (kw - 1, 0, kh - 1, 0) if right else ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)

    def forward(self, x):
        return super().forward(F.pad(x, self.pad))

    def load(self, p):
        assign(self.weight, conv_weight(p["kernel"])), assign(self.bias, t(p["bias"]))


class ShiftedDeconv(nn.ConvTranspose2d):
    """Stride-2 transposed conv cropped to 2H x 2W (down-shifted: columns centred; down-right: left-aligned)."""

    def __init__(self, cin, cout, kh, kw, right=False):
        super().__init__(cin, cout, (kh, kw), 2)
        self.c0 = 0 if right else (kw - 1) // 2

    def forward(self, x):
        h, w = x.shape[2:]
        return super().forward(x)[:, :, : 2 * h, self.c0: self.c0 + 2 * w]

    def load(self, p):  # lax.conv_transpose does not flip the kernel, torch's transposed conv does
        assign(self.weight, t(np.transpose(np.asarray(p["kernel"]), (2, 3, 0, 1))[:, :, ::-1, ::-1]))
        assign(self.bias, t(p["bias"]))


def nin(conv, p):  # a Flax Dense on the channel axis as a 1x1 conv
    assign(conv.weight, dense_weight(p["kernel"])[:, :, None, None]), assign(conv.bias, t(p["bias"]))


class GatedResnet(nn.Module):
    """x + a * sigmoid(b), [a, b] = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(aux)))))."""

    def __init__(self, f, right, dropout, aux=0):
        super().__init__()
        kh, kw = (2, 2) if right else (2, 3)
        self.kind = "DownRightShiftedConv2D" if right else "DownShiftedConv2D"
        self.conv1 = ShiftedConv(2 * f, f, kh, kw, right)
        self.nin = nn.Conv2d(2 * aux, f, 1) if aux else None
        self.drop = nn.Dropout(dropout)
        self.conv2 = ShiftedConv(2 * f, 2 * f, kh, kw, right)

    def forward(self, x, aux=None):
        c = self.conv1(concat_elu(x))
        if aux is not None:
            c = c + self.nin(concat_elu(aux))
        a, b = self.conv2(self.drop(concat_elu(c))).chunk(2, 1)
        return x + a * torch.sigmoid(b)

    def load(self, p):
        self.conv1.load(p[f"{self.kind}_0"]), self.conv2.load(p[f"{self.kind}_1"])
        if self.nin is not None:
            nin(self.nin, p["Dense_0"])


class PixelCNNPP(nn.Module):
    """Integer pixels [N, 1, H, W] -> mixture parameters [N, 3K, H, W] (logits, means, log scales)."""

    def __init__(self, f, num_resnet, num_mixtures, dropout, num_levels=3, num_values=256):
        super().__init__()
        self.num_values, self.num_levels, L = num_values, num_levels, range(num_levels)
        self.u_in, self.ul_in_v = ShiftedConv(2, f, 2, 3), ShiftedConv(2, f, 1, 3)
        self.ul_in_h = ShiftedConv(2, f, 2, 1, right=True)
        g = lambda n, right, aux: nn.ModuleList(GatedResnet(f, right, dropout, aux) for _ in range(n))
        self.up_u = nn.ModuleList(g(num_resnet, False, 0) for _ in L)
        self.up_ul = nn.ModuleList(g(num_resnet, True, f) for _ in L)
        self.down_u = nn.ModuleList(g(num_resnet + (l > 0), False, f) for l in L)
        self.down_ul = nn.ModuleList(g(num_resnet + (l > 0), True, 2 * f) for l in L)
        self.u_stride = nn.ModuleList(ShiftedConv(f, f, 2, 3, stride=2) for _ in L[1:])
        self.ul_stride = nn.ModuleList(ShiftedConv(f, f, 2, 2, right=True, stride=2) for _ in L[1:])
        self.u_deconv = nn.ModuleList(ShiftedDeconv(f, f, 2, 3) for _ in L[1:])
        self.ul_deconv = nn.ModuleList(ShiftedDeconv(f, f, 2, 2, right=True) for _ in L[1:])
        self.out = nn.Conv2d(f, 3 * num_mixtures, 1)

    def forward(self, x):
        xin = x * (2.0 / (self.num_values - 1)) - 1.0
        xin = torch.cat([xin, torch.ones_like(xin)], 1)  # marks the zero padding
        us = [down_shift(self.u_in(xin))]
        uls = [down_shift(self.ul_in_v(xin)) + right_shift(self.ul_in_h(xin))]
        for l in range(self.num_levels):  # up pass (28 -> 14 -> 7)
            for gu, gul in zip(self.up_u[l], self.up_ul[l]):
                us.append(gu(us[-1]))
                uls.append(gul(uls[-1], us[-1]))
            if l < self.num_levels - 1:
                us.append(self.u_stride[l](us[-1]))
                uls.append(self.ul_stride[l](uls[-1]))
        u, ul = us.pop(), uls.pop()
        for l in range(self.num_levels):  # down pass (7 -> 14 -> 28) with the shortcuts
            for gu, gul in zip(self.down_u[l], self.down_ul[l]):
                u = gu(u, us.pop())
                ul = gul(ul, torch.cat([u, uls.pop()], 1))
            if l < self.num_levels - 1:
                u, ul = self.u_deconv[l](u), self.ul_deconv[l](ul)
        return self.out(F.elu(ul))

    def load(self, p):
        """Flax names submodules by type in creation order (`GatedResnet_7`, ...): walk the same order."""
        count = collections.defaultdict(itertools.count)
        nxt = lambda kind: p[f"{kind}_{next(count[kind])}"]
        self.u_in.load(nxt("DownShiftedConv2D")), self.ul_in_v.load(nxt("DownShiftedConv2D"))
        self.ul_in_h.load(nxt("DownRightShiftedConv2D"))
        for l in range(self.num_levels):
            for gu, gul in zip(self.up_u[l], self.up_ul[l]):
                gu.load(nxt("GatedResnet")), gul.load(nxt("GatedResnet"))
            if l < self.num_levels - 1:
                self.u_stride[l].load(nxt("DownShiftedConv2D")), self.ul_stride[l].load(nxt("DownRightShiftedConv2D"))
        for l in range(self.num_levels):
            for gu, gul in zip(self.down_u[l], self.down_ul[l]):
                gu.load(nxt("GatedResnet")), gul.load(nxt("GatedResnet"))
            if l < self.num_levels - 1:
                self.u_deconv[l].load(nxt("DownShiftedConvTranspose2D"))
                self.ul_deconv[l].load(nxt("DownRightShiftedConvTranspose2D"))
        nin(self.out, nxt("Dense"))


def discretized_logistic_mixture_nll(out, x, num_values=256):
    """-log p(x), nats per image, batch mean: gm_jax's exact form of PixelCNN++ Eq. 2 (one channel;
    edge bins open-ended; interior bins log(sigmoid(a) - sigmoid(b)) taken in log space; log scales
    clipped to [-7, 30], means to [-1e4, 1e4]). out [N, 3K, H, W], x integer-valued float [N, 1, H, W]."""
    logits, means, log_scales = out.chunk(3, 1)
    half = 1.0 / (num_values - 1)
    inv_s = torch.exp(-log_scales.clamp(-7.0, 30.0))
    centered = x * (2 * half) - 1.0 - means.clamp(-1e4, 1e4)
    plus, minus = inv_s * (centered + half), inv_s * (centered - half)
    log_cdf_plus, log_sf_min = F.logsigmoid(plus), F.logsigmoid(-minus)
    log_mid = log_cdf_plus + log_sf_min + torch.log(-torch.expm1(-inv_s * (2 * half)))
    log_probs = torch.where(x == 0, log_cdf_plus, torch.where(x == num_values - 1, log_sf_min, log_mid))
    per_pixel = torch.logsumexp(log_probs + F.log_softmax(logits, 1), 1)
    return -per_pixel.flatten(1).sum(1).mean()


def _build(exp):
    c = exp.config
    m = exp.model
    if m.image_shape[-1] != 1:
        raise ValueError("the PixelCNN++ twin covers one-channel images (the default, 8-bit MNIST)")
    return PixelCNNPP(c.features, c.num_resnet, c.num_mixtures, c.dropout, m.num_levels, m.num_values)


def _nll(m, b, keys):
    """Train mode (dropout on) when timing (keys None); eval mode for the check (see the module doc)."""
    m.train(keys is None)
    x = t(np.transpose(b["image"], (0, 3, 1, 2)), torch.float32)
    return discretized_logistic_mixture_nll(m(x), x, m.num_values)


def _jax_nll(exp, params, batch, keys):
    """gm_jax's training loss without dropout: -mean exact log p(x) (`pixelcnn_pp.log_prob`, no dropout key)."""
    return -pixelcnn_pp.log_prob(exp.model, params, np.asarray(batch["image"], np.int32)).mean()


TWINS = [
    Twin(name="pixelcnn_pp_mnist", experiment="pixelcnn_pp_mnist", build=_build, load=lambda m, p: m.load(p),
         loss=_nll, jax_loss=_jax_nll),
]
