"""PixelCNN (van den Oord et al. 2016a) on fixed-binarized MNIST, exact test NLL in nats.

    python -m experiments.pixelcnn_mnist --workdir runs/pixelcnn_mnist [--config.size=paper]

Trains on the 50,000 training images of `binarized_mnist` (the fixed
binarization of Larochelle & Murray 2011) with a Bernoulli likelihood per pixel
and reports the exact test negative log-likelihood
-log p(x) = -sum_i log p(x_i | x_<i) averaged over the 10,000 test images.
Writes `results.json` (`test_nll_nats`, `train_nll_nats` on the first 10,000
training images, ...) and `samples.png` (8x8 grid of samples from the cached
sampler). `--config.size=paper` sets the published size (PixelRNN paper,
Table 4 / Sec. 3.4: h = 64 i.e. 128 residual channels, 15 residual blocks; an
accelerator run) over the model fields; the default is sized for about 30
minutes on a 2-core CPU. Published: 81.30 nats (PixelCNN, Table 4).

This module also holds `PixelCNNExperiment`, the base class of
`gated_pixelcnn_mnist`.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax import viz
from gm_jax.data import dynamic_binarize, load_split, train_batches
from gm_jax.evaluation import mean_over_dataset
from gm_jax.experiment import Experiment as BaseExperiment
from gm_jax.models import pixelcnn

SAMPLERS = ("cached", "naive")

PAPER = {"features": 64, "num_layers": 15, "output_features": 256, "batch_size": 16, "num_steps": 200_000,
         "learning_rate": 3e-4}


def get_config() -> ml_collections.ConfigDict:
    """CPU default: PixelCNN with 32/64-channel residual blocks, 5 blocks, ~30 min on 2 cores."""
    c = config_lib.base_config()
    c.size = "default"  # default | paper (sets the fields of PAPER)
    c.dataset = "binarized_mnist"
    c.features = 32
    c.num_layers = 5
    c.first_kernel = 7
    c.output_features = 64
    c.sampler = "cached"  # cached | naive
    c.num_steps = 3000
    c.batch_size = 32
    c.learning_rate = 1e-3
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 500
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """The published size (for an accelerator run)."""
    return config_lib.apply_overrides(get_config(), {"size": "paper"}, "pixelcnn_mnist")


class PixelCNNExperiment(BaseExperiment):
    """Shared experiment of the binary-pixel PixelCNN family on MNIST (28x28x1, values {0, 1}).

    Subclasses set `name`, `paper` and build `self.model`. When
    `config.conditional` is true (gated_pixelcnn_mnist) the data are 8-bit
    `mnist` binarized dynamically, with labels.
    """

    name = "pixelcnn_mnist"
    data_shape = (28, 28, 1)
    data_max = 1
    paper: dict = PAPER

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.size not in ("default", "paper"):
            raise ValueError(f"config.size={config.size!r}; valid choices: ['default', 'paper']")
        if config.size == "paper":
            config = config_lib.apply_overrides(config, self.paper, self.name)
            self.config = config
        if config.sampler not in SAMPLERS:
            raise ValueError(f"config.sampler={config.sampler!r}; valid choices: {list(SAMPLERS)}")
        if config.dataset not in ("binarized_mnist", "mnist"):
            raise ValueError(f"config.dataset={config.dataset!r}; valid choices: ['binarized_mnist', 'mnist']")
        self.model = self.build_model(config)

    @property
    def conditional(self) -> bool:
        return bool(self.config.get("conditional", False))

    def build_model(self, config):
        return pixelcnn.PixelCNN(image_shape=self.data_shape, num_values=2, features=config.features,
                                 num_layers=config.num_layers, first_kernel=config.first_kernel,
                                 output_features=config.output_features)

    # -- data ---------------------------------------------------------------------
    def _split(self, split: str) -> dict:
        data = load_split(self.config.dataset, split, self.config.data_dir or None)
        out = {"image": data["image"]}
        if self.conditional:
            out["label"] = data["label"]
        return out

    def train_batches(self, start_step: int = 0):
        return train_batches(self._split("train"), self.config.batch_size, self.config.seed, start_step)

    def _binary(self, images, keys):
        if self.config.dataset == "binarized_mnist":
            return jnp.asarray(images, jnp.int32)
        return jax.vmap(dynamic_binarize)(keys, images).astype(jnp.int32)

    # -- model --------------------------------------------------------------------
    def init_params(self, key: jax.Array):
        x = jnp.zeros((1, *self.data_shape), jnp.int32)
        labels = jnp.zeros((1,), jnp.int32) if self.conditional else None
        return self.model.init(key, x, labels)["params"]

    def _log_prob(self, params, x, labels=None):
        return pixelcnn.log_prob(self.model, params, x, labels)

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """Negative log-likelihood, nats per image, averaged over the batch."""
        x = self._binary(batch["image"], keys)
        nll = -self._log_prob(params, x, batch.get("label")).mean()
        return nll, {}

    def sample(self, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
        """Samples uint8 [num_samples, 28, 28, 1] in {0, 1} (config.sampler: cached | naive)."""
        fn = pixelcnn.sample_cached if self.config.sampler == "cached" else pixelcnn.sample_naive
        if self.conditional and labels is None:
            labels = jnp.arange(num_samples) % 10
        return fn(self.model, params, key, num_samples, labels if self.conditional else None)

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """Exact log p(x), nats, float32 [N] (class-conditional models: log (1/10) sum_y p(x | y))."""
        x = jnp.asarray(x, jnp.int32)
        if not self.conditional:
            return self._log_prob(params, x)
        per_class = jnp.stack([self._log_prob(params, x, jnp.full((x.shape[0],), y, jnp.int32)) for y in range(10)])
        return jax.nn.logsumexp(per_class, axis=0) - jnp.log(10.0)

    # -- evaluation ---------------------------------------------------------------
    def _eval_set(self, split: str, key, limit=None) -> dict:
        data = self._split(split)
        data = {k: v[:limit] for k, v in data.items()}
        if self.config.dataset == "mnist":  # one fixed binarization of the evaluation images
            data["image"] = np.asarray(dynamic_binarize(key, data["image"]))
        return data

    def evaluate(self, params, key: jax.Array) -> dict:
        @jax.jit
        def nll(batch, k):
            out = {"nll": -self.log_prob(params, batch["image"])}
            if self.conditional:
                out["nll_given_label"] = -self._log_prob(params, jnp.asarray(batch["image"], jnp.int32), batch["label"])
            return out

        test = mean_over_dataset(nll, self._eval_set("test", key), self.config.eval_batch_size, key)
        train = mean_over_dataset(nll, self._eval_set("train", key, 10_000), self.config.eval_batch_size, key)
        results = {
            "test_nll_nats": test["nll"],
            "test_bits_per_dim": test["nll"] / (784 * np.log(2.0)),
            "train_nll_nats": train["nll"],
            "dataset": self.config.dataset
            + ("" if self.config.dataset == "binarized_mnist" else " (one dynamic binarization of the test set)"),
        }
        if self.conditional:
            results["test_nll_given_label_nats"] = test["nll_given_label"]
        return results

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        labels = jnp.arange(64) % 10 if self.conditional else None
        x = jax.jit(self.sample, static_argnums=2)(params, key, 64, labels)
        viz.save_image_grid(Path(workdir) / "samples.png", np.asarray(x), cols=8)


class Experiment(PixelCNNExperiment):
    name = "pixelcnn_mnist"


if __name__ == "__main__":
    from gm_jax.cli import main

    main("pixelcnn_mnist")
