"""Gated PixelCNN (van den Oord et al. 2016b) on binarized MNIST, exact test NLL in nats.

    python -m experiments.gated_pixelcnn_mnist --workdir runs/gated_pixelcnn_mnist [--paper]
    python -m experiments.gated_pixelcnn_mnist --workdir runs/gated_cond --config.conditional=True

Default: unconditional, on the fixed binarization `binarized_mnist` (50,000
training / 10,000 test images, Larochelle & Murray 2011): `test_nll_nats` is
the exact -log p(x) on its test set. `binarized_mnist` has no labels, so the
class-conditional variant (`--config.conditional=True`) trains on 8-bit
`mnist` binarized dynamically (a fresh Bernoulli(x/255) draw per pixel each
time an image is seen) with the digit labels as conditioning (2016b, Sec. 2.3,
Eq. 4); its `test_nll_nats` is the exact marginal -log (1/10) sum_y p(x | y) on
one dynamic binarization of the mnist test set (not comparable with the
fixed-binarization figures), and `test_nll_given_label_nats` is -log p(x | y).

Completion of the bottom half from the top (`completion_study`) needs a model
whose last row sees the kept rows: `rows_above` is 15 for the default 6 layers
(the bottom row sees rows 12-27), 27 with `--config.num_layers=12`.

Writes `results.json` and `samples.png` (8x8; class-conditional rows cycle
through the digits 0-9), sampled with the cached fast sampler
(`--config.sampler=naive` for the naive one, or per call
`Model.sample(key, n, method="naive")`).
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Range
from gm_jax.models import pixelcnn
from gm_jax.recipes.images import PixelCNNExperiment, pixelcnn_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: F = 32, 6 gated layers, 3x5 vertical / 1x3 horizontal kernels, 2,000 steps of batch 32
    (64,000 images, 1.3 epochs)."""
    c = pixelcnn_config(config_lib.base_config())
    c.features = 32
    c.num_layers = 6
    c.kernel_size = 5
    c.output_features = 64
    c.conditional = False  # True: dynamically binarized 8-bit mnist with labels
    c.num_steps = 2000
    c.batch_size = 32
    c.learning_rate = 1e-3
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """van den Oord et al. 2016b (Conditional Image Generation with PixelCNN Decoders), Sec. 3: the paper
    trains 20 gated layers of 384 features on ImageNet (Sec. 3.2) and reports no MNIST model, so this is a
    paper-scale MNIST model in its spirit: 15 gated layers of 128 features, 7x7 receptive kernels, 256-wide
    output layer, batch 32, lr 3e-4, 100,000 steps (the context figures are 2016a's Table 4: PixelCNN 81.30,
    Diagonal BiLSTM 79.20 nats)."""
    return config_lib.apply_overrides(get_config(), {
        "features": 128, "num_layers": 15, "kernel_size": 7, "output_features": 256, "batch_size": 32,
        "num_steps": 100_000, "learning_rate": 3e-4}, "gated_pixelcnn_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 4 features, 1 gated layer, 3x3 kernels, synthetic data."""
    c = get_config()
    c.data_dir = "synthetic"
    c.features, c.num_layers, c.kernel_size, c.output_features = 4, 1, 3, 4
    c.batch_size, c.eval_batch_size = 8, 64
    return c


class Experiment(PixelCNNExperiment):
    name = "gated_pixelcnn_mnist"
    schema = {**PixelCNNExperiment.schema, "kernel_size": Range(1, integer=True)}

    def build_model(self, config):
        return pixelcnn.GatedPixelCNN(image_shape=self.data_shape, num_values=2, features=config.features,
                                      num_layers=config.num_layers, kernel_size=config.kernel_size,
                                      num_classes=10 if config.conditional else 0,
                                      output_features=config.output_features)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("gated_pixelcnn_mnist")
