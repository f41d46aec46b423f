"""PyTorch twins of `pixelcnn_mnist` (PixelCNN, van den Oord et al. 2016a) and `gated_pixelcnn_mnist`
(Gated PixelCNN, van den Oord et al. 2016b): the same layers, parameter shapes and Bernoulli NLL
(nats per image) as `gm_jax.models.pixelcnn`, written the way a PyTorch zoo writes them
(masked kernels via a registered mask buffer, `F.conv2d` with padding, `nn.Linear` for 1x1 links).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.twins.common import Twin, assign, conv_weight, dense_weight, t
from gm_jax.nn import causal_mask


class MaskedConv(nn.Module):
    def __init__(self, cin, cout, k, mask_type):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer("mask", conv_weight(causal_mask((k, k), cin, cout, mask_type)))
        self.pad = k // 2

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.pad)

    def load(self, p):
        assign(self.weight, conv_weight(p["kernel"]))
        assign(self.bias, t(p["bias"]))


class PixelCNN(nn.Module):
    def __init__(self, features, num_layers, first_kernel, output_features):
        super().__init__()
        f = features
        self.conv_in = MaskedConv(1, 2 * f, first_kernel, "A")
        self.res = nn.ModuleList(nn.ModuleList([MaskedConv(2 * f, f, 1, "B"), MaskedConv(f, f, 3, "B"),
                                                MaskedConv(f, 2 * f, 1, "B")]) for _ in range(num_layers))
        self.out_a = MaskedConv(2 * f, output_features, 1, "B")
        self.out_b = MaskedConv(output_features, 1, 1, "B")

    def forward(self, x):  # x float [N, 1, H, W] in {0, 1} -> logits [N, 1, H, W]
        h = self.conv_in(x)
        for a, b, c in self.res:
            h = h + c(F.relu(b(F.relu(a(F.relu(h))))))
        return self.out_b(F.relu(self.out_a(F.relu(h))))

    def load(self, p):
        self.conv_in.load(p["conv_in"])
        for l, (a, b, c) in enumerate(self.res):
            a.load(p[f"res{l}_a"]), b.load(p[f"res{l}_b"]), c.load(p[f"res{l}_c"])
        self.out_a.load(p["out_a"]), self.out_b.load(p["out_b"])


def bernoulli_nll(logits, x):
    """-log p(x) in nats per image, averaged over the batch (x float {0, 1})."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


def _image(batch):  # binarized_mnist: {0, 1} uint8 [N, 28, 28, 1] -> float [N, 1, 28, 28]
    return t(np.transpose(batch["image"], (0, 3, 1, 2)), torch.float32)


def _pixelcnn(exp):
    c = exp.config
    return PixelCNN(c.features, c.num_layers, c.first_kernel, c.output_features)


class ShiftedConv(nn.Module):
    """Down-shifted (right=False) / down-right-shifted conv: zero padding on top (and left) then VALID."""

    def __init__(self, cin, cout, kh, kw, right):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, (kh, kw))
        self.pad = (kw - 1, 0, kh - 1, 0) if right else ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)

    def forward(self, x):
        return self.conv(F.pad(x, self.pad))

    def load(self, p):
        assign(self.conv.weight, conv_weight(p["kernel"]))
        assign(self.conv.bias, t(p["bias"]))


def linear(lin, p):
    assign(lin.weight, dense_weight(p["kernel"]))
    assign(lin.bias, t(p["bias"]))


class GatedPixelCNN(nn.Module):
    """The default (unconditional) Gated PixelCNN: vertical and horizontal stacks with gated units."""

    def __init__(self, features, num_layers, kernel_size, output_features):
        super().__init__()
        f, k = features, kernel_size
        kv, kh = (k // 2 + 1, k), (1, k // 2 + 1)
        self.v_in, self.h_in = ShiftedConv(1, f, *kv, False), ShiftedConv(1, f, *kh, True)
        self.link_in = nn.Linear(f, f)
        self.v_convs = nn.ModuleList(ShiftedConv(f, 2 * f, *kv, False) for _ in range(num_layers))
        self.h_convs = nn.ModuleList(ShiftedConv(f, 2 * f, *kh, True) for _ in range(num_layers))
        self.links = nn.ModuleList(nn.Linear(2 * f, 2 * f) for _ in range(num_layers))
        self.h_outs = nn.ModuleList(nn.Linear(f, f) for _ in range(num_layers))
        self.out_a, self.out_b = nn.Linear(f, output_features), nn.Linear(output_features, 1)

    @staticmethod
    def _c(lin, x):  # a 1x1 link on NCHW
        return lin(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    def forward(self, x):  # x float [N, 1, H, W] -> logits [N, 1, H, W]
        v = F.pad(self.v_in(x), (0, 0, 1, 0))[:, :, :-1]  # down_shift
        h = F.pad(self.h_in(x), (1, 0, 0, 0))[:, :, :, :-1] + self._c(self.link_in, v)  # right_shift + link
        for l in range(len(self.v_convs)):
            v_pre = self.v_convs[l](v)
            h_pre = self.h_convs[l](h) + self._c(self.links[l], v_pre)
            a, b = v_pre.chunk(2, 1)
            v = torch.tanh(a) * torch.sigmoid(b)
            a, b = h_pre.chunk(2, 1)
            h = h + self._c(self.h_outs[l], torch.tanh(a) * torch.sigmoid(b))
        return self._c(self.out_b, F.relu(self._c(self.out_a, F.relu(h))))

    def load(self, p):
        self.v_in.load(p["v_in"]), self.h_in.load(p["h_in"]), linear(self.link_in, p["link_in"])
        for l in range(len(self.v_convs)):
            self.v_convs[l].load(p[f"v_convs_{l}"]), self.h_convs[l].load(p[f"h_convs_{l}"])
            linear(self.links[l], p[f"links_{l}"]), linear(self.h_outs[l], p[f"h_outs_{l}"])
        linear(self.out_a, p["out_a"]), linear(self.out_b, p["out_b"])


def _gated(exp):
    c = exp.config
    if c.conditional or c.dataset != "binarized_mnist":
        raise ValueError("the Gated PixelCNN twin covers the default config (unconditional, binarized_mnist)")
    return GatedPixelCNN(c.features, c.num_layers, c.kernel_size, c.output_features)


def _nll(m, b, keys):
    x = _image(b)
    return bernoulli_nll(m(x), x)


TWINS = [
    Twin(name="pixelcnn_mnist", experiment="pixelcnn_mnist", build=_pixelcnn, load=lambda m, p: m.load(p), loss=_nll),
    Twin(name="gated_pixelcnn_mnist", experiment="gated_pixelcnn_mnist", build=_gated, load=lambda m, p: m.load(p),
         loss=_nll),
]
