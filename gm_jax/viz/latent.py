"""Figures of latent codes (PNG): an autoencoder's test-set codes coloured by class beside samples of its prior;
the data manifold of a 2-D latent space (Kingma & Welling 2014, Fig. 4); images along paths in latent space."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gm_jax.viz import image_grid, pyplot


def _save(plt, fig, path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def save_latent_scatter(path, codes, labels, prior_samples=None, prior_components=None, title: str = "",
                        prior_title: str = "p(z)", lim: float | None = None, num_classes: int = 10) -> Path:
    """The codes q(z) of a labelled set as a scatter coloured by class (tab10), optionally beside prior samples.

    Codes of more than 2 dimensions are shown in their first two (the axes say so).

    Args:
      path: the PNG to write.
      codes: float [N, d], d >= 2 (d = 1 is plotted against zeros).
      labels: int [N] classes 0..num_classes-1 (the colours).
      prior_samples: float [M, d] samples of p(z) for a second panel, or None (one panel).
      prior_components: int [M] the mixture component of each prior sample (coloured like the labels), or None.
      title, prior_title: the panels' titles.
      lim: both panels show [-lim, lim]^2 (default: the 0.5 / 99.5 percentiles of the codes and the
        prior samples, symmetric, with a margin).
      num_classes: the colour scale's classes.

    Returns:
      the path written.

    Raises:
      ValueError: codes not [N, d] or labels not [N].
    """
    codes, labels = np.asarray(codes, np.float64), np.asarray(labels)
    if codes.ndim != 2 or labels.shape != (codes.shape[0],):
        raise ValueError(f"save_latent_scatter expects codes [N, d] and labels [N], got {codes.shape}, {labels.shape}")
    if codes.shape[1] == 1:
        codes = np.concatenate([codes, np.zeros_like(codes)], 1)
    panels = [(codes, labels, title)]
    if prior_samples is not None:
        prior = np.asarray(prior_samples, np.float64).reshape(len(prior_samples), -1)
        if prior.shape[1] == 1:
            prior = np.concatenate([prior, np.zeros_like(prior)], 1)
        panels.append((prior, None if prior_components is None else np.asarray(prior_components), prior_title))
    if lim is None:
        pts = np.concatenate([p[:, :2] for p, _, _ in panels])
        lim = 1.1 * float(np.max(np.abs(np.percentile(pts, [0.5, 99.5], axis=0))))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5), squeeze=False)
    for ax, (pts, colours, name) in zip(axes[0], panels):
        if colours is None:
            ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.4, c="0.3")
        else:
            sc = ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.6, c=colours, cmap="tab10", vmin=-0.5,
                            vmax=num_classes - 0.5)
            fig.colorbar(sc, ax=ax, ticks=range(num_classes), fraction=0.046, pad=0.04)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        dims = "" if codes.shape[1] <= 2 else " (first two of %d dimensions)" % codes.shape[1]
        ax.set_xlabel("z[0]" + dims)
        ax.set_ylabel("z[1]")
        ax.set_title(name, fontsize=9)
    return _save(plt, fig, path)


def save_manifold(path, images, quantiles, title: str = "", max_value: float = 1.0) -> Path:
    """The learned data manifold of a 2-D latent space (Kingma & Welling 2014, Fig. 4): the decoder's output at
    each point of an n x n grid of z, with the grid's z values on the axes.

    Args:
      path: the PNG to write.
      images: [n * n, H, W, C] in [0, max_value], row-major: image r * n + c decodes z = (quantiles[c],
        quantiles[n - 1 - r]) (z[1] grows upwards).
      quantiles: float [n], the grid's coordinates (e.g. Gaussian inverse-CDF quantiles).
      title: the figure's title.
      max_value: the value shown as white.

    Returns:
      the path written.

    Raises:
      ValueError: images not [n * n, H, W, C] for n = len(quantiles).
    """
    images, q = np.asarray(images), np.asarray(quantiles, np.float64)
    n = len(q)
    if images.ndim != 4 or len(images) != n * n:
        raise ValueError(f"save_manifold expects [{n * n}, H, W, C] images for {n} quantiles, got {images.shape}")
    h, w = images.shape[1:3]
    grid = np.asarray(image_grid(images, cols=n, pad=0, max_value=max_value))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255)
    every = max(1, n // 5)
    ax.set_xticks([c * w + w / 2 for c in range(0, n, every)])
    ax.set_xticklabels([f"{v:.2f}" for v in q[::every]])
    ax.set_yticks([r * h + h / 2 for r in range(0, n, every)])
    ax.set_yticklabels([f"{q[n - 1 - r]:.2f}" for r in range(0, n, every)])
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, path)


def save_interpolations(path, panels, title: str = "", max_value: float = 1.0) -> Path:
    """Images along paths in latent space, one panel per kind of path (e.g. linear and spherical), one row
    per path.

    Args:
      path: the PNG to write.
      panels: (name, images [rows, cols, H, W, C] in [0, max_value]) pairs, all of the same shape.
      title: the figure's title.
      max_value: the value shown as white.

    Returns:
      the path written.

    Raises:
      ValueError: no panels, or a panel not [rows, cols, H, W, C].
    """
    panels = [(name, np.asarray(x)) for name, x in panels]
    if not panels or any(x.ndim != 5 for _, x in panels):
        raise ValueError("save_interpolations expects (name, images [rows, cols, H, W, C]) panels, got "
                         f"{[(name, x.shape) for name, x in panels]}")
    rows, cols = panels[0][1].shape[:2]
    plt = pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(0.55 * cols + 0.6, 0.55 * rows * len(panels) + 0.8),
                             squeeze=False)
    for ax, (name, x) in zip(axes[:, 0], panels):
        ax.imshow(np.asarray(image_grid(x.reshape(-1, *x.shape[2:]), cols=x.shape[1], max_value=max_value)),
                  cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, fontsize=9)
    fig.suptitle(title, fontsize=9)
    return _save(plt, fig, path)
