"""PixelCNN (van den Oord et al. 2016a) on fixed-binarized MNIST, exact test NLL in nats.

    python -m experiments.pixelcnn_mnist --workdir runs/pixelcnn_mnist [--paper]

Trains on the 50,000 training images of `binarized_mnist` (the fixed
binarization of Larochelle & Murray 2011) with a Bernoulli likelihood per pixel
(a 2-way softmax) and reports the exact test negative log-likelihood
-log p(x) = -sum_i log p(x_i | x_<i) averaged over the 10,000 test images.
Writes `results.json` (`test_nll_nats`, `test_bits_per_dim`, `train_nll_nats`
on the first 10,000 training images, ...) and `samples.png` (8x8 grid of
samples from the cached sampler; `--config.sampler=naive` for the naive one, or
per call `Model.sample(key, n, method="naive")`).
`--paper` starts from the published size (`get_paper_config()`, an
accelerator run); the default is sized for a 2-core CPU.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Range
from gm_jax.models import pixelcnn
from gm_jax.recipes.images import PixelCNNExperiment, pixelcnn_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: PixelCNN with 32/64-channel residual blocks, 5 blocks, sized for a 2-core CPU."""
    c = pixelcnn_config(config_lib.base_config())
    c.features = 32
    c.num_layers = 5
    c.first_kernel = 7
    c.output_features = 64
    c.num_steps = 3000
    c.batch_size = 32
    c.learning_rate = 1e-3
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """van den Oord et al. 2016a (Pixel Recurrent Neural Networks), Sec. 3.4 and Table 4 (MNIST: PixelCNN
    81.30 nats): h = 64 i.e. 128 residual channels (`features` = h), 15 residual blocks, 7x7 first mask,
    256-way output layers; batch 16, lr 3e-4 (the paper's MNIST training length is not stated; 200,000 steps)."""
    return config_lib.apply_overrides(get_config(), {
        "features": 64, "num_layers": 15, "output_features": 256, "batch_size": 16, "num_steps": 200_000,
        "learning_rate": 3e-4}, "pixelcnn_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 4 features, 1 residual block, synthetic data."""
    c = get_config()
    c.data_dir = "synthetic"
    c.features, c.num_layers, c.first_kernel, c.output_features = 4, 1, 3, 4
    c.batch_size, c.eval_batch_size = 8, 64
    return c


class Experiment(PixelCNNExperiment):
    name = "pixelcnn_mnist"
    schema = {**PixelCNNExperiment.schema, "first_kernel": Range(1, integer=True)}

    def build_model(self, config):
        return pixelcnn.PixelCNN(image_shape=self.data_shape, num_values=2, features=config.features,
                                 num_layers=config.num_layers, first_kernel=config.first_kernel,
                                 output_features=config.output_features)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("pixelcnn_mnist")
