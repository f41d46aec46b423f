"""The project's MNIST classifier: the feature extractor of MNIST-FID and MNIST-IS.

A small CNN (two 3x3 conv + max-pool stages, 32 and 64 channels, a 128-unit
ReLU layer -- the *features* -- and 10 logits), trained once with Adam on the
60,000 MNIST training images and cached in its own orbax checkpoint directory
together with `classifier.json` (its measured test accuracy, which must be
>= 99%) and `reference.npz` (the float64 mean and covariance of the training
set's features, and the real-data reference values of MNIST-FID and MNIST-IS).
Evaluations load the cache; they never retrain.

Cache location: the `classifier_dir` argument, else `$GM_JAX_CLASSIFIER_DIR`,
else `runs/mnist_classifier` under the project root.

Train it from the command line with `python -m gm_jax.evaluation.classifier [--dir DIR]`
(or let the first evaluation that needs it train it, about 3 minutes on a
2-core CPU).

Smoke-test path: with `data_dir="synthetic"` (tests, `get_test_config()`),
`classifier_and_reference` neither reads nor writes any cache directory: it
trains a tiny classifier (`SMOKE_TEST`) for a few steps on the synthetic
digits in memory, once per process, with no accuracy bar. Its MNIST-FID /
MNIST-IS exercise the evaluation code only and mean nothing; its `info` says
so under `smoke_test`.
"""
from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

MIN_TEST_ACCURACY = 0.99
INFO_FILE = "classifier.json"
REFERENCE_FILE = "reference.npz"
FEATURE_DIM = 128
# the smoke-test classifier of synthetic data: a tiny net and a few Adam steps, no accuracy bar
SMOKE_TEST = {"channels": (8,), "features": 16, "num_steps": 20, "batch_size": 64}


