"""PixelRNN with Diagonal BiLSTM layers (van den Oord et al. 2016a, Sec. 3.2) on fixed-binarized MNIST, exact
test NLL in nats.

    python -m experiments.pixelrnn_diag_mnist --workdir runs/pixelrnn_diag_mnist [--paper]

Trains on the 50,000 training images of `binarized_mnist` (Larochelle & Murray 2011) with one Bernoulli logit
per pixel and reports the exact test -log p(x) = -sum_i log p(x_i | x_<i) (`test_nll_nats`; the paper's Table 4
has Diagonal BiLSTM 79.20 (7 layers, h = 16), Row LSTM 80.54 and PixelCNN 81.30 nats). The network: 7x7 mask-A
conv, Diagonal BiLSTM layers (skewed map, 1x1 mask-B input-to-state conv, 2x1 state-to-state conv along the
diagonals, the right-to-left direction shifted down one row, a residual 1x1 conv back to 2h features), two
ReLU + 1x1 mask-B output convs. Writes `results.json` and `samples.png`, sampled with the cached sampler that
carries the LSTM states (`--config.sampler=naive` for one network pass per pixel; the same samples).
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.models import pixelrnn
from gm_jax.recipes.images import PixelRNNExperiment, pixelcnn_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: h = 16 (32 residual channels), 2 Diagonal BiLSTM layers, 5,000 steps of batch 32 (the README has
    its time and test NLL)."""
    c = pixelcnn_config(config_lib.base_config())
    c.features = 16
    c.num_layers = 2
    c.first_kernel = 7
    c.output_features = 32
    c.num_steps = 5000
    c.batch_size = 32
    c.learning_rate = 1e-3
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """van den Oord et al. 2016a (Pixel Recurrent Neural Networks), Sec. 4 and Table 4 (MNIST: Diagonal
    BiLSTM, 7 layers, h = 16: 79.20 nats), a 7x7 first mask and 32 feature maps in the ReLU + 1x1 output layers
    (Sec. 4); batch 16, lr 3e-4 and the 200,000 steps are assumed (the paper states none of them for MNIST)."""
    return config_lib.apply_overrides(get_config(), {
        "features": 16, "num_layers": 7, "output_features": 32, "batch_size": 16, "num_steps": 200_000,
        "learning_rate": 3e-4}, "pixelrnn_diag_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: h = 4, 1 layer, 3x3 first mask, synthetic data."""
    c = get_config()
    c.data_dir = "synthetic"
    c.features, c.num_layers, c.first_kernel, c.output_features = 4, 1, 3, 4
    c.batch_size, c.eval_batch_size = 8, 64
    return c


class Experiment(PixelRNNExperiment):
    name = "pixelrnn_diag_mnist"

    def build_model(self, config):
        return pixelrnn.DiagonalBiLSTMPixelRNN(image_shape=self.data_shape, num_values=2, features=config.features,
                                               num_layers=config.num_layers, first_kernel=config.first_kernel,
                                               output_features=config.output_features)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("pixelrnn_diag_mnist")
