"""Two-sample statistics: the kernel maximum mean discrepancy (MMD) between two sets of points.

How far a model's code distribution q(z) (an autoencoder's test-set codes) is from the prior p(z) it
was pushed towards (adversarially: `gm_jax.models.aae`; by the KL term of the ELBO: `gm_jax.models.vae`).

* `mmd2`: the squared MMD of Gretton et al. 2012 ("A Kernel Two-Sample Test", JMLR 13), with the
  Gaussian RBF kernel k(a, b) = exp(-||a - b||^2 / (2 h^2)) of bandwidth h. The unbiased estimate
  (their Lemma 6, Eq. 3; a U-statistic: the diagonals k(x_i, x_i) are left out) is
      1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j) - 2/(m n) sum_{i,j} k(x_i, y_j),
  whose mean is exactly MMD^2 (0 when both samples come from one distribution; single values can be
  negative); the biased one (their Eq. 5, a V-statistic) keeps the diagonals and is >= 0.
  Computed in float64 (NumPy).
* `median_heuristic`: the median of the pairwise Euclidean distances of a sample, the usual bandwidth
  (Gretton et al. 2012, Sec. 8).
* `mmd2_to_prior`: the protocol that compares a set of codes with a prior: disjoint batches of codes, each
  against its own fresh prior sample of the same size, one bandwidth for all of them (the median
  heuristic of a separate prior sample: it depends on p(z) only, so two models matched to the same prior
  are scored with the same kernel); reported as mean and standard deviation over the batches.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _points(name: str, a, min_rows: int = 2) -> np.ndarray:
    p = np.asarray(a, np.float64)
    if p.ndim != 2 or p.shape[0] < min_rows:
        raise ValueError(f"{name} must be points of shape [N >= {min_rows}, d], got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{name} holds NaN or inf")
    return p


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def rbf_kernel(a, b, bandwidth: float) -> np.ndarray:
    """The Gaussian RBF kernel matrix exp(-||a_i - b_j||^2 / (2 h^2)), float64 [N, M], of points a [N, d],
    b [M, d] (h = `bandwidth` > 0, in the points' units)."""
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.exp(-_sq_dists(a, b) / (2.0 * float(bandwidth) ** 2))


def median_heuristic(x, max_points: int = 2000) -> float:
    """The median pairwise Euclidean distance (i < j) of the first `max_points` points of x [N, d].

    Raises:
      ValueError: not [N >= 2, d], non-finite values, or all points equal (median 0).
    """
    p = _points("x", x)[:max_points]
    d = np.sqrt(_sq_dists(p, p)[np.triu_indices(len(p), k=1)])
    h = float(np.median(d))
    if not h > 0:
        raise ValueError("median_heuristic: the median pairwise distance is 0 (repeated points)")
    return h


def mmd2(x, y, bandwidth: float, unbiased: bool = True) -> float:
    """Squared MMD between samples x [m, d] and y [n, d] with the RBF kernel of `bandwidth` (float64).

    Args:
      x, y: points of the same dimension d, m, n >= 2.
      bandwidth: h > 0 (e.g. `median_heuristic`).
      unbiased: the U-statistic (Gretton et al. 2012, Eq. 3; mean exactly MMD^2, may be < 0) or the
        V-statistic (Eq. 5; >= 0, biased upwards by O(1/m + 1/n)).

    Returns:
      a Python float, in kernel units (the kernel is 1 at distance 0, so MMD^2 <= 2).

    Raises:
      ValueError: wrong shapes, different dimensions, non-finite values or a bandwidth <= 0.
    """
    x, y = _points("x", x), _points("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension, got {x.shape} and {y.shape}")
    kxx, kyy, kxy = rbf_kernel(x, x, bandwidth), rbf_kernel(y, y, bandwidth), rbf_kernel(x, y, bandwidth)
    m, n = len(x), len(y)
    if unbiased:
        return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                     - 2.0 * kxy.mean())
    return float(kxx.mean() + kyy.mean() - 2.0 * kxy.mean())


def mmd2_to_prior(codes, prior_sample: Callable[[int, int], np.ndarray], batch_size: int = 1000,
                  num_batches: int = 10, bandwidth: float | None = None, seed: int = 0) -> dict:
    """MMD^2 between a model's codes and its prior, as mean +- std over disjoint batches.

    Batch b compares `batch_size` codes (rows of a permutation of `codes` seeded by `seed`, disjoint
    across batches) with `prior_sample(b, batch_size)`, a fresh prior sample. The kernel is the RBF of
    one bandwidth for every batch: `bandwidth`, else the median heuristic of `prior_sample(-1, batch_size)`.

    Args:
      codes: float [N, d] codes (e.g. an encoder's test-set codes or means), N >= 2.
      prior_sample: `(b, n) -> float [n, d]` draw b of the prior (b = -1: the bandwidth's sample); draws
        with different b must be independent.
      batch_size: points per side of each comparison (reduced to N // num_batches when N is smaller).
      num_batches: comparisons (>= 1); the std is over them (0 for one).
      bandwidth: a fixed kernel bandwidth, or None (median heuristic of the prior).
      seed: the permutation of the codes.

    Returns:
      {"mmd2_mean", "mmd2_std" (population std over the batches), "mmd2_values" [num_batches],
       "mmd_bandwidth", "mmd_batch_size", "mmd_num_batches", "mmd_kernel" (a sentence)}.

    Raises:
      ValueError: fewer than 2 codes per batch, or what `mmd2` raises.
    """
    codes = _points("codes", codes)
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    bs = min(int(batch_size), len(codes) // num_batches)
    if bs < 2:
        raise ValueError(f"mmd2_to_prior needs at least 2 codes per batch: {len(codes)} codes, {num_batches} batches")
    h = float(bandwidth) if bandwidth is not None else median_heuristic(prior_sample(-1, bs))
    order = np.random.default_rng(seed).permutation(len(codes))
    values = [mmd2(codes[order[b * bs:(b + 1) * bs]], prior_sample(b, bs), h) for b in range(num_batches)]
    return {"mmd2_mean": float(np.mean(values)), "mmd2_std": float(np.std(values)),
            "mmd2_values": [float(v) for v in values], "mmd_bandwidth": h, "mmd_batch_size": bs,
            "mmd_num_batches": int(num_batches),
            "mmd_kernel": ("Gaussian RBF exp(-|a-b|^2 / (2 h^2)), h = median pairwise distance of a separate prior "
                           "sample" if bandwidth is None else "Gaussian RBF exp(-|a-b|^2 / (2 h^2)), fixed h")
                          + "; unbiased U-statistic (Gretton et al. 2012, Eq. 3)"}
