"""Paired image metrics: how close an output image is to its target (super-resolution, translation).

PSNR and SSIM come from scikit-image (`skimage.metrics.peak_signal_noise_ratio`,
`structural_similarity`, Wang et al. 2004 with a 7x7 uniform window); L1 is the mean absolute
error. All three compare uint8 images (0..255) image by image and average over the images, as
the super-resolution literature reports them (Ledig et al. 2017, Table 2).
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _check_pair(targets, outputs) -> tuple[np.ndarray, np.ndarray]:
    t, o = np.asarray(targets), np.asarray(outputs)
    if t.shape != o.shape or t.ndim != 4 or len(t) == 0:
        raise ValueError(f"paired metrics need targets and outputs of one shape [N >= 1, H, W, C], got {t.shape} "
                         f"and {o.shape}")
    for name, a in (("targets", t), ("outputs", o)):
        if a.dtype != np.uint8:
            raise ValueError(f"paired metrics compare uint8 images (0..255); {name} are {a.dtype}")
    return t, o


def psnr(targets, outputs) -> np.ndarray:
    """Peak signal-to-noise ratio of each image, dB: `10 log10(255^2 / MSE)` (inf for identical images).

    Args:
      targets, outputs: uint8 [N, H, W, C], 0..255.

    Returns:
      float64 [N].

    Raises:
      ValueError: shapes that differ or are not [N >= 1, H, W, C], or a dtype other than uint8.
    """
    t, o = _check_pair(targets, outputs)
    with np.errstate(divide="ignore"):  # identical images: MSE 0, PSNR inf
        return np.array([peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(t, o)])


def ssim(targets, outputs) -> np.ndarray:
    """Structural similarity of each image (Wang et al. 2004; 1 for identical images), per channel averaged.

    Args:
      targets, outputs: uint8 [N, H, W, C], 0..255, H and W >= 7 (the window).

    Returns:
      float64 [N] in [-1, 1].

    Raises:
      ValueError: as `psnr`.
    """
    t, o = _check_pair(targets, outputs)
    return np.array([structural_similarity(a, b, data_range=255, channel_axis=-1) for a, b in zip(t, o)])


def paired_metrics(targets, outputs) -> dict[str, float]:
    """`psnr_db` (mean of the finite per-image PSNRs; inf when every pair is identical), `ssim` (mean) and
    `l1` (mean absolute error in [0, 1] units, i.e. / 255) of outputs against their targets.

    Args:
      targets, outputs: uint8 [N, H, W, C], 0..255.

    Raises:
      ValueError: as `psnr`.
    """
    p = psnr(targets, outputs)
    finite = p[np.isfinite(p)]
    l1 = np.mean(np.abs(np.asarray(targets, np.float64) - np.asarray(outputs, np.float64))) / 255.0
    return {"psnr_db": float(finite.mean()) if finite.size else float("inf"),
            "ssim": float(ssim(targets, outputs).mean()), "l1": float(l1)}
