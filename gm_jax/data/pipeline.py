"""Shuffling, batching and per-batch transforms on in-memory arrays.

The training order is a pure function of `(seed, step)`: epoch `e` uses the
permutation drawn from `np.random.default_rng([seed, e])`, and batch `s` is
slice `s mod steps_per_epoch` of epoch `s // steps_per_epoch`. A run resumed at
step `s` therefore sees exactly the batches an uninterrupted run would have.

Every batch maker of the library takes `rows`, a slice of the global batch: the
rows one process of a multi-process run reads (`TrainStep.process_rows`). The
global batch is drawn as always (the indices or offsets only, which are cheap)
and only those rows are read, so the global batch is the same whatever the
process count.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import jax
import numpy as np


def num_examples(arrays: Mapping[str, np.ndarray]) -> int:
    """Leading dimension shared by every array of `arrays` (ValueError if they differ)."""
    sizes = {k: len(v) for k, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"arrays must share their leading dimension, got {sizes}")
    return next(iter(sizes.values()))


def train_batches(
    arrays: Mapping[str, np.ndarray], batch_size: int, seed: int, start_step: int = 0, rows: slice | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Endless fixed-size shuffled batches, reproducible from `(seed, step)`.

    Args:
      arrays: feature name -> array [N, ...].
      batch_size: examples per batch; the last partial batch of each epoch is dropped.
      seed: shuffling seed (int).
      start_step: index of the first batch yielded (for resuming).
      rows: the rows of each global batch to read (this process's share); None: all of them.

    Yields:
      dicts with the keys of `arrays`, each [batch_size, ...] (or the `rows` of it).

    Raises:
      ValueError: `batch_size` < 1 or larger than the dataset.
    """
    n = num_examples(arrays)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] for this dataset, got {batch_size}")
    steps_per_epoch = n // batch_size
    step = start_step
    while True:
        epoch, i = divmod(step, steps_per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        while i < steps_per_epoch:
            idx = np.sort(perm[i * batch_size : (i + 1) * batch_size])[_all(rows)]
            yield {k: v[idx] for k, v in arrays.items()}
            i += 1
            step += 1


def _all(rows: slice | None) -> slice:
    return slice(None) if rows is None else rows


def take_rows(batch: Mapping[str, np.ndarray], rows: slice | None) -> dict[str, np.ndarray]:
    """The `rows` of every array of a batch drawn whole (None: the batch as it is)."""
    return dict(batch) if rows is None else {k: v[rows] for k, v in batch.items()}


def eval_batches(arrays: Mapping[str, np.ndarray], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Every example once, in order, in batches of `batch_size` (the last may be smaller)."""
    n = num_examples(arrays)
    for start in range(0, n, batch_size):
        yield {k: v[start : start + batch_size] for k, v in arrays.items()}


def dynamic_binarize(key: jax.Array, images: jax.Array) -> jax.Array:
    """Binarize 8-bit images by a Bernoulli draw per pixel with p = x / 255.

    The "dynamic binarization" of Burda et al. 2016 (Sec. 5.1): a fresh draw
    each time an image is seen.

    Args:
      key: PRNG key.
      images: uint8 [..., H, W, C] with values 0-255.

    Returns:
      uint8 array of the same shape with values in {0, 1}.
    """
    probs = jax.numpy.asarray(images, jax.numpy.float32) / 255.0
    return jax.random.bernoulli(key, probs).astype(jax.numpy.uint8)
