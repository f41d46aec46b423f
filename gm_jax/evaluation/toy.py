"""Evaluation of models of 2-D toy densities (`gm_jax.data.toy`): mode coverage and densities on a grid.

* `ring_metrics`: modes covered and the high-quality fraction of samples of a ring of
  Gaussians (the mode-collapse measure of Metz et al. 2017, Sec. 3.1: a sample is of high
  quality within 3 std of a mode; a mode is covered by at least `min_mode_samples` of them);
* `moons_metrics`: the share of samples within 3 noise std of the noiseless two moons;
* `grid` / `normalise_on_grid` / `grid_log_likelihood` / `density_integral`: a density
  evaluated at the cell centres of an n x n grid, normalised or integrated by the midpoint
  rule (2-D only: the check that an unnormalised model defines the density we think, or that
  a flow's density integrates to 1).
"""
from __future__ import annotations

import numpy as np

from gm_jax.data import toy


def ring_metrics(x: np.ndarray, centers: np.ndarray, std: float, min_mode_samples: int) -> dict:
    """Mode coverage of points x [N, 2] for a ring of Gaussians with centres [K, 2] and std `std`.

    Returns:
      `modes_covered` (modes with >= `min_mode_samples` high-quality samples), `num_modes`,
      `high_quality_fraction` (samples within 3 std of their nearest mode) and
      `high_quality_per_mode` (counts, list of K ints).
    """
    d = np.linalg.norm(x[:, None, :] - centers[None], axis=-1)
    nearest, dist = d.argmin(1), d.min(1)
    hq = dist <= 3 * std
    counts = np.bincount(nearest[hq], minlength=len(centers))
    return {"modes_covered": int(np.sum(counts >= min_mode_samples)), "num_modes": int(len(centers)),
            "high_quality_fraction": float(hq.mean()), "high_quality_per_mode": counts.tolist()}


def moons_metrics(x: np.ndarray, noise: float) -> dict:
    """Share of points x [N, 2] within 3 `noise` std of the noiseless moons (`toy.moon_curves()`), and
    how they split between the upper and the lower moon."""
    upper, lower = toy.moon_curves()
    du = np.min(np.linalg.norm(x[:, None] - upper[None], axis=-1), 1)
    dl = np.min(np.linalg.norm(x[:, None] - lower[None], axis=-1), 1)
    near = np.minimum(du, dl) <= 3 * noise
    return {"within_3sigma_fraction": float(near.mean()),
            "upper_moon_fraction": float(np.mean(near & (du < dl))),
            "lower_moon_fraction": float(np.mean(near & (dl <= du)))}


def grid(lo: float, hi: float, n: int) -> tuple[np.ndarray, float, np.ndarray]:
    """The cell centres of an n x n grid over [lo, hi]^2.

    Returns:
      (points float32 [n*n, 2], row-major with y the row: point i * n + j = (c_j, c_i);
      cell area float; the 1-D centres c float64 [n]).
    """
    edges = np.linspace(lo, hi, n + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    xx, yy = np.meshgrid(centres, centres)
    return np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32), (edges[1] - edges[0]) ** 2, centres


def normalise_on_grid(log_unnormalised: np.ndarray, area: float) -> tuple[np.ndarray, float]:
    """log p = u - log Z on the grid cells, with Z = area * sum exp(u) (midpoint rule), in float64.

    Args:
      log_unnormalised: u float [n*n] (e.g. -E(x) of an energy-based model) at the cell centres.
      area: the cell area.

    Returns:
      (log p float64 [n*n], log Z).
    """
    u = np.asarray(log_unnormalised, np.float64)
    log_z = float(np.log(area) + np.log(np.sum(np.exp(u - u.max()))) + u.max())
    return u - log_z, log_z


def grid_log_likelihood(log_p: np.ndarray, x: np.ndarray, lo: float, hi: float, n: int) -> float:
    """Mean log-density (nats) of points x [N, 2] under a grid density log p [n*n] (each point's cell;
    points outside the box count in the nearest edge cell)."""
    ij = np.clip(((x - lo) / (hi - lo) * n).astype(int), 0, n - 1)
    return float(np.mean(log_p[ij[:, 1] * n + ij[:, 0]]))


def density_integral(log_p: np.ndarray, area: float) -> float:
    """The midpoint-rule integral sum exp(log p) * area of a density on the grid cells (1 for a
    normalised density whose mass lies inside the grid)."""
    return float(np.exp(np.asarray(log_p, np.float64)).sum() * area)
