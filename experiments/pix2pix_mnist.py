"""pix2pix on MNIST (Isola et al. 2017): edges -> digit, or the bottom half of a digit from its top half,
beside the L1-only generator.

    python -m experiments.pix2pix_mnist --workdir runs/pix2pix_edges
    python -m experiments.pix2pix_mnist --workdir runs/pix2pix_inpaint --config.task=inpaint

The paired task is built from MNIST alone (`config.task`); the target x is the test/train digit:

* `edges` (default): the input is the Canny edge map of the digit (`skimage.feature.canny` on the
  image scaled to [0, 1], sigma = `CANNY_SIGMA` = 1.0, hysteresis thresholds 0.1 / 0.2), as uint8
  0 / 255 [B, 28, 28, 1];
* `inpaint`: the input is the digit with its bottom half (rows 14..27) set to `MASK_VALUE` = 128
  (mid grey, a value the background and the strokes rarely take), uint8 [B, 28, 28, 1].

The generator is a U-Net (`gm_jax.models.pix2pix.UNetGenerator`: the 28x28 input edge-padded to
32x32, 4x4 stride-2 convolutions down to 1x1, transposed convolutions back up, each decoder layer
concatenated with its mirror encoder layer, tanh); its only noise is dropout (50%) in the first
`dropout_layers` decoder layers, at training and sampling time alike, with the masks drawn from the
per-example noise z (uniform draws, one per dropped unit), so the same key gives the same output on
one device or many. The discriminator is a PatchGAN (`pix2pix.PatchGANDiscriminator`) on the pair
(output, input): 4x4 convolutions with strides `d_strides`, batch norm, LeakyReLU(0.2), one logit
per 34x34 patch by default (5x5 logits, each seeing most of the 28x28 pair). The objective is Eq. 4:
the non-saturating cGAN loss plus `content_weight` (lambda, 100 as in the paper) x L1. One command
trains two generators of the same architecture and initialisation on the same batches
(`gm_jax.recipes.translation.TranslationExperiment`): `pix2pix` (L1 + cGAN) and `l1` (L1 alone, the
paper's "L1" row of Table 1).

Sampling: `model.sample(key, n, inputs=edges)` with `edges` uint8 [n, 28, 28, 1] in 0..255 (e.g.
`experiment.make_input(images)`), `generator="baseline"` for the L1-only model; the output is uint8
[n, 28, 28, 1]. Different keys give different dropout masks. A wrong shape or range is a `ValueError`
naming [n, 28, 28, 1].

At the end it writes to the workdir `results.json` with, for `pix2pix` and `l1` on the first
`num_eval_images` test images: `<method>_l1` ([0, 1] units), `_psnr_db`, `_ssim` (scikit-image),
`_mnist_fid` (against the same real test images), `_mnist_is` and `_classifier_accuracy` (the project's
MNIST classifier against the targets' labels); `comparison.png` (rows of input / L1-only / pix2pix /
target) and `losses.png`.
"""
from __future__ import annotations

import ml_collections
import numpy as np
from skimage import feature

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.models import pix2pix
from gm_jax.recipes.translation import TranslationExperiment, translation_config

TASKS = ("edges", "inpaint")
CANNY_SIGMA, CANNY_LOW, CANNY_HIGH = 1.0, 0.1, 0.2  # skimage.feature.canny on images in [0, 1]
MASK_VALUE = 128  # the hidden bottom half of an inpainting input


