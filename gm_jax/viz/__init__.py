"""Every figure and file a run writes besides its metrics: PNG image grids (Pillow), matplotlib plots.

This package is the only place that imports matplotlib (through `pyplot()`,
which selects the non-interactive Agg backend unless pyplot is in use already). Family-specific writers
live in its modules (e.g. audio and MIDI writers, 2-D density plots); models
and experiments never import matplotlib themselves.
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def pyplot():
    """`matplotlib.pyplot` for writing figures to files: with the non-interactive Agg backend (no screen
    needed) unless pyplot was imported already (a notebook's inline backend is left as it is, so its own
    figures keep showing; the writers here close every figure they save)."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid(images, cols: int | None = None, pad: int = 2, max_value: float = 1.0) -> Image.Image:
    """Tile images [N, H, W, C] (C = 1 or 3) into one grayscale/RGB picture.

    Args:
      images: array [N, H, W, C], values in [0, max_value] (floats are clipped).
      cols: columns (default: ceil(sqrt(N))).
      pad: pixels of black between tiles.
      max_value: the value shown as white (1 for probabilities / binary, 255 for 8-bit).

    Returns:
      a PIL image.

    Raises:
      ValueError: `images` is not 4-D with 1 or 3 channels.
    """
    x = np.asarray(images, np.float64)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"image_grid expects [N, H, W, 1 or 3], got shape {x.shape}")
    n, h, w, c = x.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c))
    for i in range(n):
        r, q = divmod(i, cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = x[i]
    pixels = np.clip(np.round(grid / max_value * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if c == 1 else pixels)


def save_image_grid(path: str | Path, images, cols: int | None = None, max_value: float = 1.0, scale: int = 2) -> Path:
    """Write `image_grid(images, cols, max_value=max_value)` to `path` (PNG), upscaled by `scale`."""
    img = image_grid(images, cols, max_value=max_value)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    img.save(path)
    return path


def save_metric_curves(metrics_path, path, series, xlabel: str = "step", ylabel: str = "", title: str = "") -> None:
    """Plot metrics of a `metrics.jsonl` against the step (matplotlib PNG at `path`).

    Args:
      metrics_path: the run's metrics.jsonl.
      path: output PNG.
      series: (metric key, legend label) pairs; keys missing from every record are skipped.
      xlabel, ylabel, title: axis labels (give the units) and title.
    """
    from gm_jax.training.metrics import read_metrics

    plt = pyplot()

    records = read_metrics(metrics_path)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, label in series:
        pts = [(r["step"], r[k]) for r in records if k in r]
        if pts:
            ax.plot(*zip(*pts), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
