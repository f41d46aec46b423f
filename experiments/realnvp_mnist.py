"""RealNVP (Dinh et al. 2017) on dequantized 8-bit MNIST: exact test bits per dimension.

    python -m experiments.realnvp_mnist --workdir runs/realnvp_mnist [--paper] [--config.num_steps=...]

The flow (`gm_jax.models.flows.realnvp`): logit preprocessing of x~ = (x + u) / 256
(Sec. 4.1), then the multi-scale architecture of Sec. 3.6 with `num_scales`
scales: `couplings` checkerboard affine couplings, a squeeze, `couplings`
channel-wise couplings and a split (half of the channels factored out as
latents), the last scale `couplings + 1` checkerboard couplings; s = scale * tanh(.),
conv conditioners (in place of the paper's deep ResNets) and an actnorm with
data-dependent init after each coupling (in place of batch normalisation, so
the density does not depend on the batch). Standard normal base on all
latents. Writes the same `results.json` (`test_bits_per_dim`, `test_nll_nats`,
`reconstruction_max_abs_error`, ...), `samples.png` and `temperature_sweep.png`
as `experiments.glow_mnist`.

Published context: RealNVP 1.06 bits/dim on MNIST (as reported by Grathwohl et
al. 2019, FFJORD Table 2). The default here is a small, cheap model for a 2-core
CPU (19,492 parameters).
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Range
from gm_jax.models import flows
from gm_jax.recipes.images import FLOW_SCHEMA, ImageFlowExperiment, image_flow_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: 2 scales, 2 couplings per stage, conditioner width 32, batch 64, 3000 steps."""
    c = image_flow_config(config_lib.base_config())
    c.num_scales = 2
    c.couplings = 2
    c.hidden = 32
    c.num_steps = 3000
    c.batch_size = 64
    c.learning_rate = 2e-3
    c.warmup_steps = 100
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Dinh et al. 2017 (Density estimation using Real NVP), Sec. 3.6 and 4.1, the CIFAR-10 setting (the paper
    has no MNIST model): logit preprocessing with alpha = 0.05, 3 checkerboard + 3 channel-wise couplings per
    scale (4 checkerboard in the last), one downscaling (2 scales), 64 feature maps, batch 64, Adam lr 1e-3.
    The paper's conditioners are 8 residual blocks; here the conv conditioner's depth stands in
    (`num_layers` = 8). The paper gives no step count (the default's is kept) and no warmup."""
    return config_lib.apply_overrides(get_config(), {
        "preprocess": "logit", "logit_alpha": 0.05, "num_scales": 2, "couplings": 3, "hidden": 64,
        "num_layers": 8, "batch_size": 64, "learning_rate": 1e-3}, "realnvp_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 2 scales of 1 coupling, conditioner width 4, synthetic data."""
    c = get_config()
    c.data_dir = "synthetic"
    c.couplings, c.hidden, c.num_layers = 1, 4, 1
    c.batch_size, c.eval_batch_size, c.init_batch_size = 8, 64, 16
    c.warmup_steps, c.num_recon_images, c.temperatures = 1, 16, (0.0, 1.0)
    return c


class Experiment(ImageFlowExperiment):
    name = "realnvp_mnist"
    schema = {**FLOW_SCHEMA, "num_scales": Range(1, 3, integer=True), "couplings": Range(1, integer=True)}

    def build_flow(self):
        c = self.config  # num_scales <= 3: 28 must be divisible by 2^(num_scales - 1)
        return flows.realnvp(self.data_shape, c.num_scales, c.hidden, c.num_layers, c.preprocess, c.logit_alpha,
                             c.couplings)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("realnvp_mnist")
