"""Layers shared by several models: masked and shifted (causal) convolutions, gated units, the phase-by-phase transposed convolution; `pmean` over the pmap axis."""
from gm_jax.nn.collectives import pmean
from gm_jax.nn.layers import (
    DownRightShiftedConv2D,
    DownRightShiftedConvTranspose2D,
    DownShiftedConv2D,
    DownShiftedConvTranspose2D,
    FractionallyStridedConv2D,
    MaskedConv2D,
    causal_mask,
    concat_elu,
    conv2d,
    down_right_shifted_padding,
    down_shift,
    down_shifted_padding,
    gated_activation,
    right_shift,
)

__all__ = [
    "DownRightShiftedConv2D",
    "DownRightShiftedConvTranspose2D",
    "DownShiftedConv2D",
    "DownShiftedConvTranspose2D",
    "FractionallyStridedConv2D",
    "MaskedConv2D",
    "causal_mask",
    "concat_elu",
    "conv2d",
    "down_right_shifted_padding",
    "down_shift",
    "down_shifted_padding",
    "gated_activation",
    "pmean",
    "right_shift",
]
