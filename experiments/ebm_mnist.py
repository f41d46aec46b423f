"""Energy-based model (Du & Mordatch 2019) on MNIST: a convolutional energy, Langevin samples, MNIST-FID.

    python -m experiments.ebm_mnist --workdir runs/ebm_mnist [--config.num_steps=5000]

Images are the 8-bit `mnist` training images scaled to [0, 1] (float). The
energy is `gm_jax.models.ebm.EnergyCNN`; training is Du & Mordatch's
Algorithm 1 (`gm_jax.recipes.energy.ImageEBMExperiment`): Langevin negatives from a
replay buffer (5% restarts from uniform noise), contrastive divergence with
the energy-magnitude regulariser. The Langevin settings follow the paper's
image setting: a large gradient step and a small noise ("temperature"):
eps = 20 (so x moves by 10 grad E per step) and noise_scale = 0.001 (noise
std 0.001 sqrt(20) = 0.0045 per step), every iterate clipped to [0, 1].

`Model.sample` runs `sample_steps` Langevin steps from uniform noise and
returns uint8 images [N, 28, 28, 1] (0..255, the data's own form).

Writes `results.json`: `mnist_fid` / `mnist_is` of `num_eval_samples`
samples (the project's MNIST classifier features, as for the GANs; not
Inception numbers) with the real-data references; `samples.png` (64 samples
from noise), `buffer.png` (64 replay-buffer entries: the long-run chains of
training) and `losses.png`.

The default is sized for a 2-core CPU (small energy net, 600 updates of 10
Langevin steps); Du & Mordatch train a ResNet energy with 60 steps per update
for far longer. With the default, chains from uniform noise collapse onto a few
shapes, so it is a working demonstration of the method, not a good image model
(see the README's results table).
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Range
from gm_jax.recipes.energy import EBMExperiment, ImageEBMExperiment

def get_config() -> ml_collections.ConfigDict:
    """Default (CPU-sized): EnergyCNN (16, 32, 64), batch 64, 10 Langevin steps
    (eps 20, noise 0.001) per update, 600 updates; samples by 200 steps from noise."""
    c = config_lib.base_config()
    c.channels = (16, 32, 64)
    c.step_size = 20.0
    c.noise_scale = 0.001
    c.langevin_steps = 10
    c.sample_steps = 200
    c.buffer_size = 2000  # small for the short CPU run: each slot is revisited ~20 times
    c.reinit_prob = 0.05
    c.alpha = 1.0  # energy regulariser (Du & Mordatch use 1)
    c.learning_rate = 3e-4
    c.beta1 = 0.0
    c.beta2 = 0.999
    c.grad_clip = 1.0
    c.num_steps = 600
    c.batch_size = 64
    c.log_every = 50
    c.checkpoint_every = 600
    c.num_eval_samples = 1000
    c.eval_batch_size = 500
    c.classifier_dir = ""  # "" = $GM_JAX_CLASSIFIER_DIR or <project>/runs/mnist_classifier
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Du & Mordatch 2019 ("Implicit Generation and Generalization in Energy-Based Models"), the training
    settings of their image models (Sec. 3.3-3.4 and App. A, as we read them): 60 Langevin steps per update
    of step 10 on the energy gradient (eps = 20 here, x moves by eps / 2 grad E) with noise std 0.005
    (noise_scale 0.005 / sqrt(20)), a replay buffer of 10,000 with 5% restarts, regulariser alpha = 1,
    Adam(1e-4, beta1 = 0, beta2 = 0.999), batch 128. The paper's ResNet energy with spectral norm is not
    reproduced (the small `EnergyCNN` of the default is kept), and it has no MNIST table: steps and
    sampling chains are the default's."""
    c = get_config()
    c.langevin_steps, c.noise_scale, c.buffer_size = 60, 0.005 / 20 ** 0.5, 10_000
    c.learning_rate, c.batch_size = 1e-4, 128
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: a 4-channel energy, 2 Langevin steps, batch 8, 16 evaluation samples (smoke-test classifier)."""
    c = get_config()
    c.data_dir = "synthetic"
    c.channels, c.langevin_steps, c.sample_steps, c.buffer_size = (4, 4, 4), 2, 2, 16
    c.batch_size, c.num_eval_samples, c.eval_batch_size = 8, 16, 8
    return c


class Experiment(ImageEBMExperiment):
    name = "ebm_mnist"
    schema = {**EBMExperiment.schema, "channels": Range(1, integer=True, each=True),
              "num_eval_samples": Range(2, integer=True)}


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ebm_mnist")
