"""PixelRNN with Row LSTM layers (van den Oord et al. 2016a, Sec. 3.1) on fixed-binarized MNIST, exact test NLL
in nats.

    python -m experiments.pixelrnn_row_mnist --workdir runs/pixelrnn_row_mnist [--paper]

Trains on the 50,000 training images of `binarized_mnist` (Larochelle & Murray 2011) with one Bernoulli logit
per pixel and reports the exact test -log p(x) = -sum_i log p(x_i | x_<i) (`test_nll_nats`; the paper's Table 4
has Row LSTM 80.54, Diagonal BiLSTM 79.20 and PixelCNN 81.30 nats). The network: 7x7 mask-A conv, Row LSTM
layers (1 x 3 mask-B input-to-state conv, 1-D width-3 state-to-state conv over the previous row, a residual 1x1
conv back to 2h features), two ReLU + 1x1 mask-B output convs. Writes `results.json` and `samples.png`, sampled
with the cached sampler that carries the LSTM states (`--config.sampler=naive` for one network pass per pixel;
both give the same samples for the same key).
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Range
from gm_jax.models import pixelrnn
from gm_jax.recipes.images import PixelRNNExperiment, pixelcnn_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: h = 32 (64 residual channels), 2 Row LSTM layers, 3-wide row convs, 2,000 steps of batch 32
    (the README has its time and test NLL)."""
    c = pixelcnn_config(config_lib.base_config())
    c.features = 32
    c.num_layers = 2
    c.first_kernel = 7
    c.kernel_size = 3
    c.output_features = 64
    c.num_steps = 2000
    c.batch_size = 32
    c.learning_rate = 1e-3
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """van den Oord et al. 2016a (Pixel Recurrent Neural Networks), Table 4 (MNIST: Row LSTM 80.54 nats). The
    paper's Sec. 4 gives its MNIST sizes for the Diagonal BiLSTM only (7 layers, h = 16, and 32 feature maps in
    the ReLU + 1x1 output layers); this uses the same for the Row LSTM (assumed), with k = 3 (Sec. 3.1) and a 7x7
    first mask; batch 16, lr 3e-4 (assumed, as pixelcnn_mnist) and 200,000 steps (the paper states no MNIST
    training length)."""
    return config_lib.apply_overrides(get_config(), {
        "features": 16, "num_layers": 7, "output_features": 32, "batch_size": 16, "num_steps": 200_000,
        "learning_rate": 3e-4}, "pixelrnn_row_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: h = 4, 1 layer, 3x3 first mask, synthetic data."""
    c = get_config()
    c.data_dir = "synthetic"
    c.features, c.num_layers, c.first_kernel, c.output_features = 4, 1, 3, 4
    c.batch_size, c.eval_batch_size = 8, 64
    return c


class Experiment(PixelRNNExperiment):
    name = "pixelrnn_row_mnist"
    schema = {**PixelRNNExperiment.schema, "kernel_size": Range(1, integer=True)}

    def build_model(self, config):
        return pixelrnn.RowLSTMPixelRNN(image_shape=self.data_shape, num_values=2, features=config.features,
                                        num_layers=config.num_layers, first_kernel=config.first_kernel,
                                        kernel_size=config.kernel_size, output_features=config.output_features)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("pixelrnn_row_mnist")
