"""Sample quality with the project's MNIST classifier: MNIST-FID, MNIST-IS, nearest neighbours.

These are **MNIST-feature variants**, not the Inception-v3 numbers of the
literature (which are not comparable):

* **MNIST-FID**: the Fréchet distance (Heusel et al. 2017, Eq. 6 / Dowson &
  Landau 1982) between Gaussians fitted to the 128-d penultimate features of
  `gm_jax.evaluation.classifier` on two image sets:
  `||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)`, in float64. The
  matrix square roots come from symmetric eigendecompositions with negative
  eigenvalues (round-off) clipped to 0, so near-singular covariances (dead ReLU
  features, few samples) give a finite, real answer instead of the complex
  output `scipy.linalg.sqrtm` can return. Generated samples are compared with
  the 60,000 training images; the real reference is the 10,000 test images vs
  the training images (`real_test_vs_train_mnist_fid`).
* **MNIST-IS**: the Inception Score (Salimans et al. 2016, Sec. 4)
  `exp(E_x KL(p(y|x) || p(y)))` with the classifier's softmax, in [1, 10]; the real
  reference is the test set's (`real_test_mnist_is`).
* **nearest neighbours**: each generated image beside its L2-closest training
  image (pixel space), to show samples are not copies.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gm_jax import viz


# -- Fréchet distance ----------------------------------------------------------------------------
def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean float64 [d], covariance float64 [d, d], unbiased) of features [N, d], N >= 2.

    Raises:
      ValueError: not 2-D or fewer than 2 rows.
    """
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"feature_stats expects features of shape [N >= 2, d], got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root by eigendecomposition (negative round-off eigenvalues -> 0)."""
    sym = (matrix + matrix.T) / 2.0
    w, v = np.linalg.eigh(sym)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2), float64.

    `||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1^1/2 sigma2 sigma1^1/2)^1/2)`
    (Dowson & Landau 1982; the FID of Heusel et al. 2017 with these features). The trace
    term uses eigenvalues of the symmetric PSD matrix sigma1^1/2 sigma2 sigma1^1/2, which
    equal those of sigma1 sigma2, so singular covariances are handled exactly.

    Args:
      mu1, mu2: float [d] means; sigma1, sigma2: float [d, d] covariances (symmetric PSD).

    Returns:
      a float >= 0 (clipped at 0 against round-off), in squared feature units.

    Raises:
      ValueError: mismatched or non-square shapes, or non-finite values.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.shape != (d,) or mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"frechet_distance expects means [d] and covariances [d, d]; got {mu1.shape}, "
                         f"{s1.shape}, {mu2.shape}, {s2.shape}")
    if not all(np.all(np.isfinite(a)) for a in (mu1, mu2, s1, s2)):
        raise ValueError("frechet_distance got non-finite means or covariances")
    root1 = _psd_sqrt(s1)
    inner = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2.0)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu1 - mu2
    return max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt), 0.0)


def mnist_fid(classifier, images, reference: tuple[np.ndarray, np.ndarray]) -> float:
    """MNIST-FID of uint8 images [N, 28, 28, 1] (0..255) against reference feature stats (mean, cov)."""
    return frechet_distance(*feature_stats(classifier.features(images)), *reference)


# -- Inception score -----------------------------------------------------------------------------
def inception_score(probs, splits: int = 1) -> float:
    """`exp(mean_x KL(p(y|x) || p(y)))` with p(y) the mean of p(y|x) over each split (Salimans et al. 2016).

    Args:
      probs: float [N, K] class probabilities (rows sum to 1).
      splits: the N rows are cut into `splits` equal parts; the mean score over parts is returned.

    Returns:
      a float in [1, K].

    Raises:
      ValueError: not 2-D, negative entries, rows that do not sum to 1, or N < splits.
    """
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or p.shape[0] < splits or splits < 1:
        raise ValueError(f"inception_score expects probabilities [N >= splits, K], got {p.shape}, splits={splits}")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("inception_score expects rows of non-negative probabilities summing to 1")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores))


