"""Energy-based model on MNIST: a convolutional energy sampled by short-run Langevin chains, MNIST-FID.

    python -m experiments.ebm_mnist --workdir runs/ebm_mnist [--config.num_steps=400]

Images are the 8-bit `mnist` training images scaled to [0, 1] (float). The
energy is `gm_jax.models.ebm.EnergyCNN`; the update is contrastive divergence
(`gm_jax.recipes.energy.ImageEBMExperiment`) with negatives drawn one of two
ways (`config.negatives`):

* `"short_run"` (the default; Nijkamp et al. 2019, "Learning Non-Convergent
  Non-Persistent Short-Run MCMC Toward Energy-Based Model"): every negative is
  K = `langevin_steps` Langevin steps from a fresh draw of a fixed initial
  distribution p0, and `Model.sample` runs the same K steps from p0, so samples
  come from the very process training matched to the data. p0
  (`config.init`) is uniform noise (`"uniform"`, as in the paper) or, by
  default, `"pca_gmm"`: a full-covariance Gaussian mixture of the images' PCA
  coordinates (fitted by EM once, the run's data setup), decoded and clipped to
  [0, 1], so the chains start from blurred digits of every class and the energy
  only has to sharpen them (the short-run sampler of a base model, as in
  cooperative learning, Xie et al. 2018). Langevin step and noise in the
  range of Nijkamp et al.'s: x moves by grad E per step (eps = 2) with noise
  std 0.01 (noise_scale 0.01 / sqrt 2), and no energy regulariser, as theirs;
  K = 20, 400 updates and Adam(2e-4, beta1 0.9) are sized for a 2-core CPU.
* `"replay"` (Du & Mordatch 2019, Algorithm 1; `get_paper_config()`): Langevin
  negatives from a replay buffer with 5% restarts from p0 and the
  energy-magnitude regulariser; samples are long chains from p0, which the
  buffer's chains need not match.

`Model.sample` returns uint8 images [N, 28, 28, 1] (0..255, the data's own
form); `Experiment.complete(params, key, x, mask)` inpaints by Langevin on the
missing pixels only.

Writes `results.json`: `mnist_fid` / `mnist_is` of `num_eval_samples`
samples (the project's MNIST classifier features, as for the GANs; not
Inception numbers) with the real-data references, `class_shares` (the
classifier's digit shares of the samples), `initial_mnist_fid` (p0 alone);
`samples.png` (64 samples), `buffer.png` (64 buffer entries: the latest
negatives, or the replay chains) and `losses.png`.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.recipes.energy import EBMExperiment, ImageEBMExperiment

def get_config() -> ml_collections.ConfigDict:
    """Default (CPU-sized): short-run Langevin from a PCA-GMM p0, EnergyCNN (16, 32, 64), batch 64,
    20 Langevin steps (eps 2, noise std 0.01) per update and per sample, 400 updates."""
    c = config_lib.base_config()
    c.negatives = "short_run"  # short_run (Nijkamp et al. 2019) | replay (Du & Mordatch 2019)
    c.init = "pca_gmm"  # p0 of the chains: pca_gmm (a GMM of PCA coordinates, decoded) | uniform
    c.init_pca_dim = 30
    c.init_components = 20
    c.init_em_iters = 50
    c.channels = (16, 32, 64)
    c.step_size = 2.0  # x moves by (eps / 2) grad E = grad E per step
    c.noise_scale = 0.01 / 2**0.5  # noise std noise_scale * sqrt(eps) = 0.01 per step
    c.langevin_steps = 20  # per update (short_run: from p0; replay: from the buffer)
    c.sample_steps = 20  # Model.sample, from p0 (short_run: = langevin_steps, the trained process)
    c.buffer_size = 2000  # replay only (short_run keeps the latest negatives there, for buffer.png)
    c.reinit_prob = 0.05  # replay only
    c.alpha = 0.0  # energy-magnitude regulariser (Du & Mordatch use 1; Nijkamp et al. none)
    c.learning_rate = 2e-4
    c.beta1 = 0.9
    c.beta2 = 0.999
    c.grad_clip = 1.0
    c.num_steps = 400
    c.batch_size = 64
    c.log_every = 50
    c.checkpoint_every = 400
    c.num_eval_samples = 1000
    c.eval_batch_size = 500
    c.classifier_dir = ""  # "" = $GM_JAX_CLASSIFIER_DIR or <project>/runs/mnist_classifier
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Du & Mordatch 2019 ("Implicit Generation and Generalization in Energy-Based Models"), the training
    settings of their image models (Sec. 3.3-3.4 and App. A, as we read them): a replay buffer of 10,000
    with 5% restarts from uniform noise, 60 Langevin steps per update of step 10 on the energy gradient
    (eps = 20 here, x moves by eps / 2 grad E) with noise std 0.005 (noise_scale 0.005 / sqrt(20)),
    regulariser alpha = 1, Adam(1e-4, beta1 = 0, beta2 = 0.999), batch 128. The paper's ResNet energy
    with spectral norm is not reproduced (the small `EnergyCNN` of the default is kept), and it has no
    MNIST table: 600 updates and samples by 200 steps from uniform noise are ours."""
    c = get_config()
    c.negatives, c.init, c.alpha, c.beta1 = "replay", "uniform", 1.0, 0.0
    c.step_size, c.noise_scale, c.langevin_steps, c.sample_steps = 20.0, 0.005 / 20**0.5, 60, 200
    c.buffer_size, c.learning_rate, c.batch_size = 10_000, 1e-4, 128
    c.num_steps, c.checkpoint_every = 600, 600
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: a 4-channel energy, 2 Langevin steps, batch 8, 16 evaluation samples (smoke-test classifier),
    p0 a 2-component GMM of 4 PCA coordinates fitted by 3 EM iterations."""
    c = get_config()
    c.data_dir = "synthetic"
    c.init_pca_dim, c.init_components, c.init_em_iters = 4, 2, 3
    c.channels, c.langevin_steps, c.sample_steps, c.buffer_size = (4, 4, 4), 2, 2, 16
    c.batch_size, c.num_eval_samples, c.eval_batch_size = 8, 16, 8
    return c


class Experiment(ImageEBMExperiment):
    name = "ebm_mnist"
    schema = {**EBMExperiment.schema, "channels": Range(1, integer=True, each=True),
              "num_eval_samples": Range(2, integer=True), "init": Choice("uniform", "pca_gmm"),
              "init_pca_dim": Range(1, 784, integer=True), "init_components": Range(1, integer=True),
              "init_em_iters": Range(1, integer=True)}


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ebm_mnist")
