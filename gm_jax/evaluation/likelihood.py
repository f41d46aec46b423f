"""Likelihood evaluation of image models: dataset means, nats -> bits/dim, the unit statements.

One place for what every likelihood model on images reports (VAE, PixelCNN
family, flows; `gm_jax.recipes.images`): the test negative log-likelihood in
nats per image, the same in bits per dimension (`distributions.nats_to_bits`,
D = H W C), and a sentence saying what the bits are bits *of* (a discrete
likelihood of the binary / 8-bit values, or a dequantized density).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import numpy as np

from gm_jax.data import eval_batches
from gm_jax.distributions import nats_to_bits

# the unit statements (results.json says which one holds)
BINARY_PIXELS = ("exact discrete likelihood of the binary pixels (a Bernoulli / categorical "
                 "probability per pixel): no dequantization offset")
DISCRETIZED_LOGISTIC = ("256-bin discretized logistic mixture likelihood of the 8-bit values "
                        "(a discrete likelihood: no dequantization offset)")
UNIFORM_DEQUANTIZATION = ("uniform: x~ = (x + u) / 256, u ~ U[0,1)^784, one draw per test image; "
                          "bits/dim = (-log p(x~) + D ln 256) / (D ln 2), an upper bound in expectation "
                          "on the discrete bits/dim")


def mean_over_dataset(
    fn: Callable[[dict, jax.Array], Mapping[str, jax.Array]],
    arrays: Mapping[str, np.ndarray],
    batch_size: int,
    key,
) -> dict[str, float]:
    """Average per-example values of `fn` over every example of `arrays`.

    Args:
      fn: `fn(batch, key) -> {name: float [B]}` (jit it yourself; batch `i`
        gets `fold_in(key, i)`).
      arrays: feature name -> [N, ...] arrays (each example seen once, in order).
      batch_size: examples per call (the last batch may be smaller).
      key: a PRNG key, or a pytree of keys (each is folded with the batch index).

    Returns:
      {name: mean over the N examples} as Python floats (float64 accumulation).
    """
    sums: dict[str, float] = {}
    count = 0
    for i, batch in enumerate(eval_batches(arrays, batch_size)):
        values = fn(batch, jax.tree_util.tree_map(lambda k: jax.random.fold_in(k, i), key))
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + float(np.sum(np.asarray(v, np.float64)))
        count += len(next(iter(batch.values())))
    return {k: v / count for k, v in sums.items()}


def nll_metrics(prefix: str, nll_nats: float, num_dims: int) -> dict[str, float]:
    """`{prefix}_nll_nats` and `{prefix}_bits_per_dim` = nats / (num_dims ln 2) of a mean NLL per example."""
    return {f"{prefix}_nll_nats": nll_nats, f"{prefix}_bits_per_dim": nats_to_bits(nll_nats, num_dims)}