def mnist_is(classifier, images) -> float:
    """MNIST-IS of uint8 images [N, 28, 28, 1] (0..255): `inception_score` of the classifier's softmax."""
    return inception_score(classifier.probs(images))


def mnist_fid_and_is(classifier, images, reference: tuple[np.ndarray, np.ndarray]) -> tuple[float, float, np.ndarray]:
    """MNIST-FID (against the reference feature stats (mean, cov)) and MNIST-IS of uint8 images [N, 28, 28, 1]
    (0..255) from one pass of the classifier, and its logits float [N, 10] (for label and class statistics)."""
    from gm_jax.evaluation.classifier import softmax64

    logits, feats = classifier.outputs(images)
    return frechet_distance(*feature_stats(feats), *reference), inception_score(softmax64(logits)), logits


# -- class proportions ---------------------------------------------------------------------------
def class_share_kl(predicted, reference_labels, num_classes: int = 10) -> tuple[np.ndarray, float]:
    """The classes' shares among samples and their KL divergence from a reference set's, in nats.

    `KL(q || p) = sum_k q_k log(q_k / p_k)`, q the shares of the predicted classes of the
    samples, p those of the reference labels: the mode-distribution KL of PacGAN (Lin et al.
    2018, Sec. 5), 0 when a generator makes each class as often as the data does.

    Args:
      predicted: int [N] class predicted for each sample (e.g. the classifier's argmax).
      reference_labels: int [M] labels of real data (e.g. the test set).
      num_classes: K.

    Returns:
      (shares float64 [K] summing to 1, KL in nats >= 0).

    Raises:
      ValueError: empty inputs, labels outside 0..K-1, or a class predicted that the reference lacks.
    """
    q_idx, p_idx = np.asarray(predicted).ravel(), np.asarray(reference_labels).ravel()
    if q_idx.size == 0 or p_idx.size == 0:
        raise ValueError("class_share_kl needs at least one sample and one reference label")
    for name, a in (("predicted", q_idx), ("reference_labels", p_idx)):
        if not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= num_classes:
            raise ValueError(f"class_share_kl: {name} must be integers in 0..{num_classes - 1}")
    q = np.bincount(q_idx, minlength=num_classes) / q_idx.size
    p = np.bincount(p_idx, minlength=num_classes) / p_idx.size
    if np.any((q > 0) & (p == 0)):
        raise ValueError("class_share_kl: a predicted class never occurs in the reference labels (infinite KL)")
    ratio = np.where(q > 0, q / np.where(p > 0, p, 1.0), 1.0)
    return q, float(np.sum(q * np.log(ratio)))


def class_resampled_features(features, labels, shares, num: int, seed: int = 0) -> np.ndarray:
    """Real features redrawn in given class proportions: round(shares[k] * num) rows of class k.

    The MNIST-FID of these against the training set is the part of a generator's MNIST-FID
    that its class proportions alone explain (real images, the generator's class mix).

    Args:
      features: float [N, d] features of real images; labels: int [N] their classes.
      shares: float [K] class proportions (e.g. from `class_share_kl`), summing to 1.
      num: rows to draw in all (about; per-class counts are rounded).
      seed: numpy seed of the draws (with replacement within each class).

    Returns:
      float [~num, d].

    Raises:
      ValueError: mismatched lengths, shares that are negative or do not sum to 1, or a class
        with a positive share but no real examples.
    """
    f, y, q = np.asarray(features), np.asarray(labels).ravel(), np.asarray(shares, np.float64)
    if f.ndim != 2 or f.shape[0] != y.shape[0] or num < 1:
        raise ValueError(f"class_resampled_features expects features [N, d] and labels [N], num >= 1; got "
                         f"{f.shape}, {y.shape}, num={num}")
    if np.any(q < 0) or not np.isclose(q.sum(), 1.0, atol=1e-6):
        raise ValueError("class_resampled_features: shares must be non-negative and sum to 1")
    rng = np.random.default_rng(seed)
    rows = []
    for k, share in enumerate(q):
        count = int(round(share * num))
        if count == 0:
            continue
        members = np.flatnonzero(y == k)
        if members.size == 0:
            raise ValueError(f"class_resampled_features: class {k} has share {share} but no real examples")
        rows.append(rng.choice(members, count))
    return f[np.concatenate(rows)]


