"""PixelCNN++ (Salimans et al. 2017) on 8-bit MNIST, test bits per dimension.

    python -m experiments.pixelcnn_pp_mnist --workdir runs/pixelcnn_pp_mnist [--paper]

Trains on the 60,000 8-bit training images of `mnist` (values 0-255) with the
discretized logistic mixture likelihood and reports the exact test negative
log-likelihood: `test_nll_nats` per image and `test_bits_per_dim` =
nats / (784 ln 2). Discretization: the likelihood is a probability mass over
the 256 integer values of each pixel (Eq. 2, the bins of width 2/255 on
[-1, 1] with open-ended edge bins), so it is a discrete likelihood of the 8-bit
data: no dequantization noise and no -log(256) offset are involved, and
bits/dim are directly comparable with discrete models (e.g. the 256-way
softmax of PixelCNN). Writes `results.json` and `samples.png` (8x8, the cached
ancestral sampler of Ramachandran et al. 2017; `--config.sampler=naive` runs one
full network pass per pixel instead, with the same samples for the same key). Published context: PixelCNN++ 2.92 bits/dim on CIFAR-10
(Table 1); there is no published MNIST figure in the paper. `--paper` starts
from the paper's CIFAR-10 size (an accelerator run); the default is a small
model for a 2-core CPU.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.distributions import nats_to_bits
from gm_jax.evaluation import likelihood
from gm_jax.models import pixelcnn_pp
from gm_jax.recipes.images import ImageLikelihoodExperiment


def get_config() -> ml_collections.ConfigDict:
    """CPU default: 32 filters, 1 block per resolution, 5 mixtures, 1,600 steps of batch 32 (about one epoch,
    sized for 30 minutes on 2 cores), no dropout: a model this small trained this briefly underfits, and the
    paper's dropout 0.5 (against CIFAR-10 overfitting; `get_paper_config`) would only slow it."""
    c = config_lib.base_config()
    c.features = 32
    c.num_resnet = 1
    c.num_levels = 3  # resolutions (28, 14, 7), as the paper's three
    c.num_mixtures = 5
    c.dropout = 0.0
    c.lr_decay = 1.0  # per-step multiplicative learning-rate decay
    c.grid_samples = 64  # images drawn for samples.png
    c.sampler = "cached"  # cached | naive (the same samples for the same key)
    c.num_steps = 1600
    c.batch_size = 32
    c.learning_rate = 1e-3
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Salimans et al. 2017 (PixelCNN++), Sec. 3 and the CIFAR-10 model of Sec. 4: 160 filters, 5 ResNet
    blocks per resolution, a mixture of 10 logistics, dropout 0.5, Adam lr 1e-3 decayed by 0.999995 per step,
    batch 64 (500,000 steps; the paper gives no MNIST model)."""
    return config_lib.apply_overrides(get_config(), {
        "features": 160, "num_resnet": 5, "num_mixtures": 10, "dropout": 0.5, "batch_size": 64,
        "num_steps": 500_000, "learning_rate": 1e-3, "lr_decay": 0.999995}, "pixelcnn_pp_mnist")


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 4 filters, 2 mixtures, one resolution, synthetic data."""
    c = get_config()
    c.data_dir = "synthetic"
    c.features, c.num_mixtures, c.grid_samples = 4, 2, 4
    c.dropout = 0.5  # the paper's: the tests exercise the dropout path
    c.num_levels = 1  # one resolution: a third of the layers to compile (the levels: tests/test_pixelcnn.py)
    c.batch_size, c.eval_batch_size = 4, 64
    return c


class Experiment(ImageLikelihoodExperiment):
    name = "pixelcnn_pp_mnist"
    sample_methods = ("cached", "naive")
    data_kind = "uint8"
    likelihood_note = {"discretization": likelihood.DISCRETIZED_LOGISTIC}
    schema = {"sampler": Choice("cached", "naive"), "features": Range(1, integer=True),
              "num_resnet": Range(1, integer=True),
              "num_mixtures": Range(1, integer=True), "dropout": Range(0.0, 1.0, hi_open=True),
              "lr_decay": Range(0.0, 1.0, lo_open=True), "grid_samples": Range(1, integer=True),
              "num_levels": Range(1, 3, integer=True)}

    @property
    def num_grid_samples(self) -> int:
        return self.config.grid_samples

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = pixelcnn_pp.PixelCNNPP(image_shape=self.data_shape, features=config.features,
                                            num_resnet=config.num_resnet, num_mixtures=config.num_mixtures,
                                            dropout=config.dropout, num_levels=config.num_levels)

    def optimizer(self):
        return optax.adam(optax.exponential_decay(self.config.learning_rate, 1, self.config.lr_decay))

    def init_params(self, key):
        return self.model.init(key, jnp.zeros((1, *self.data_shape), jnp.int32))["params"]

    def loss_fn(self, params, batch, keys):
        """Negative log-likelihood with dropout, nats per image (dropout noise per example from `keys`)."""
        x = jnp.asarray(batch["image"], jnp.int32)
        lp = jax.vmap(lambda xi, k: pixelcnn_pp.log_prob(self.model, params, xi[None], k)[0])(x, keys)
        nll = -lp.mean()
        return nll, {"bits_per_dim": nats_to_bits(nll, self.num_dims)}

    def sample(self, params, key, num_samples: int, method=None):
        """Samples uint8 [num_samples, 28, 28, 1] in 0..255; `method`: "cached" (`pixelcnn_pp.sample_cached`,
        activation caches) | "naive" (one full network pass per pixel), default `config.sampler`; the same
        samples for the same key."""
        fn = {"cached": pixelcnn_pp.sample_cached, "naive": pixelcnn_pp.sample_naive}[self.sample_method(method)]
        return fn(self.model, params, key, num_samples)

    def log_prob_per_position(self, params, x):
        """log p(x_ij | x_<ij) of every pixel, nats, float32 [N, 28, 28]; sums to `log_prob`."""
        return pixelcnn_pp.log_prob_per_pixel(self.model, params, jnp.asarray(x, jnp.int32))

    conditionals_kind = "discretized_logistic_mixture"

    def conditionals(self, params, x):
        """The mixture of every pixel given those before it: {"logit_weights": float32 [N, 28, 28, K], "means",
        "log_scales": [N, 28, 28, 1, K]} (`pixelcnn_pp.conditionals`; no "coeffs": one channel)."""
        return pixelcnn_pp.conditionals(self.model, params, jnp.asarray(x, jnp.int32))

    def log_prob(self, params, x, key=None):
        """Exact log p(x), nats, float32 [N] (dropout off)."""
        return pixelcnn_pp.log_prob(self.model, params, jnp.asarray(x, jnp.int32))


if __name__ == "__main__":
    from gm_jax.cli import main

    main("pixelcnn_pp_mnist")
