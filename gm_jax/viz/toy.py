"""Figures of the 2-D (and 1-D) toy problems: samples over the modes, densities and energies on a grid,
Langevin chains, mixture ellipses. Every function writes one PNG (matplotlib, Agg) and returns nothing."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gm_jax.viz import pyplot


def _square(ax, lo: float, hi: float) -> None:
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal")


def _save(fig, path, plt) -> None:
    fig.tight_layout()
    fig.savefig(Path(path), dpi=90)
    plt.close(fig)


def save_ring_snapshots(path, panels, centers: np.ndarray, lim: float) -> None:
    """Samples of a 2-D generator at several steps, over the ring's modes.

    Args:
      panels: (step, points float [N, 2]) pairs, one panel each.
      centers: the modes [K, 2] (red crosses).
      lim: the axes show [-lim, lim]^2.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for ax, (step, x) in zip(axes[0], panels):
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, label="G(z)")
        ax.scatter(*centers.T, marker="x", c="r", s=30, label="modes")
        _square(ax, -lim, lim)
        ax.set_title(f"step {step}")
    axes[0][0].legend(loc="upper left", fontsize=7)
    _save(fig, path, plt)


def save_1d_snapshots(path, panels, grid: np.ndarray, p_data: np.ndarray) -> None:
    """A 1-D GAN at several steps: p_data (dashed), the histogram of G(z) and D(x) on `grid`.

    Args:
      panels: (step, samples float [N, 1], D(x) on the grid float [len(grid)]) triples.
      grid: float [G] points; p_data: the data density on them.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), squeeze=False)
    for ax, (step, x, d) in zip(axes[0], panels):
        ax.plot(grid, p_data, "k--", label="p_data")
        ax.hist(x[:, 0], bins=60, range=(grid[0], grid[-1]), density=True, alpha=0.5, label="G(z)")
        ax.plot(grid, d, "b", label="D(x)")
        ax.set_ylim(0, max(1.05, p_data.max() * 1.1))
        ax.set_title(f"step {step}")
    axes[0][0].legend(loc="upper left", fontsize=7)
    _save(fig, path, plt)


def save_samples(path, x: np.ndarray, title: str, centers: np.ndarray | None = None) -> None:
    """Samples float [N, 2] as a scatter over the modes `centers` [K, 2], or [N, 1] as a histogram."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if x.shape[1] == 2:
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5, label="G(z)")
        if centers is not None:
            ax.scatter(*centers.T, marker="x", c="r", s=40, label="modes")
        ax.set_aspect("equal")
    else:
        ax.hist(x[:, 0], bins=60, density=True, alpha=0.6, label="G(z)")
    ax.legend(fontsize=7)
    ax.set_title(title)
    _save(fig, path, plt)


def save_energy_landscape(path, data: np.ndarray, energy: np.ndarray, density: np.ndarray, samples: np.ndarray,
                          box: tuple[float, float], data_title: str, samples_title: str) -> None:
    """Three panels over the box: the data, the energy E(x) [n, n] and the grid-normalised
    density exp(-E)/Z [n, n] (rows = y) with the model's samples on top."""
    plt = pyplot()
    lo, hi = box
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    ext = (lo, hi, lo, hi)
    axes[0].scatter(data[:, 0], data[:, 1], s=1, alpha=0.4)
    axes[0].set_title(data_title, fontsize=9)
    im = axes[1].imshow(energy, origin="lower", extent=ext, cmap="viridis")
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[1].set_title("energy E(x)", fontsize=9)
    axes[2].imshow(density, origin="lower", extent=ext, cmap="magma")
    axes[2].scatter(samples[:, 0], samples[:, 1], s=1, c="c", alpha=0.5)
    axes[2].set_title(samples_title, fontsize=9)
    for ax in axes:
        _square(ax, lo, hi)
    _save(fig, path, plt)


def save_chains(path, trajectory: np.ndarray, shown, box: tuple[float, float]) -> None:
    """Langevin chains [K, N, 2] at the iterates `shown` (0-based), one panel each."""
    plt = pyplot()
    lo, hi = box
    fig, axes = plt.subplots(1, len(shown), figsize=(3 * len(shown), 3))
    for ax, s in zip(axes, shown):
        ax.scatter(trajectory[s, :, 0], trajectory[s, :, 1], s=1)
        _square(ax, lo, hi)
        ax.set_title(f"Langevin step {s + 1}", fontsize=9)
    _save(fig, path, plt)


