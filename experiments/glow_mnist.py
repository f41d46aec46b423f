"""Glow (Kingma & Dhariwal 2018) on dequantized 8-bit MNIST: exact test bits per dimension.

    python -m experiments.glow_mnist --workdir runs/glow_mnist [--paper] [--config.num_steps=...]

The flow (`gm_jax.models.flows.glow`): logit preprocessing of x~ = (x + u) / 256
(RealNVP Sec. 4.1; `--config.preprocess=center` for Glow's x~ - 0.5), then a
multi-scale Glow with `num_levels` levels: squeeze, `steps_per_level` steps of
[actnorm (data-dependent init), LU-decomposed invertible 1x1 conv, affine
coupling with its sigmoid scale floored at `min_scale`], split (28x28x1 -> 14x14x4 -> half factored out -> 7x7x8), with a
standard normal base on all factored-out latents. Trained by maximum likelihood
of the uniformly dequantized data (Adam, linear warmup then cosine decay,
gradient clipping). At the end it writes to the workdir:

* `results.json`: `test_bits_per_dim` = (-log p(x~) + D ln 256) / (D ln 2) on the
  10,000 MNIST test images (one dequantization draw per image), `test_nll_nats`
  (the same in nats per image), `reconstruction_max_abs_error` = max |f^-1(f(x~)) - x~|
  over `num_recon_images` real test images (float32), `num_params`, ...;
* `samples.png`: 8x8 samples at `sample_temperature`;
* `temperature_sweep.png`: the same 10 latents scaled by each temperature in `temperatures`.

Published context: Glow 1.05 bits/dim on MNIST (as reported by Grathwohl et al.
2019, FFJORD Table 2), with a far larger model trained for days on GPUs. The
coupling-scale floor `min_scale` is what keeps the float32 inverse accurate on
a trained model (see `flows.AffineCoupling`; measurements in README).
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Range
from gm_jax.models import flows
from gm_jax.recipes.images import FLOW_SCHEMA, ImageFlowExperiment, image_flow_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: 2 levels x 6 steps, conditioner width 64, batch 64, 8000 steps."""
    c = image_flow_config(config_lib.base_config())
    c.num_levels = 2
    c.steps_per_level = 6
    c.lu = True  # LU-decomposed 1x1 convolutions (False: plain W with slogdet)
    c.min_scale = 0.25  # floor of the couplings' sigmoid scale (0: Glow's code); bounds the inverse's error growth
    c.hidden = 64
    c.num_steps = 8000
    c.batch_size = 64
    c.learning_rate = 2e-3
    c.warmup_steps = 100
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Kingma & Dhariwal 2018 (Glow), Sec. 3 and the CIFAR-10 setting of Sec. 5 (the paper has no MNIST
    model): K = 32 steps per level, conditioner NN() of 3 convolutions with 512 hidden channels (`num_layers`
    = 2 hidden layers), LU-decomposed 1x1 convolutions, affine couplings with Glow's unfloored sigmoid scale
    (min_scale 0), x - 0.5 preprocessing, Adam lr 1e-3. The paper uses L = 3 levels on 32x32 inputs; 28x28
    MNIST allows at most 2 (28 / 2^2 = 7), so L = 2 here. Batch size and step count are the default's
    (the paper's per-dataset minibatch sizes are for multi-GPU runs; no MNIST training length is given)."""
    return config_lib.apply_overrides(get_config(), {
        "num_levels": 2, "steps_per_level": 32, "hidden": 512, "num_layers": 2, "lu": True, "min_scale": 0.0,
        "preprocess": "center", "learning_rate": 1e-3}, "glow_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 2 levels x 1 step, conditioner width 4, synthetic data."""
    c = get_config()
    c.data_dir = "synthetic"
    c.steps_per_level, c.hidden, c.num_layers = 1, 4, 1
    c.batch_size, c.eval_batch_size, c.init_batch_size = 8, 64, 16
    c.warmup_steps, c.num_recon_images, c.temperatures = 1, 16, (0.0, 1.0)
    return c


class Experiment(ImageFlowExperiment):
    name = "glow_mnist"
    schema = {**FLOW_SCHEMA, "num_levels": Range(1, 2, integer=True), "steps_per_level": Range(1, integer=True),
              "min_scale": Range(0.0, 1.0, hi_open=True)}

    def build_flow(self):
        c = self.config  # num_levels <= 2: 28 must be divisible by 2^num_levels
        return flows.glow(self.data_shape, c.num_levels, c.steps_per_level, c.hidden, c.lu, c.preprocess,
                          c.logit_alpha, c.num_layers, c.min_scale)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("glow_mnist")
