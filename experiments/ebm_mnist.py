"""Energy-based model (Du & Mordatch 2019) on MNIST: a convolutional energy, Langevin samples, MNIST-FID.

    python -m experiments.ebm_mnist --workdir runs/ebm_mnist [--config.num_steps=5000]

Images are the 8-bit `mnist` training images scaled to [0, 1] (float). The
energy is `gm_jax.models.ebm.EnergyCNN`; training is Du & Mordatch's
Algorithm 1 (`gm_jax.models.ebm.EBMExperiment`): Langevin negatives from a
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
for far longer. Measured with the default (runs/ebm_mnist, 600 updates, 8 min on
2 CPU cores): the replay buffer (long-run chains) holds digit-like strokes,
but 200 steps from uniform noise collapse onto a few blob shapes
(MNIST-FID 709 against 0.73 for real test images): this default is a
working demonstration of the method, not a good image model.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax import viz
from gm_jax.data import load_split, train_batches
from gm_jax.evaluation import classifier as classifier_lib
from gm_jax.evaluation import sample_quality
from gm_jax.models import ebm


def get_config() -> ml_collections.ConfigDict:
    """Default (CPU-sized, about 10 minutes on 2 cores): EnergyCNN (16, 32, 64), batch 64, 10 Langevin steps
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


class Experiment(ebm.EBMExperiment):
    name = "ebm_mnist"
    data_shape = (28, 28, 1)
    data_max = 255

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.net = ebm.EnergyCNN(tuple(config.channels))
        self.box = (0.0, 1.0)

    def _split(self, split: str) -> dict:
        return {"image": load_split("mnist", split, self.config.data_dir or None)["image"]}

    def train_batches(self, start_step: int = 0):
        return train_batches(self._split("train"), self.config.batch_size, self.config.seed, start_step)

    def positive(self, batch: dict) -> jax.Array:
        return jnp.asarray(batch["image"], jnp.float32) / 255.0

    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """uint8 [num_samples, 28, 28, 1]: `sample_steps` Langevin steps from uniform noise, scaled to 0..255."""
        x = super().sample(params, key, num_samples)
        return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)

    def energy(self, params, x: jax.Array) -> jax.Array:
        """E(x) float32 [B] of images float in [0, 1] [B, 28, 28, 1] (uint8 images are scaled by 1/255)."""
        x = jnp.asarray(x)
        if x.dtype == jnp.uint8:
            x = x.astype(jnp.float32) / 255.0
        return super().energy(params, x)

    def _samples(self, params, key, n: int) -> np.ndarray:
        bs = self.config.eval_batch_size
        fn = jax.jit(self.sample, static_argnums=2)
        return np.concatenate([np.asarray(fn(params, jax.random.fold_in(key, i), bs))
                               for i in range((n + bs - 1) // bs)])[:n]

    def evaluate(self, params, key: jax.Array) -> dict:
        c = self.config
        clf = classifier_lib.get_classifier(c.classifier_dir or None, c.data_dir or None)
        directory = Path(c.classifier_dir) if c.classifier_dir else classifier_lib.default_classifier_dir()
        reference = sample_quality.load_reference_stats(directory / classifier_lib.REFERENCE_FILE)
        x = self._samples(params, key, c.num_eval_samples)
        test = self._split("test")["image"][:1000]
        return {"mnist_fid": sample_quality.mnist_fid(clf, x, reference), "mnist_is": sample_quality.mnist_is(clf, x),
                "real_test_vs_train_mnist_fid": clf.info.get("real_test_vs_train_mnist_fid"),
                "real_test_mnist_is": clf.info.get("real_test_mnist_is"),
                "num_eval_samples": int(c.num_eval_samples), "sample_steps": int(c.sample_steps),
                "mean_energy_test": float(np.mean(np.asarray(jax.jit(self.energy)(params, test)))),
                "mean_energy_samples": float(np.mean(np.asarray(jax.jit(self.energy)(params, x[:1000])))),
                "metric_note": "MNIST-FID / MNIST-IS use the project's MNIST classifier, not Inception-v3",
                "figures": ["samples.png", "buffer.png", "losses.png"]}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        from gm_jax.training import checkpoint
        from gm_jax.training.loop import run_keys

        workdir = Path(workdir)
        x = np.asarray(jax.jit(self.sample, static_argnums=2)(params, key, 64))
        viz.save_image_grid(workdir / "samples.png", x, cols=8, max_value=255)
        manager = checkpoint.checkpoint_manager(workdir, read_only=True)
        try:
            target = jax.eval_shape(self.init_state, run_keys(self.config.seed)["init"])
            state = checkpoint.restore(manager, target)
        finally:
            manager.close()
        viz.save_image_grid(workdir / "buffer.png", np.asarray(state.buffer[:64]), cols=8, max_value=1.0)
        ebm.save_training_curves(workdir / "metrics.jsonl", workdir / "losses.png", title="ebm_mnist")


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ebm_mnist")