def default_classifier_dir() -> Path:
    """`$GM_JAX_CLASSIFIER_DIR`, else `<project root>/runs/mnist_classifier`."""
    env = os.environ.get("GM_JAX_CLASSIFIER_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "runs" / "mnist_classifier"


class MNISTClassifier(nn.Module):
    """x float32 [B, 28, 28, 1] in [0, 1] -> (logits [B, 10], features [B, features])."""

    channels: tuple[int, ...] = (32, 64)
    features: int = FEATURE_DIM
    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        h = x
        for c in self.channels:
            h = nn.relu(nn.Conv(c, (3, 3))(h))
            h = nn.max_pool(h, (2, 2), strides=(2, 2))
        feats = nn.relu(nn.Dense(self.features)(h.reshape(h.shape[0], -1)))
        return nn.Dense(self.num_classes)(feats), feats


def softmax64(logits) -> np.ndarray:
    """Softmax over the last axis in float64 (numpy / scipy, independent of jax's x64 mode)."""
    import scipy.special

    return scipy.special.softmax(np.asarray(logits, np.float64), axis=-1)


def preprocess(images) -> jax.Array:
    """uint8 [B, 28, 28, 1] images, values 0..255 -> float32 in [0, 1]."""
    return jnp.asarray(images, jnp.float32) / 255.0


class Classifier:
    """A trained (or loaded) classifier: jitted logits, features and probabilities in batches.

    Attributes:
      model: the `MNISTClassifier` module; params: its parameters;
      info: dict with at least `test_accuracy` (fraction) and the training settings.
    """

    def __init__(self, model: MNISTClassifier, params, info: dict | None = None):
        self.model, self.params, self.info = model, params, dict(info or {})
        self._apply = jax.jit(lambda p, x: model.apply({"params": p}, preprocess(x)))

    def outputs(self, images, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """(logits float32 [N, 10], features float32 [N, 128]) of uint8 images [N, 28, 28, 1] (0..255)."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
            raise ValueError(f"the MNIST classifier expects images of shape [N, 28, 28, 1], got {images.shape}")
        logits, feats = [], []
        for start in range(0, len(images), batch_size):
            lo, fe = self._apply(self.params, images[start:start + batch_size])
            logits.append(np.asarray(lo))
            feats.append(np.asarray(fe))
        return np.concatenate(logits), np.concatenate(feats)

    def features(self, images, batch_size: int = 1000) -> np.ndarray:
        """Penultimate (128-unit ReLU) features float32 [N, 128] of uint8 images."""
        return self.outputs(images, batch_size)[1]

    def probs(self, images, batch_size: int = 1000) -> np.ndarray:
        """Softmax class probabilities float64 [N, 10] of uint8 images."""
        return softmax64(self.outputs(images, batch_size)[0])

    def predict(self, images, batch_size: int = 1000) -> np.ndarray:
        """Predicted labels int [N]."""
        return np.argmax(self.outputs(images, batch_size)[0], axis=1)

    def accuracy(self, images, labels, batch_size: int = 1000) -> float:
        """Fraction of `images` classified as `labels` (int [N])."""
        return float(np.mean(self.predict(images, batch_size) == np.asarray(labels)))


def train_classifier(train: dict, test: dict, num_steps: int = 2000, batch_size: int = 128,
                     learning_rate: float = 1e-3, seed: int = 0, model: MNISTClassifier | None = None,
                     log=None) -> Classifier:
    """Train a `MNISTClassifier` by Adam on softmax cross-entropy and measure its test accuracy.

    Args:
      train, test: dicts with `image` uint8 [N, 28, 28, 1] (0..255) and `label` int [N].
      num_steps, batch_size, learning_rate, seed: the optimisation (the default is about
        4.3 epochs of MNIST; the learning rate decays by cosine to 0).
      model: the module (default `MNISTClassifier()`).
      log: optional `log(str)` for progress.

    Returns:
      a `Classifier` whose `info` holds `test_accuracy` and the settings.
    """
    from gm_jax.data import train_batches

    model = model or MNISTClassifier()
    params = model.init(jax.random.key(seed), jnp.zeros((1, 28, 28, 1)))["params"]
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps))
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, images, labels):
        def loss_fn(p):
            logits, _ = model.apply({"params": p}, preprocess(images))
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    t0 = time.perf_counter()
    batches = train_batches({"image": train["image"], "label": train["label"]}, batch_size, seed)
    for i in range(num_steps):
        b = next(batches)
        params, opt_state, loss = step(params, opt_state, b["image"], b["label"])
        if log and (i + 1) % 500 == 0:
            log(f"classifier step {i + 1}/{num_steps}: loss {float(loss):.4f}")
    clf = Classifier(model, params)
    acc = clf.accuracy(test["image"], test["label"])
    clf.info = {"test_accuracy": acc, "num_steps": num_steps, "batch_size": batch_size,
                "learning_rate": learning_rate, "seed": seed, "train_wall_s": time.perf_counter() - t0,
                "channels": list(model.channels), "features": model.features}
    return clf


def save_classifier(clf: Classifier, directory: str | os.PathLike) -> Path:
    """Write `clf` to `directory`: orbax checkpoint `checkpoints/` plus `classifier.json`."""
    from gm_jax.training import checkpoint
    from gm_jax.training.loop import write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with checkpoint.Checkpointer(directory, keep=1) as ckpt:
        ckpt.save(int(clf.info.get("num_steps", 1)), clf.params, force=True)
    write_json(directory / INFO_FILE, clf.info)
    return directory


def load_classifier(directory: str | os.PathLike | None = None,
                    min_accuracy: float = MIN_TEST_ACCURACY) -> Classifier:
    """Load the cached classifier from `directory` (default `default_classifier_dir()`).

    Raises:
      FileNotFoundError: no trained classifier there (train one with `get_classifier` or
        `python -m gm_jax.evaluation.classifier`).
      ValueError: its recorded test accuracy is below `min_accuracy`, or the checkpoint is
        unreadable.
    """
    from gm_jax.training import checkpoint

    directory = Path(directory) if directory else default_classifier_dir()
    info_path = directory / INFO_FILE
    if not info_path.is_file():
        raise FileNotFoundError(
            f"no trained MNIST classifier in {directory} ({INFO_FILE} missing); train it with "
            f"`python -m gm_jax.evaluation.classifier --dir {directory}`")
    info = json.loads(info_path.read_text())
    if info.get("test_accuracy", 0.0) < min_accuracy:
        raise ValueError(f"the MNIST classifier in {directory} has test accuracy {info.get('test_accuracy')}, "
                         f"below the required {min_accuracy}")
    model = MNISTClassifier(channels=tuple(info.get("channels", (32, 64))), features=info.get("features", FEATURE_DIM))
    target = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    with checkpoint.Checkpointer(directory, read_only=True) as ckpt:
        params = ckpt.restore(target)
    return Classifier(model, params, info)


def get_classifier(directory: str | os.PathLike | None = None, data_dir: str | None = None,
                   train_if_missing: bool = True, log=print, **train_kwargs) -> Classifier:
    """The cached classifier; trains, checks (>= 99% test accuracy) and caches it if missing.

    Also writes the real-data references (`reference.npz`) on first training.

    Raises:
      FileNotFoundError: missing and `train_if_missing` is False.
      ValueError: a freshly trained classifier falls short of 99% test accuracy (nothing cached).
    """
    directory = Path(directory) if directory else default_classifier_dir()
    if (directory / INFO_FILE).is_file():
        return load_classifier(directory)
    if not train_if_missing:
        return load_classifier(directory)  # raises FileNotFoundError
    from gm_jax.data import load_split

    train, test = load_split("mnist", "train", data_dir), load_split("mnist", "test", data_dir)
    if log:
        log(f"training the MNIST classifier (cached in {directory}) ...")
    clf = train_classifier(train, test, log=log, **train_kwargs)
    if clf.info["test_accuracy"] < MIN_TEST_ACCURACY:
        raise ValueError(f"the trained MNIST classifier reached test accuracy {clf.info['test_accuracy']:.4f} "
                         f"< {MIN_TEST_ACCURACY}; not cached")
    from gm_jax.evaluation import sample_quality

    directory.mkdir(parents=True, exist_ok=True)
    train_stats = sample_quality.feature_stats(clf.features(train["image"]))
    sample_quality.save_reference_stats(directory / REFERENCE_FILE, *train_stats)
    clf.info.update(sample_quality.real_references(clf, test["image"], train_stats))
    save_classifier(clf, directory)  # classifier.json last: it marks a complete cache
    if log:
        log(f"MNIST classifier: test accuracy {clf.info['test_accuracy']:.4f}; saved to {directory}")
    return clf


def classifier_and_reference(classifier_dir: str | os.PathLike | None = None, data_dir: str | None = None):
    """The classifier of MNIST-FID / MNIST-IS and the training set's reference feature stats.

    Real data: `get_classifier(classifier_dir, data_dir)` (loaded from its cache, trained and cached
    once if missing) and the cache's `reference.npz`. Synthetic data (`data_dir="synthetic"`): the
    smoke-test classifier of `smoke_test_classifier`, with no cache read or written.

    Returns:
      (Classifier, (mean float64 [d], cov float64 [d, d])).
    """
    from gm_jax.data.synthetic import is_synthetic
    from gm_jax.evaluation import sample_quality

    if is_synthetic(data_dir):
        return smoke_test_classifier()
    directory = Path(classifier_dir) if classifier_dir else default_classifier_dir()
    clf = get_classifier(directory, data_dir or None)
    return clf, sample_quality.load_reference_stats(directory / REFERENCE_FILE)


@functools.lru_cache(maxsize=1)
def smoke_test_classifier():
    """SMOKE-TEST PATH for synthetic data: a tiny classifier (`SMOKE_TEST`) trained in memory for a few
    steps on the synthetic digits (no accuracy bar, nothing cached on disk; once per process), with the
    synthetic training set's feature stats and real-data references. Its scores mean nothing.

    Returns:
      (Classifier with `info["smoke_test"]` set, (mean, cov) of the synthetic training features).
    """
    from gm_jax.data import load_split
    from gm_jax.evaluation import sample_quality

    train, test = load_split("mnist", "train", "synthetic"), load_split("mnist", "test", "synthetic")
    model = MNISTClassifier(channels=SMOKE_TEST["channels"], features=SMOKE_TEST["features"])
    clf = train_classifier(train, test, num_steps=SMOKE_TEST["num_steps"], batch_size=SMOKE_TEST["batch_size"],
                           model=model)
    stats = sample_quality.feature_stats(clf.features(train["image"]))
    clf.info.update(sample_quality.real_references(clf, test["image"], stats))
    clf.info["smoke_test"] = ("synthetic data: a tiny classifier trained for a few steps in memory, "
                              "no accuracy bar; MNIST-FID / MNIST-IS from it are meaningless")
    return clf, stats


def _main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gm_jax.evaluation.classifier",
                                     description="Train (once) and cache the MNIST classifier of MNIST-FID/IS.")
    parser.add_argument("--dir", default=None, help=f"cache directory (default {default_classifier_dir()})")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir holding mnist")
    parser.add_argument("--num_steps", type=int, default=2000)
    args = parser.parse_args(argv)
    clf = get_classifier(args.dir, args.data_dir, num_steps=args.num_steps)
    print(json.dumps(clf.info, indent=2))


if __name__ == "__main__":
    _main()
