"""PyTorch twin of `wavenet_digits`: WaveNet (van den Oord et al. 2016) with global conditioning on the
digit and the speaker, over 256 mu-law classes (`gm_jax.models.wavenet.WaveNet`).

Written as PyTorch WaveNets are (NCL layout): causal dilated `F.conv1d` of kernel 2 with left zero
padding, gated tanh * sigmoid units with the conditioning projected per layer and broadcast over time,
1x1 `nn.Conv1d` residual / skip and output layers. gm_jax's kernel-2 dilated convolution is one Dense
on [h[t - d]; h[t]]: its kernel's first half is the conv's tap 0 (h[t - d]), the second half tap 1.
The data are already mu-law classes (`batch["x"]`); the loss is gm_jax's: the categorical NLL of
the real (mask 1) samples, summed per crop, batch mean. The train step: global-norm clipping, then
Adam (the experiment's optimizer, less its learning-rate schedule).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.twins.common import Twin, assign, dense_weight, t
from benchmarks.twins.sequences import _adam, clipped
from gm_jax.data import audio
from gm_jax.models.wavenet import NUM_CLASSES, START_CLASS, dilations


def conv1x1(conv, p):
    assign(conv.weight, dense_weight(p["kernel"])[:, :, None])
    assign(conv.bias, t(p["bias"]))


class WaveNet(nn.Module):
    def __init__(self, dilation_seq, residual, skip, num_digits, num_speakers, cond_dim):
        super().__init__()
        r, self.widths = residual, [residual, skip]
        self.dilation_seq = dilation_seq
        self.embed = nn.Embedding(NUM_CLASSES, r)
        self.digit_embed, self.speaker_embed = nn.Embedding(num_digits, cond_dim), nn.Embedding(num_speakers, cond_dim)
        self.convs = nn.ModuleList(nn.Conv1d(r, 2 * r, 2, dilation=d) for d in dilation_seq)
        self.conds = nn.ModuleList(nn.Linear(2 * cond_dim, 2 * r, bias=False) for _ in dilation_seq)
        self.res_skip = nn.ModuleList(nn.Conv1d(r, r + skip, 1) for _ in dilation_seq)
        self.out1, self.out2 = nn.Conv1d(skip, skip, 1), nn.Conv1d(skip, NUM_CLASSES, 1)

    def forward(self, x, digit, speaker):  # mu-law classes long [B, T], labels [B] -> logits [B, 256, T]
        inputs = F.pad(x[:, :-1], (1, 0), value=START_CLASS)  # position t reads x_{t-1}
        h = self.embed(inputs).transpose(1, 2)  # [B, R, T]
        c = torch.cat([self.digit_embed(digit), self.speaker_embed(speaker)], -1)
        skip = 0.0
        for d, conv, cond, res_skip in zip(self.dilation_seq, self.convs, self.conds, self.res_skip):
            a, b = (conv(F.pad(h, (d, 0))) + cond(c)[:, :, None]).chunk(2, 1)
            h_res, s = res_skip(torch.tanh(a) * torch.sigmoid(b)).split(self.widths, 1)
            h, skip = h + h_res, skip + s
        return self.out2(F.relu(self.out1(F.relu(skip))))

    def load(self, p):
        r = self.widths[0]
        assign(self.embed.weight, t(p["input_embed"]["embedding"]))
        assign(self.digit_embed.weight, t(p["digit_embed"]["embedding"]))
        assign(self.speaker_embed.weight, t(p["speaker_embed"]["embedding"]))
        for i, (conv, cond, res_skip) in enumerate(zip(self.convs, self.conds, self.res_skip)):
            k = t(p[f"layer{i}_dilated_conv"]["kernel"])  # [2R (h[t-d]; h[t]), 2R] -> [2R out, R in, 2 taps]
            assign(conv.weight, k.reshape(2, r, 2 * r).permute(2, 1, 0))
            assign(conv.bias, t(p[f"layer{i}_dilated_conv"]["bias"]))
            assign(cond.weight, dense_weight(p[f"layer{i}_cond"]["kernel"]))
            conv1x1(res_skip, p[f"layer{i}_residual_skip"])
        conv1x1(self.out1, p["out1"]), conv1x1(self.out2, p["out2"])


def _wavenet(exp):
    c = exp.config
    return WaveNet(dilations(c.layers_per_block, c.num_blocks), c.residual_channels, c.skip_channels,
                   len(audio.DIGITS), len(audio.SPEAKERS), c.cond_dim)


def masked_nll(m, b, keys):
    """Nats per crop (sum over its real samples), averaged over the batch."""
    x = t(b["x"], torch.long)
    nll = F.cross_entropy(m(x, t(b["digit"], torch.long), t(b["speaker"], torch.long)), x, reduction="none")
    return (nll * t(b["mask"])).sum() / len(x)


TWINS = [
    Twin(name="wavenet_digits", experiment="wavenet_digits", build=_wavenet, load=lambda m, p: m.load(p),
         loss=masked_nll, step=clipped(masked_nll), optimizer=_adam),
]