def get_config() -> ml_collections.ConfigDict:
    """Default (CPU-sized): U-Net 16-32-64-64-64 (32x32 -> 1x1) with dropout in the first two decoder layers,
    a 34x34 PatchGAN of 32-64-64 channels (strides 2, 2, 1), lambda = 100, Adam(2e-4, beta1 0.5), batch 64,
    2,500 steps (2.7 epochs)."""
    c = translation_config()
    c.task = "edges"  # edges | inpaint
    c.g_channels = (16, 32, 64, 64, 64)  # 32 -> 16 -> 8 -> 4 -> 2 -> 1
    c.dropout_layers = 2  # decoder layers with dropout (the 2x2 and 4x4 ones)
    c.dropout_rate = 0.5
    c.d_channels = (32, 64, 64)  # 28 -> 14 -> 7 -> 6 -> 5x5 logits
    c.d_strides = (2, 2, 1)  # a 34x34 receptive field
    c.content_loss = "l1"  # Eq. 3
    c.content_weight = 100.0  # lambda of Eq. 4
    c.adversarial_weight = 1.0
    c.baseline = True  # the L1-only generator, trained beside pix2pix on the same batches
    c.learning_rate = 2e-4
    c.beta1 = 0.5
    c.batch_size = 64
    c.num_steps = 2500
    c.checkpoint_every = 1000
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Isola et al. 2017, Appendix 6.1-6.2 and Sec. 4 (`pix2pix.PAPER`): the U-Net widths 64-128-256-512-512
    (the first five of the 256x256 U-Net's eight; 32x32 reaches 1x1 in five), dropout 50% in the first three
    decoder layers, the 70x70 PatchGAN (64-128-256-512, strides 2, 2, 2, 1: on 28x28 it sees the whole
    image), lambda = 100, Adam(2e-4, beta1 0.5), batch 1. Not reproduced: test-time batch statistics
    (batch norm uses running averages here), D's objective halved (Sec. 3.3; Adam is nearly invariant to the
    loss's scale), random jitter and the step counts."""
    p = pix2pix.PAPER
    return config_lib.apply_overrides(get_config(), {
        "g_channels": p["g_channels"][:5], "dropout_layers": p["dropout_layers"], "dropout_rate": p["dropout_rate"],
        "d_channels": p["d_channels"], "d_strides": p["d_strides"], "content_weight": p["content_weight"],
        "learning_rate": p["learning_rate"], "beta1": p["beta1"], "batch_size": p["batch_size"]}, "pix2pix_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny players (U-Net 4-8-8, dropout in one layer; PatchGAN 4-8-8), batch 8, 16 evaluation images on
    synthetic digits."""
    c = get_config()
    c.data_dir = "synthetic"
    c.g_channels, c.dropout_layers, c.d_channels = (4, 8, 8), 1, (4, 8, 8)
    c.batch_size, c.eval_batch_size, c.num_eval_images = 8, 16, 16
    return c


class Experiment(TranslationExperiment):
    name = "pix2pix_mnist"
    input_shape = (28, 28, 1)
    method_names = ("pix2pix", "l1")
    schema = {**TranslationExperiment.schema, "task": Choice(*TASKS), "g_channels": Range(1, integer=True, each=True),
              "dropout_layers": Range(0, integer=True), "dropout_rate": Range(0.0, 1.0, hi_open=True),
              "d_channels": Range(1, integer=True, each=True), "d_strides": Range(1, integer=True, each=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        if len(config.d_channels) != len(config.d_strides) or config.dropout_layers >= len(config.g_channels):
            raise ValueError(f"config.d_channels={config.d_channels} and d_strides={config.d_strides} need one "
                             f"entry per layer, and dropout_layers={config.dropout_layers} must be below "
                             f"len(g_channels)={len(config.g_channels)}")
        self.input_note = {"edges": "a Canny edge map, 0 or 255",
                           "inpaint": f"a digit with rows 14..27 set to {MASK_VALUE}"}[config.task]
        super().__init__(config)

    def make_input(self, images: np.ndarray) -> np.ndarray:
        """The input of each target digit: uint8 [B, 28, 28, 1] -> uint8 [B, 28, 28, 1]; `edges`: 255 on the
        Canny edges (`skimage.feature.canny`, sigma `CANNY_SIGMA`, thresholds `CANNY_LOW` / `CANNY_HIGH` on
        images in [0, 1]), 0 elsewhere; `inpaint`: the image with rows 14..27 set to `MASK_VALUE`.

        Raises:
          ValueError: images not [B, 28, 28, 1].
        """
        x = np.asarray(images)
        if x.ndim != 4 or x.shape[1:] != self.data_shape:
            raise ValueError(f"{self.name}: make_input expects images [B, 28, 28, 1], got shape {x.shape}")
        if self.config.task == "inpaint":
            out = x.astype(np.uint8)
            out[:, 14:] = MASK_VALUE
            return out
        edges = [feature.canny(im[..., 0].astype(np.float64) / 255.0, sigma=CANNY_SIGMA, low_threshold=CANNY_LOW,
                               high_threshold=CANNY_HIGH) for im in x]
        return (np.stack(edges)[..., None] * 255).astype(np.uint8) if len(x) else np.zeros_like(x, np.uint8)

    def players(self):
        c = self.config
        generator = pix2pix.UNetGenerator(tuple(c.g_channels), self.input_shape, self.data_shape[-1],
                                          int(c.dropout_layers), float(c.dropout_rate))
        return generator, pix2pix.PatchGANDiscriminator(tuple(c.d_channels), tuple(c.d_strides)), generator.noise_dim


if __name__ == "__main__":
    from gm_jax.cli import main

    main("pix2pix_mnist")