# -- real-data references ------------------------------------------------------------------------
def save_reference_stats(path: str | Path, mean: np.ndarray, cov: np.ndarray) -> None:
    """Write the training-set feature stats (float64) to `path` (.npz)."""
    np.savez(Path(path), mean=np.asarray(mean, np.float64), cov=np.asarray(cov, np.float64))


def load_reference_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mean [d], cov [d, d]) float64 of the training features, from `save_reference_stats`.

    Raises:
      FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the MNIST classifier cache has no reference statistics")
    with np.load(path) as f:
        return f["mean"], f["cov"]


def real_references(classifier, test_images, train_stats) -> dict:
    """The real-data reference values: `real_test_mnist_is` (MNIST-IS of the test images) and
    `real_test_vs_train_mnist_fid` (MNIST-FID of the test images against the train stats)."""
    return {"real_test_mnist_is": mnist_is(classifier, test_images),
            "real_test_vs_train_mnist_fid": mnist_fid(classifier, test_images, train_stats)}


# -- nearest neighbours --------------------------------------------------------------------------
def nearest_neighbours(samples, train_images, chunk: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Index and L2 distance of the closest training image to each sample (pixel space, 0..255 scale).

    Args:
      samples: [N, H, W, C] images; train_images: [M, H, W, C] of the same shape and scale.

    Returns:
      (indices int [N], distances float [N]).

    Raises:
      ValueError: the image shapes differ.
    """
    x = np.asarray(samples, np.float32).reshape(len(samples), -1)
    t = np.asarray(train_images)
    if np.shape(samples)[1:] != t.shape[1:]:
        raise ValueError(f"samples {np.shape(samples)} and training images {t.shape} differ in shape")
    best_d = np.full(len(x), np.inf)
    best_i = np.zeros(len(x), np.int64)
    xx = (x * x).sum(1)
    for start in range(0, len(t), chunk):
        tc = t[start:start + chunk].reshape(-1, x.shape[1]).astype(np.float32)
        d2 = xx[:, None] + (tc * tc).sum(1)[None] - 2.0 * x @ tc.T
        i = d2.argmin(1)
        d = d2[np.arange(len(x)), i]
        better = d < best_d
        best_d[better], best_i[better] = d[better], i[better] + start
    return best_i, np.sqrt(np.maximum(best_d, 0.0))


def save_nearest_neighbour_figure(path: str | Path, samples, train_images, pairs_per_row: int = 4,
                                  max_value: float = 255.0) -> dict:
    """Write a PNG grid where each generated sample is followed by its L2-nearest training image.

    Args:
      path: output PNG.
      samples: [N, H, W, C] generated images (e.g. uint8 0..255).
      train_images: [M, H, W, C] training images on the same scale.
      pairs_per_row: (sample, neighbour) pairs per row.
      max_value: the value shown as white.

    Returns:
      {"nn_mean_l2": mean distance, "nn_min_l2": smallest distance} (pixel units of the input scale).
    """
    idx, dist = nearest_neighbours(samples, train_images)
    neighbours = np.asarray(train_images)[idx]
    pairs = np.stack([np.asarray(samples, np.float64), np.asarray(neighbours, np.float64)], axis=1)
    viz.save_image_grid(path, pairs.reshape(-1, *pairs.shape[2:]), cols=2 * pairs_per_row, max_value=max_value)
    return {"nn_mean_l2": float(dist.mean()), "nn_min_l2": float(dist.min())}
