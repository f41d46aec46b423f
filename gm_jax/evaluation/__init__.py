"""Evaluation: likelihood estimates averaged over a dataset, unit conversions; sample quality
(MNIST-FID, MNIST-IS, nearest neighbours) with the project's MNIST classifier in
`gm_jax.evaluation.sample_quality` and `gm_jax.evaluation.classifier`."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import jax
import numpy as np

from gm_jax.data import eval_batches
from gm_jax.evaluation.sample_quality import (  # noqa: F401  (exports)
    feature_stats,
    frechet_distance,
    inception_score,
    nearest_neighbours,
    save_nearest_neighbour_figure,
)


def mean_over_dataset(
    fn: Callable[[dict, jax.Array], Mapping[str, jax.Array]],
    arrays: Mapping[str, np.ndarray],
    batch_size: int,
    key: jax.Array,
) -> dict[str, float]:
    """Average per-example values of `fn` over every example of `arrays`.

    Args:
      fn: `fn(batch, key) -> {name: float [B]}` (jit it yourself; batch `i`
        gets `fold_in(key, i)`).
      arrays: feature name -> [N, ...] arrays (each example seen once, in order).
      batch_size: examples per call (the last batch may be smaller).
      key: PRNG key.

    Returns:
      {name: mean over the N examples} as Python floats (float64 accumulation).
    """
    sums: dict[str, float] = {}
    count = 0
    for i, batch in enumerate(eval_batches(arrays, batch_size)):
        values = fn(batch, jax.random.fold_in(key, i))
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + float(np.sum(np.asarray(v, np.float64)))
        count += len(next(iter(batch.values())))
    return {k: v / count for k, v in sums.items()}


def nats_to_bits_per_dim(nats: float, num_dims: int) -> float:
    """Convert a negative log-likelihood in nats per example to bits per dimension: nats / (D ln 2)."""
    return nats / (num_dims * math.log(2.0))
