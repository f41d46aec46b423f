"""Image figures: sample grids, reconstructions, temperature sweeps, completions, side-by-side comparisons (PNG)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gm_jax.viz import image_grid, pyplot, save_image_grid


def save_samples(path, images, max_value: float = 1.0, cols: int = 8) -> Path:
    """The sample grid every image model writes (`samples.png`): images [N, H, W, C] in [0, max_value], `cols` per row."""
    return save_image_grid(path, np.asarray(images), cols=cols, max_value=max_value)


def save_reconstructions(path, images, recons, cols: int = 8) -> Path:
    """Rows of `cols` images [N, H, W, C] in [0, 1] alternating with their reconstructions (N a multiple of `cols`)."""
    images, recons = np.asarray(images), np.asarray(recons)
    rows = np.concatenate([np.stack([images[r * cols:(r + 1) * cols], recons[r * cols:(r + 1) * cols]])
                           for r in range(len(images) // cols)]).reshape(-1, *images.shape[1:])
    return save_image_grid(path, rows, cols=cols)


def save_temperature_sweep(path, temperatures, rows, title: str = "", max_value: float = 255.0) -> None:
    """One row of samples [n, H, W, C] per temperature T, labelled `T=...` (the same z scaled by T per column)."""
    plt = pyplot()
    temps = list(temperatures)
    fig, axes = plt.subplots(len(temps), 1, figsize=(7, 0.8 * len(temps) + 0.4))
    for ax, t, row in zip(np.atleast_1d(axes), temps, rows):
        ax.imshow(np.asarray(image_grid(np.asarray(row), cols=len(row), max_value=max_value)), cmap="gray",
                  vmin=0, vmax=255)
        ax.set_ylabel(f"T={t:g}", rotation=0, labelpad=22, va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=100)
    plt.close(fig)


def save_completions(path, images, mask, completions, title: str = "") -> Path:
    """One row per image: the image, what the model saw (missing pixels grey), then its completions.

    Args:
      images: [K, H, W, C] in [0, 1] (binary pixels).
      mask: bool [H, W] or [K, H, W, C], True = observed.
      completions: [K, M, H, W, C] in [0, 1], M completions per image.
      title: the figure's title.
    """
    images, completions = np.asarray(images, np.float32), np.asarray(completions, np.float32)
    m = completions.shape[1]
    observed = np.asarray(mask, bool)
    observed = np.broadcast_to(observed[None, :, :, None] if observed.ndim == 2 else observed, images.shape)
    seen = np.where(observed, images, 0.5)
    rows = np.concatenate([images[:, None], seen[:, None], completions], axis=1).reshape(-1, *images.shape[1:])
    return _save_labelled_columns(path, rows, ["digit", "observed"] + [f"#{i + 1}" for i in range(m)], title,
                                  width=0.75 * (m + 2) + 0.4)


def _save_labelled_columns(path, rows, labels, title: str, width: float, max_value: float = 1.0) -> Path:
    """Images [K * len(labels), H, W, C] (row-major: one row of len(labels) per example) as one grid with a
    label under each column."""
    plt = pyplot()
    cols, w = len(labels), rows.shape[2]
    fig, ax = plt.subplots(figsize=(width, 0.75 * (len(rows) // cols) + 0.6))
    ax.imshow(np.asarray(image_grid(rows, cols=cols, max_value=max_value)), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([(i + 0.5) * (w + 2) for i in range(cols)])
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=100)
    plt.close(fig)
    return Path(path)


def save_comparison(path, columns, title: str = "", max_value: float = 255.0) -> Path:
    """One row per example, one titled column per method: e.g. input / bicubic / MSE / SRGAN / target.

    Args:
      columns: [(title, images [K, H, W, C] in [0, max_value])], the same K for every column; an input
        of a smaller size (a 7x7 low-resolution image) is shown enlarged to the largest column's H x W
        by pixel repetition.
      title: the figure's title.
    """
    h, w = max(np.asarray(images).shape[1:3] for _, images in columns)
    cols = []
    for _, images in columns:
        x = np.asarray(images, np.float32)
        if x.shape[1:3] != (h, w):
            x = np.repeat(np.repeat(x, h // x.shape[1], axis=1), w // x.shape[2], axis=2)
        cols.append(x)
    rows = np.stack(cols, axis=1).reshape(-1, *cols[0].shape[1:])
    return _save_labelled_columns(path, rows, [name for name, _ in columns], title, 0.8 * len(cols) + 0.6, max_value)
