"""FFJORD (Grathwohl et al. 2019) on dequantized 8-bit MNIST: test bits per dimension.

    python -m experiments.ffjord_mnist --workdir runs/ffjord_mnist [--paper]

x~ = (x + u) / 256 goes through the discrete flows' logit preprocessing (RealNVP
Sec. 4.1, with its log-determinant) and a squeeze (28x28x1 -> 14x14x4, as each
scale of FFJORD's multiscale flow begins), then one continuous normalising flow
(`gm_jax.models.ffjord`) at that single scale: dz/dt = f(z, t), f a stack of 3x3
convolutions that see t as an extra channel (softplus), on [0, T]. Training
uses Hutchinson's trace estimator (one Gaussian e per image, the same along the
solve) with two fixed Heun steps (4 function evaluations: what a CPU affords, and
batch-independent) and the kinetic-energy and Jacobian-Frobenius regularisers of
Finlay et al. 2020, who train with fixed steps and these penalties so that the
learned dynamics stay simple enough for a few steps to follow them; evaluation and
sampling solve adaptively with Dopri5 at rtol = atol = 1e-5.

At the end it writes to the workdir `results.json`: `test_bits_per_dim` on the
first `num_test_images` test images (one dequantization and one Hutchinson draw
per image: an unbiased estimate of the dequantized log-likelihood), `eval_nfe`
and `sample_nfe` (function evaluations of one adaptive solve of a batch),
`reconstruction_max_abs_error` (|x~ - inverse(forward(x~))| through the
adaptive solves); `samples.png` and `temperature_sweep.png`.

Published context: FFJORD 0.99 bits/dim on MNIST (Grathwohl et al. 2019, Table 2:
multiscale, trained on GPUs for days); a single-scale flow trained for minutes on
a CPU is expected to be far from it.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.models import ffjord
from gm_jax.recipes.cnf import ImageCNFExperiment, cnf_config
from gm_jax.recipes.images import image_flow_config


def get_config() -> ml_collections.ConfigDict:
    """CPU default: squeezed to 14x14x4, convolutions of (32, 32) channels, softplus, T = 0.5; Hutchinson's
    trace with 2 fixed Heun steps and kinetic / Jacobian penalties of 0.01 for training, adaptive Dopri5 (1e-5)
    for evaluation; batch 32, 400 steps; 500 test images."""
    c = cnf_config(image_flow_config(config_lib.base_config()))
    c.squeeze = True
    c.channels = (32, 32)
    c.activation = "softplus"
    c.train_trace, c.eval_trace = "hutchinson", "hutchinson"
    c.train_solver, c.train_num_steps = "heun", 2
    c.kinetic_weight, c.jacobian_weight = 0.01, 0.01  # Finlay et al. 2020 (RNODE): lambda_K = lambda_J = 0.01
    c.logit_alpha = 0.05  # the library's discrete flows' (RealNVP Sec. 4.1); the paper config has FFJORD's 1e-6
    c.num_steps = 400
    c.batch_size = 32
    c.learning_rate = 1e-3
    c.warmup_steps = 100
    c.log_every = 50
    c.checkpoint_every = 500
    c.eval_batch_size = 200
    c.num_test_images = 500
    c.num_recon_images = 200
    c.init_batch_size = 2  # unused (no actnorm); kept for the image-flow recipe
    c.temperatures = (0.0, 0.5, 0.7, 1.0)
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Grathwohl et al. 2019, Appendix B.1 (MNIST): convolutions of 64 filters with softplus, Hutchinson's
    estimator, Dopri5 at rtol = atol = 1e-5 for training and evaluation, Adam 1e-3, batch 200
    (`ffjord.PAPER_MNIST`), no regularisers. Their flow is multiscale (2 scale blocks of 2 CNFs each); this
    one has a single (squeezed) scale of 3 convolutions, which is the difference. Step count: the default's."""
    p = ffjord.PAPER_MNIST
    c = get_config()
    c.kinetic_weight = c.jacobian_weight = 0.0
    c.channels, c.activation, c.train_trace, c.eval_trace = p["channels"], p["activation"], p["trace"], p["trace"]
    c.train_solver, c.train_rtol, c.train_atol, c.train_num_steps = p["solver"], p["rtol"], p["atol"], 0
    c.learning_rate, c.batch_size, c.time_length = p["learning_rate"], p["batch_size"], p["time_length"]
    c.logit_alpha = p["logit_alpha"]
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: one convolution of 4 channels, 2 fixed Euler steps for training, 2 Euler steps for evaluation."""
    c = get_config()
    c.data_dir = "synthetic"
    c.channels = (4,)
    c.train_solver, c.train_num_steps = "euler", 2
    c.eval_solver, c.eval_num_steps = "euler", 2  # fixed steps compile fastest (adaptive: tests/test_ffjord.py)
    c.batch_size, c.eval_batch_size, c.num_test_images, c.num_recon_images = 8, 16, 16, 8
    c.warmup_steps, c.temperatures = 1, (0.0, 1.0)
    return c


class Experiment(ImageCNFExperiment):
    name = "ffjord_mnist"


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ffjord_mnist")