def ellipse(mean, cov, num_std: float = 2.0, num_points: int = 100) -> np.ndarray:
    """Points float [num_points, 2] on the `num_std`-sigma contour of a 2-D Gaussian."""
    vals, vecs = np.linalg.eigh(np.asarray(cov, np.float64))
    t = np.linspace(0, 2 * np.pi, num_points)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    return np.asarray(mean)[None] + num_std * circle @ (vecs * np.sqrt(np.maximum(vals, 0))).T


def save_mixture_ellipses(path, data: np.ndarray, means: np.ndarray, covs: np.ndarray, weights: np.ndarray,
                          true_means: np.ndarray, lim: float, title: str) -> None:
    """Training data, each component's 1- and 2-sigma ellipse (covs full [K, 2, 2]) and weight, true means."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(data[:, 0], data[:, 1], s=1, alpha=0.3, c="gray", label="training data")
    for k in range(len(means)):
        for s, ls in ((1, "-"), (2, "--")):
            e = ellipse(means[k], covs[k], s)
            ax.plot(e[:, 0], e[:, 1], ls, c=f"C{k % 10}", lw=1)
        ax.annotate(f"{weights[k]:.3f}", means[k] * 1.25, fontsize=7, ha="center", va="center")
    ax.scatter(*true_means.T, marker="x", c="k", s=30, label="true means")
    _square(ax, -lim, lim)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9)
    _save(fig, path, plt)


def save_component_samples(path, x: np.ndarray, components: np.ndarray, lim: float, title: str) -> None:
    """Samples [N, 2] coloured by their mixture component int [N]."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(x[:, 0], x[:, 1], s=2, c=[f"C{k % 10}" for k in components])
    _square(ax, -lim, lim)
    ax.set_title(title, fontsize=9)
    _save(fig, path, plt)


def save_density_comparison(path, data: np.ndarray, density: np.ndarray, samples: np.ndarray, lim: float,
                            integral: float, title: str) -> None:
    """Data histogram, a learned density on the grid [n, n] (rows = y) and a histogram of model samples."""
    plt = pyplot()
    ext = (-lim, lim, -lim, lim)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    axes[0].hist2d(data[:, 0], data[:, 1], bins=200, range=[[-lim, lim], [-lim, lim]], cmap="viridis")
    axes[0].set_title("data (histogram)")
    axes[1].imshow(density, origin="lower", extent=ext, cmap="viridis")
    axes[1].set_title(f"learned density (integral {integral:.4f})")
    axes[2].hist2d(samples[:, 0], samples[:, 1], bins=200, range=[[-lim, lim], [-lim, lim]], cmap="viridis")
    axes[2].set_title("model samples (histogram)")
    for ax in axes:
        ax.set_aspect("equal")
    fig.suptitle(title)
    _save(fig, path, plt)


def save_samples_over_data(path, data: np.ndarray, samples: np.ndarray, lim: float, title: str) -> None:
    """Up to 2,000 data points and 2,000 model samples in one scatter."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(data[:2000, 0], data[:2000, 1], s=2, alpha=0.4, label="data")
    ax.scatter(samples[:2000, 0], samples[:2000, 1], s=2, alpha=0.4, label="samples")
    _square(ax, -lim, lim)
    ax.legend(fontsize=7, markerscale=4)
    ax.set_title(title)
    _save(fig, path, plt)


def save_density_columns(path, data: np.ndarray, densities, lim: float, title: str) -> None:
    """The data histogram, then one learned density per column on the grid [-lim, lim]^2 (rows = y): the
    survey's comparison of flows on 2-D problems (e.g. data / RealNVP / FFJORD).

    Args:
      data: float [N, 2] points.
      densities: [(title, p float [n, n])].
    """
    plt = pyplot()
    ext = (-lim, lim, -lim, lim)
    fig, axes = plt.subplots(1, 1 + len(densities), figsize=(4 * (1 + len(densities)), 4))
    axes[0].hist2d(data[:, 0], data[:, 1], bins=200, range=[[-lim, lim], [-lim, lim]], cmap="viridis")
    axes[0].set_title("data (histogram)")
    for ax, (name, density) in zip(axes[1:], densities):
        ax.imshow(density, origin="lower", extent=ext, cmap="viridis")
        ax.set_title(name, fontsize=9)
    for ax in axes:
        ax.set_aspect("equal")
    fig.suptitle(title)
    _save(fig, path, plt)
