"""4x super-resolution of MNIST by SRGAN (Ledig et al. 2017), beside the MSE-only SRResNet and bicubic upsampling.

    python -m experiments.srgan_mnist --workdir runs/srgan_mnist [--config.adversarial_weight=1e-2]

The low-resolution input of each 28x28 digit is its 4x area average: the mean
of each 4x4 block of pixels (`skimage.transform.downscale_local_mean`), rounded
to the nearest integer (halves to even, `np.rint`), a uint8 7x7 image. The generator
(`gm_jax.models.srgan.SRResNet`: a 9x9 conv + PReLU, residual blocks, the long
skip, two x2 sub-pixel upsampling blocks, a 9x9 output conv and tanh) maps it
to 28x28; the discriminator (`srgan.SRDiscriminator`: 3x3 convolutions with
strides 1, 2, 1, 2, batch norm, LeakyReLU(0.2), a dense layer and one logit)
judges 28x28 images and ignores the input. One command trains two generators
of the same architecture and initialisation on the same batches
(`gm_jax.recipes.translation.TranslationExperiment`, `config.baseline`):

* `srgan`: pixel MSE + `adversarial_weight` x the non-saturating adversarial
  loss (Eq. 3 with the MSE content loss of Eq. 4, "SRGAN-MSE"), with the
  paper's weight 1e-3 (which it set beside a VGG content loss).
* `mse`: the pixel MSE alone (the SRResNet, the "traditional loss").

Both players train from scratch together (the paper initialises SRGAN from a
pre-trained SRResNet), with Adam (`learning_rate`, `beta1`) for each.

Sampling: `model.sample(key, n, inputs=lowres)` with `lowres` uint8
[n, 7, 7, 1] in 0..255 (e.g. `experiment.make_input(images)`), and
`generator="baseline"` for the MSE-only model; the output is uint8
[n, 28, 28, 1]. A wrong shape or range is a `ValueError` naming [n, 7, 7, 1].

At the end it writes to the workdir `results.json` with, for `srgan`, `mse`
and `bicubic` (Pillow's `Image.BICUBIC` resize of the 7x7 input to 28x28, the
cubic convolution kernel with a = -0.5 of Keys 1981, rounded to uint8), on the
first `num_eval_images` test images: `<method>_psnr_db`, `_ssim` (scikit-image,
data range 255), `_l1` ([0, 1] units), `_mnist_fid` (against the same real test
images), `_mnist_is` and `_classifier_accuracy` (the project's MNIST classifier
against the true labels); `comparison.png` (rows of input / bicubic / MSE /
SRGAN / target) and `losses.png`.
"""
from __future__ import annotations

import ml_collections
import numpy as np
from PIL import Image
from skimage.transform import downscale_local_mean

from gm_jax import config as config_lib
from gm_jax.config import Range
from gm_jax.models import srgan
from gm_jax.recipes.translation import TranslationExperiment, translation_config

FACTOR = 4  # 28x28 -> 7x7


def get_config() -> ml_collections.ConfigDict:
    """Default (CPU-sized): SRResNet of 4 residual blocks of 32 features, D of 32-32-64-64 channels and a dense
    layer of 256 units; Adam(5e-4, beta1 0.5) for both players, batch 32, 2,500 steps; MSE content loss and
    the paper's adversarial weight 1e-3."""
    c = translation_config()
    c.g_features = 32
    c.num_blocks = 4
    c.d_channels = (32, 32, 64, 64)  # strides 1, 2, 1, 2: 28 -> 28 -> 14 -> 14 -> 7
    c.d_dense = 256
    c.content_loss = "mse"  # Eq. 4, pixel-wise MSE on images in [-1, 1]
    c.adversarial_weight = 1e-3  # Eq. 3
    c.baseline = True  # the MSE-only SRResNet, trained beside SRGAN on the same batches
    c.learning_rate = 5e-4
    c.beta1 = 0.5
    c.batch_size = 32
    c.num_steps = 2500  # 1.3 epochs of the 60,000 training images at batch 32
    c.checkpoint_every = 1000
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Ledig et al. 2017, Sec. 3.2 and Fig. 4 (`srgan.PAPER`): 16 residual blocks of 64 features, D of
    64..512 channels in eight layers and 1024 dense units, Adam(1e-4, beta1 0.9), adversarial weight 1e-3
    (Eq. 3), batch 16. Not reproduced: the VGG content loss (here the pixel MSE, their "SRGAN-MSE"), the
    SRResNet pre-training, 96x96 ImageNet crops and the step counts."""
    c = config_lib.apply_overrides(get_config(), {
        "g_features": srgan.PAPER["g_features"], "num_blocks": srgan.PAPER["num_blocks"],
        "d_channels": srgan.PAPER["d_channels"], "d_dense": srgan.PAPER["d_dense"],
        "learning_rate": srgan.PAPER["learning_rate"], "beta1": srgan.PAPER["beta1"],
        "adversarial_weight": srgan.PAPER["adversarial_weight"]}, "srgan_mnist")
    c.batch_size = 16
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny players (8 features, 1 block; D 4-8), batch 8, 16 evaluation images on synthetic digits."""
    c = get_config()
    c.data_dir = "synthetic"
    c.g_features, c.num_blocks, c.d_channels, c.d_dense = 8, 1, (4, 8), 16
    c.batch_size, c.eval_batch_size, c.num_eval_images = 8, 16, 16
    return c


class Experiment(TranslationExperiment):
    name = "srgan_mnist"
    input_shape = (28 // FACTOR, 28 // FACTOR, 1)
    input_note = "7x7 area-averaged low-resolution image"
    method_names = ("srgan", "mse")
    schema = {**TranslationExperiment.schema, "g_features": Range(1, integer=True),
              "num_blocks": Range(0, integer=True), "d_channels": Range(1, integer=True, each=True),
              "d_dense": Range(1, integer=True)}

    def make_input(self, images: np.ndarray) -> np.ndarray:
        """4x area averaging: uint8 [B, 28, 28, 1] -> uint8 [B, 7, 7, 1], the mean of each 4x4 block
        (`skimage.transform.downscale_local_mean`) rounded half to even (`np.rint`).

        Raises:
          ValueError: images not [B, 28, 28, 1].
        """
        x = np.asarray(images)
        if x.ndim != 4 or x.shape[1:] != self.data_shape:
            raise ValueError(f"{self.name}: make_input expects images [B, 28, 28, 1], got shape {x.shape}")
        return np.rint(downscale_local_mean(x.astype(np.float64), (1, FACTOR, FACTOR, 1))).astype(np.uint8)

    def players(self):
        c = self.config
        return (srgan.SRResNet(int(c.g_features), int(c.num_blocks), scale=FACTOR),
                srgan.SRDiscriminator(tuple(c.d_channels), int(c.d_dense)), 0)

    def reference_outputs(self, images: np.ndarray, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """{"bicubic": uint8 [B, 28, 28, 1]}: Pillow's bicubic resize (`Image.BICUBIC`) of each 7x7 input."""
        up = [np.asarray(Image.fromarray(x[..., 0]).resize(self.data_shape[:2][::-1], Image.BICUBIC))
              for x in np.asarray(inputs, np.uint8)]
        return {"bicubic": np.stack(up)[..., None]}


if __name__ == "__main__":
    from gm_jax.cli import main

    main("srgan_mnist")
