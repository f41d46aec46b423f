"""Figures of latent codes: an autoencoder's test-set codes coloured by class beside samples of its prior (PNG)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gm_jax.viz import pyplot


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
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
