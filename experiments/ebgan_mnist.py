"""The energy-based GAN on MNIST (Zhao, Mathieu & LeCun 2017), scored by MNIST-FID and MNIST-IS.

    python -m experiments.ebgan_mnist --workdir runs/ebgan_mnist [--config.pt_weight=0] [--config.margin=0.5]

The discriminator is an autoencoder whose energy is its reconstruction error,
D(x) = mean over pixels of (Dec(Enc(x)) - x)^2 for images in [-1, 1]
(`gm_jax.models.ebgan.EBGANDiscriminator`; the paper writes a norm,
||Dec(Enc(x)) - x||, Sec. 2.3). D minimises the margin loss
D(x) + [m - D(G(z))]^+ (Eq. 1): data get low energy, fakes are pushed up to the
margin m. The generator (`gan.DCGANGenerator`, as in `dcgan_mnist`) minimises
D(G(z)) (Eq. 2) plus `pt_weight` times the pulling-away term (EBGAN-PT,
Sec. 2.4, Eq. 6), the mean squared cosine similarity of the encoder's codes of
distinct fakes in a batch, which discourages making the same image twice.
`--config.pt_weight=0` is the plain EBGAN.

The encoder follows the DCGAN discriminator's rules (4x4 stride-2
convolutions, LeakyReLU(0.2), batch norm after the first layer), a dense code
of `code_dim` features, and the decoder the DCGAN generator's (dense
projection, transposed convolutions, batch norm, ReLU; linear output). Under
`parallel=pmap` batch statistics are cross-device means and the pulling-away
term is taken over each device's share of the batch.

At the end it writes to the workdir what `dcgan_mnist` writes (`results.json`
with `mnist_fid`, `mnist_is`, `class_shares`, ...; `samples.png`,
`nearest_neighbours.png`, `losses.png`, `interpolations.png`; see
`gm_jax.recipes.adversarial.DCGANExperiment.evaluate`) and `energies.png`
(the mean energies of data and fakes and the pulling-away term along
training). MNIST-FID / MNIST-IS use the project's MNIST classifier
(`config.classifier_dir`), not Inception-v3.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.recipes.adversarial import EBGANExperiment


def get_config() -> ml_collections.ConfigDict:
    """Default: EBGAN-PT (pulling-away weight 0.1), margin 1 (per-pixel squared error), G 64-32 / encoder 32-64
    with a 64-feature code, Adam(2e-4, beta1 0.5) for both players, batch 64, 8,000 steps."""
    c = config_lib.base_config()
    c.z_dim = 100
    c.g_channels = (64, 32)  # G: 7x7x64 -> 14x14x32 -> 28x28x1
    c.d_channels = (32, 64)  # D's encoder: 28x28x1 -> 14x14x32 -> 7x7x64 -> code; the decoder mirrors it
    c.code_dim = 64  # the encoder's output S, where the pulling-away term acts
    c.margin = 1.0  # m of Eq. 1, in units of D(x) = mean squared error per pixel of images in [-1, 1]
    c.pt_weight = 0.1  # EBGAN-PT (Sec. 2.4); 0 = plain EBGAN
    c.k = 1  # discriminator updates per generator update
    c.pack = 1  # (DCGAN field) must be 1: the energy is per example
    c.generator_loss = "non_saturating"  # (DCGAN field) unused: the generator's loss is D(G(z)) (+ PT)
    c.learning_rate = 2e-4  # the generator's
    c.d_learning_rate = 2e-4  # the discriminator's
    c.beta1 = 0.5
    c.lr_decay = "none"  # none | linear (to 0 at num_steps)
    c.g_ema_decay = 0.0  # > 0: sample from a moving average of G (an addition to the paper)
    c.clusters = 0  # (DCGAN field) must be 0: unconditional
    c.num_steps = 8_000  # 8.5 epochs of the 60,000 training images at batch 64
    c.batch_size = 64
    c.log_every = 100
    c.checkpoint_every = 2000
    c.keep_checkpoints = 4
    c.eval_batch_size = 500
    c.num_eval_samples = 10_000  # samples scored by MNIST-FID / MNIST-IS
    c.classifier_dir = ""  # "" = $GM_JAX_CLASSIFIER_DIR or <project>/runs/mnist_classifier
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """EBGAN-PT of Zhao, Mathieu & LeCun 2017: the autoencoder discriminator with the reconstruction energy
    (Sec. 2.3), the margin loss (Eq. 1), the generator loss (Eq. 2) and the pulling-away term on the encoder's
    codes of the fakes with weight 0.1 (Sec. 2.4, Eq. 6; the weight of the paper's EBGAN-PT models). The
    paper's MNIST study (Sec. 4.1) is a grid search over fully connected players, depths, widths, optimizers
    and learning rates rather than one setting, and its margins are in the units of its own energy, so the
    players, the margin (1, per-pixel squared error), Adam(2e-4, beta1 0.5) and the batch of 64 are the
    default's."""
    c = get_config()
    c.pt_weight = 0.1
    c.lr_decay, c.g_ema_decay = "none", 0.0
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny players (G 8-4, encoder 4-8, 4-feature code), batch 8, 32 evaluation samples on synthetic digits."""
    c = get_config()
    c.data_dir = "synthetic"
    c.z_dim, c.g_channels, c.d_channels, c.code_dim = 8, (8, 4), (4, 8), 4
    c.batch_size, c.eval_batch_size, c.num_eval_samples = 8, 16, 32
    return c


class Experiment(EBGANExperiment):
    name = "ebgan_mnist"


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ebgan_mnist")
