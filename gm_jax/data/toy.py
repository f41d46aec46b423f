"""2-D toy densities shared by the toy experiments (GAN, EBM, GMM and flows).

Each sampler draws from an explicit `numpy.random.Generator`, so a batch is a pure
function of the generator's seed (the experiments seed it with `[seed, step]`):

* `ring_of_gaussians`: K isotropic Gaussians of std `std`, equal weights, centred on
  a circle of radius `radius` (the "8 Gaussians" of the GAN mode-collapse literature,
  e.g. Metz et al. 2017, Sec. 3.1);
* `two_moons`: two interleaved half circles with Gaussian noise;
* `checkerboard`: uniform on the 8 black squares of a 4 x 4 board on [-2, 2]^2;
* `gaussian_1d`: N(mean, std^2) in one dimension (Goodfellow et al. 2014, Fig. 1).

`fresh_batches` turns a sampler into the endless, resumable training stream of
the toy experiments: batch s is drawn from `default_rng([seed, s])`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from gm_jax.data.pipeline import take_rows


def ring_centers(num_modes: int = 8, radius: float = 2.0) -> np.ndarray:
    """The mode centres of `ring_of_gaussians`, float64 [num_modes, 2] (mode k at angle 2 pi k / K)."""
    angles = 2 * np.pi * np.arange(num_modes) / num_modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], 1)


def ring_of_gaussians(rng: np.random.Generator, n: int, num_modes: int = 8, radius: float = 2.0,
                      std: float = 0.1) -> np.ndarray:
    """n points float32 [n, 2]: a uniformly chosen mode of `ring_centers` plus N(0, std^2 I) noise."""
    modes = rng.integers(0, num_modes, n)
    return (ring_centers(num_modes, radius)[modes] + std * rng.standard_normal((n, 2))).astype(np.float32)


_MOONS_SHIFT = np.array([0.5, 0.25])  # centres the pair of moons on the origin


def moon_curves(num: int = 2000, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Dense points on the noiseless upper and lower moons of `two_moons`, float64 [num, 2] each."""
    t = np.linspace(0, np.pi, num)
    upper = np.stack([np.cos(t), np.sin(t)], 1)
    lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
    return scale * (upper - _MOONS_SHIFT), scale * (lower - _MOONS_SHIFT)


def two_moons(rng: np.random.Generator, n: int, noise: float = 0.05, scale: float = 1.0) -> np.ndarray:
    """n points float32 [n, 2]: a uniform point of a uniformly chosen moon of `moon_curves(scale=scale)`,
    plus N(0, noise^2 I)."""
    t = rng.uniform(0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = scale * (np.stack([x, y], 1) - _MOONS_SHIFT)
    return (pts + noise * rng.standard_normal((n, 2))).astype(np.float32)


def checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    """n points float32 [n, 2], uniform on the 8 black squares of a 4 x 4 board on [-2, 2]^2 (density 1/8)."""
    x1 = rng.uniform(-2, 2, n)
    col = np.floor(x1 + 2).astype(int)  # 0..3
    row = 2 * rng.integers(0, 2, n) + (col % 2)  # a black square in that column
    x2 = row - 2 + rng.random(n)
    return np.stack([x1, x2], 1).astype(np.float32)


FLOW_PROBLEMS = ("two_moons", "eight_gaussians", "checkerboard")


def flow_problem(rng: np.random.Generator, n: int, problem: str, noise: float = 0.08,
                 mode_std: float = 0.15) -> np.ndarray:
    """n points float32 [n, 2] of the 2-D density problems the flows are compared on (all inside [-3, 3]^2):
    "two_moons" (`two_moons` at scale 1.5 with Gaussian `noise`), "eight_gaussians" (8 modes of std
    `mode_std` on a circle of radius 2), "checkerboard" (`checkerboard`).

    Raises:
      ValueError: an unknown problem.
    """
    if problem == "two_moons":
        return two_moons(rng, n, noise, scale=1.5)
    if problem == "eight_gaussians":
        return ring_of_gaussians(rng, n, 8, 2.0, mode_std)
    if problem == "checkerboard":
        return checkerboard(rng, n)
    raise ValueError(f"problem={problem!r}; valid choices: {list(FLOW_PROBLEMS)}")


def gaussian_1d(rng: np.random.Generator, n: int, mean: float = 4.0, std: float = 0.5) -> np.ndarray:
    """n points float32 [n, 1] of N(mean, std^2)."""
    return (mean + std * rng.standard_normal((n, 1))).astype(np.float32)


def fresh_batches(draw: Callable[[np.random.Generator, int], np.ndarray], seed: int, batch_size: int,
                  start_step: int = 0, rows: slice | None = None) -> Iterator[dict]:
    """Endless batches `{"x": draw(default_rng([seed, s]), batch_size)}` for s = start_step, start_step + 1, ...

    Each batch is a pure function of (seed, step), so a resumed run sees the same data. With `rows` (this
    process's share, `gm_jax.data.pipeline`) every process still draws the whole batch (one generator
    stream; toy points are cheap) and keeps its rows.
    """
    step = start_step
    while True:
        yield take_rows({"x": draw(np.random.default_rng([seed, step]), batch_size)}, rows)
        step += 1
