"""DCGAN on MNIST (Radford et al. 2016), scored by MNIST-FID and MNIST-IS.

    python -m experiments.dcgan_mnist --workdir runs/dcgan_mnist [--config.num_steps=2000]
    python -m experiments.dcgan_mnist --workdir runs/dcgan_plain --config.clusters=0 [--config.pack=4]

By default the DCGAN is self-conditioned (below): both players see the k-means
cluster (one of 20) of the training image, or of the image to be generated.
No digit label is used. `--config.clusters=0` is the plain, unconditional DCGAN.

The players follow the DCGAN rules (`gm_jax.models.gan.DCGANGenerator` /
`DCGANDiscriminator`): strided convolutions in D, transposed convolutions in
G, batch norm in both (not on G's output nor D's input), ReLU in G with a tanh
output, LeakyReLU(0.2) in D, N(0, 0.02) init, Adam(2e-4, beta1 = 0.5) (constant;
`--config.lr_decay=linear` decays it to 0, an addition to the paper), the
non-saturating generator loss. Images are scaled to [-1, 1]; samples are
uint8 NHWC 0..255. Under `parallel=pmap` batch statistics are cross-device
means; sampling uses the running averages (eval mode).

`--config.pack=m` makes D a PacGAN discriminator (Lin et al. 2018): it judges
packs of m examples stacked along the channels, one logit per pack, which
penalises a generator that makes the digits in the wrong proportions.

`--config.clusters=K` makes it a self-conditioned GAN (Liu et al. 2020, "Diverse
Image Generation via Self-Conditioned GANs", Sec. 3): the training images are
partitioned by k-means into K clusters (scikit-learn's `KMeans` on the pixels,
seeded by `config.seed`, once at the start, where the state is first made;
Liu et al. re-cluster D's features during training instead), both players are
conditioned on the cluster id as the cGAN is on the digit, and the sampler draws
the id from the clusters' training frequencies (`label_log_prior` in the state and
the sampler's variables; `gm_jax.load` restores it). `pack` must then be 1.
Within a cluster the images are far more alike than across the whole set, so each
conditional distribution is nearer unimodal, and sampling the cluster from its
frequency keeps the digits in the data's proportions.

At the end it writes to the workdir `results.json` (`mnist_fid`, `mnist_is` of
`num_eval_samples` samples against the training images, the real-data
references and ratios, the class mix of the samples, nearest-neighbour
distances; see `gm_jax.recipes.adversarial.DCGANExperiment.evaluate`),
`samples.png` (8x8 samples), `nearest_neighbours.png` (each sample beside its
closest training image) and `losses.png`. MNIST-FID / MNIST-IS use the
project's MNIST classifier (`gm_jax.evaluation.classifier`), loaded from
`config.classifier_dir` (default `runs/mnist_classifier` under the project
root) and trained once and cached there if missing; they are not Inception numbers.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.recipes.adversarial import DCGANExperiment


def get_config() -> ml_collections.ConfigDict:
    """Default: a self-conditioned DCGAN (20 k-means clusters), G 64-32 / D 32-64-128 channels, z_dim 100,
    batch 64, 10,000 steps. `--config.clusters=0` gives the
    unconditional DCGAN (then `--config.pack=4` for the PacGAN discriminator)."""
    c = config_lib.base_config()
    c.z_dim = 100
    c.g_channels = (64, 32)  # 7x7x64 -> 14x14x32 -> 28x28x1
    c.d_channels = (32, 64, 128)  # 28x28x1 -> 14x14x32 -> 7x7x64 -> 4x4x128
    c.k = 1  # discriminator updates per generator update
    c.pack = 1  # m > 1: PacGAN (Lin et al. 2018), D judges packs of m examples (an addition; unconditional D only)
    c.generator_loss = "non_saturating"  # non_saturating | saturating
    c.learning_rate = 2e-4  # both players
    c.beta1 = 0.5
    c.lr_decay = "none"  # none (DCGAN's constant rate) | linear (to 0 at num_steps)
    c.g_ema_decay = 0.0  # > 0: sample from a moving average of G (Yazici et al. 2019), an addition to the paper
    c.clusters = 20  # K > 1: condition both players on k-means clusters of the images (Liu et al. 2020), an addition
    c.num_steps = 10_000  # 10.7 epochs of the 60,000 training images at batch 64
    c.batch_size = 64
    c.log_every = 100
    c.checkpoint_every = 2500
    c.keep_checkpoints = 4  # MNIST-FID can be checked along training
    c.eval_batch_size = 500
    c.num_eval_samples = 10_000  # samples scored by MNIST-FID / MNIST-IS
    c.classifier_dir = ""  # "" = $GM_JAX_CLASSIFIER_DIR or <project>/runs/mnist_classifier
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """The plain DCGAN with the training settings of Radford et al. 2016, Sec. 4 ("Details of adversarial
    training"): mini-batches of 128, N(0, 0.02) weights, LeakyReLU slope 0.2, Adam with learning rate 2e-4
    and beta1 0.5 (constant), z of 100 dimensions (theirs uniform, ours N(0, I)); no PacGAN, no clusters,
    no moving average. The paper gives no MNIST architecture or step count, so the players' widths and
    `num_steps` are the default's."""
    c = get_config()
    c.clusters, c.pack, c.lr_decay, c.g_ema_decay = 0, 1, "none", 0.0
    c.batch_size = 128
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny players, 4 clusters, batch 8, 32 evaluation samples on synthetic digits (smoke-test classifier)."""
    c = get_config()
    c.data_dir = "synthetic"
    c.z_dim, c.g_channels, c.d_channels, c.clusters = 8, (8, 4), (4, 8), 4
    c.batch_size, c.eval_batch_size, c.num_eval_samples = 8, 16, 32
    return c


class Experiment(DCGANExperiment):
    name = "dcgan_mnist"


if __name__ == "__main__":
    from gm_jax.cli import main

    main("dcgan_mnist")
