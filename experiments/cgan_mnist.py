"""Conditional DCGAN on MNIST (Mirza & Osindero 2014, with the DCGAN players of Radford et al. 2016).

    python -m experiments.cgan_mnist --workdir runs/cgan_mnist

Both players see the digit label: the generator gets its one-hot code
concatenated to z, the discriminator as 10 constant input feature maps and
again beside its last features. Everything else is `experiments.dcgan_mnist`.

Sampling: `model.sample(key, n, labels=...)` with `labels` int [n] in 0..9
(default: 0, 1, ..., 9, 0, 1, ... cycling); uint8 [n, 28, 28, 1], 0..255.

`results.json` adds `label_accuracy`: the fraction of `num_eval_samples`
samples (labels cycling 0..9) that the project's MNIST classifier assigns to
the label they were generated for. `samples.png` is a 10x10 grid whose
column j holds samples generated for digit j.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import dcgan_mnist
from gm_jax import viz
from gm_jax.evaluation import sample_quality
from gm_jax.models import gan

NUM_CLASSES = 10


def get_config() -> ml_collections.ConfigDict:
    """The DCGAN config with G 64-32 / D 32-64 channels, constant Adam(2e-4, 0.5), batch 64,
    6,000 steps (6.4 epochs); labels condition both players."""
    c = dcgan_mnist.get_config()
    c.g_channels = (64, 32)
    c.d_channels = (32, 64)
    c.lr_decay = "none"
    c.pack = 1  # PacGAN packs are for the unconditional discriminator
    c.clusters = 0  # the digit labels condition the players, not k-means clusters
    c.num_steps = 6000
    c.checkpoint_every = 2000
    c.keep_checkpoints = 5
    return c


class Experiment(dcgan_mnist.Experiment):
    name = "cgan_mnist"
    num_classes = NUM_CLASSES
    conditioning = ("labels",)

    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """Check `sample`'s `labels` on concrete values (`Model.sample` calls this before the jitted sampler).

        Args:
          num_samples: the number of samples asked for.
          labels: optional int array [num_samples] of digits 0..9 (default: i mod 10 for sample i).

        Returns:
          `{"labels": int32 [num_samples]}`.

        Raises:
          ValueError: an unknown keyword, or `labels` not an integer array of shape [num_samples]
            with values in 0..9.
        """
        conditioning = super().check_conditioning(num_samples, **conditioning)
        labels = conditioning.get("labels")
        if labels is None:
            return {"labels": np.arange(num_samples, dtype=np.int32) % NUM_CLASSES}
        y = np.asarray(labels)
        if y.shape != (num_samples,):
            raise ValueError(f"{self.name}: labels must have shape [num_samples] = [{num_samples}], got {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{self.name}: labels must be integers in 0..{NUM_CLASSES - 1}, got dtype {y.dtype}")
        if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise ValueError(f"{self.name}: labels must be digits in 0..{NUM_CLASSES - 1}, "
                             f"got values in [{y.min()}, {y.max()}]")
        return {"labels": y.astype(np.int32)}

    def sample(self, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
        """x = G(z, y), z ~ N(0, I): uint8 [num_samples, 28, 28, 1], 0..255.

        Args:
          labels: int [num_samples] digits 0..9 (default: i mod 10 for sample i).

        Raises:
          ValueError: labels of the wrong shape or dtype (always), or out of range (when the
            labels are concrete values; under jit call `check_conditioning` first).
        """
        if labels is None:
            labels = jnp.arange(num_samples, dtype=jnp.int32) % NUM_CLASSES
        elif dcgan_mnist._is_concrete(labels):
            self.check_conditioning(num_samples, labels=labels)
        elif tuple(labels.shape) != (num_samples,) or not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(f"{self.name}: labels must be integers of shape [{num_samples}], "
                             f"got {labels.dtype} {tuple(labels.shape)}")
        y = jnp.asarray(labels, jnp.int32)
        return gan.to_uint8(self.gan.generate(params["params"], params["batch_stats"], key, num_samples, y))

    def eval_labels(self, n: int) -> np.ndarray:
        return (np.arange(n) % NUM_CLASSES).astype(np.int32)

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        labels = self.eval_labels(100)
        x = self._samples(params, key, 100, labels)
        viz.save_image_grid(workdir / "samples.png", x, cols=NUM_CLASSES, max_value=255.0)
        train = self._split("train")["image"]
        sample_quality.save_nearest_neighbour_figure(workdir / "nearest_neighbours.png", x[:40], train,
                                                     pairs_per_row=5)
        gan.save_loss_curves(workdir / "metrics.jsonl", workdir / "losses.png", title=self.name)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("cgan_mnist")
