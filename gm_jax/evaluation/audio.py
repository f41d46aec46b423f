"""Audio evaluation: likelihood baselines on mu-law classes and checks of generated recordings.

* `iid_baseline`: an i.i.d. model of the samples, the add-one smoothed histogram of the
  training mu-law classes (its test NLL is the cross-entropy of the class histogram);
* `linear_ar_baseline`: a linear autoregressive model of order p on the companded amplitude
  with Gaussian noise, discretised to the 256 mu-law classes (least squares on train);
* `audio_checks`: RMS and spectral flatness (Wiener entropy) of generated recordings against
  the real test recordings and white noise of the same RMS;
* `silent_crop_share`: how many training crops are near-silent (what placing crops in the
  voiced part, `gm_jax.data.audio.crop_starts`, avoids).

Every NLL is in nats per sample (sum over all test samples / their number).
"""
from __future__ import annotations

import math

import jax
import numpy as np
from scipy import signal, special

from gm_jax.data import audio


def iid_baseline(train_codes, test_codes) -> float:
    """Test NLL (nats per sample) of the add-one smoothed histogram of the 256 training mu-law classes."""
    counts = np.bincount(np.concatenate(train_codes), minlength=audio.NUM_CLASSES) + 1.0
    logp = np.log(counts / counts.sum())
    return float(-logp[np.concatenate(test_codes)].mean())


def _companded(codes: np.ndarray) -> np.ndarray:
    return 2.0 * np.asarray(codes, np.float64) / audio.MU - 1.0


def _ar_design(y: np.ndarray, order: int) -> np.ndarray:
    """[T, order] previous values y_{t-1} .. y_{t-order}, the zero-amplitude class (128) before the start."""
    pad = np.full(order, _companded(np.array([audio.ZERO_CLASS]))[0])
    yp = np.concatenate([pad, y])
    win = np.lib.stride_tricks.sliding_window_view(yp, order)[: len(y)]  # yp[t .. t+order-1] = y_{t-order}..y_{t-1}
    return win[:, ::-1]


def linear_ar_baseline(train_codes, test_codes, order: int) -> dict:
    """Linear AR(order) on the companded amplitude y = 2 q / 255 - 1 with Gaussian noise, discretised to the
    256 mu-law classes: P(q | past) = Phi((e_{q+1} - m) / s) - Phi((e_q - m) / s), e_q = (2 q - 1) / 255 - 1,
    the outer edges at -inf / +inf; m = b + sum_k a_k y_{t-k}. Least squares on train, s = residual std.

    Args:
      train_codes, test_codes: lists of int mu-law classes [T_i] per recording.
      order: p, the number of past samples (zero amplitude before a recording's start).

    Returns:
      {"nll": test NLL in nats per sample, "sigma": s, "model": description}.
    """
    xtx = np.zeros((order + 1, order + 1))
    xty = np.zeros(order + 1)
    for c in train_codes:
        y = _companded(c)
        X = np.concatenate([_ar_design(y, order), np.ones((len(y), 1))], 1)
        xtx += X.T @ X
        xty += X.T @ y
    w = np.linalg.solve(xtx + 1e-6 * np.eye(order + 1), xty)
    sse, n = 0.0, 0
    for c in train_codes:
        y = _companded(c)
        r = y - np.concatenate([_ar_design(y, order), np.ones((len(y), 1))], 1) @ w
        sse += float(r @ r)
        n += len(y)
    sigma = math.sqrt(sse / n)
    total, count = 0.0, 0
    for c in test_codes:
        y = _companded(c)
        m = np.concatenate([_ar_design(y, order), np.ones((len(y), 1))], 1) @ w
        lo = np.where(c == 0, -np.inf, (2.0 * c - 1.0) / audio.MU - 1.0)
        hi = np.where(c == audio.MU, np.inf, (2.0 * c + 1.0) / audio.MU - 1.0)
        total -= float(_log_diff_ndtr((hi - m) / sigma, (lo - m) / sigma).sum())
        count += len(c)
    return {"nll": total / count, "sigma": sigma,
            "model": f"linear AR({order}) on the companded mu-law amplitude, Gaussian noise discretised to the "
                     f"256 classes, least squares on the training split"}


def _log_diff_ndtr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(a) - Phi(b)) for a > b, stable in both tails."""
    # use the upper tail where both are positive: Phi(a) - Phi(b) = Phi(-b) - Phi(-a)
    flip = b > 0
    a2, b2 = np.where(flip, -b, a), np.where(flip, -a, b)
    la, lb = special.log_ndtr(a2), special.log_ndtr(b2)
    return la + np.log1p(-np.exp(np.minimum(lb - la, -1e-300)))


def spectral_flatness(x: np.ndarray) -> float:
    """Wiener entropy of the Welch power spectrum (256-sample Hann segments, DC excluded): geometric mean /
    arithmetic mean, in (0, 1]; 1 for a flat (white) spectrum."""
    _, pxx = signal.welch(np.asarray(x, np.float64), fs=audio.SAMPLE_RATE, nperseg=min(256, len(x)))
    pxx = pxx[1:] + 1e-20
    return float(np.exp(np.mean(np.log(pxx))) / np.mean(pxx))


def rms(x: np.ndarray) -> float:
    """Root mean square of a waveform (float64)."""
    return float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64)))))


def audio_checks(generated: np.ndarray, real: list, key: jax.Array) -> dict:
    """RMS and spectral flatness of generated recordings [N, T] vs the real test recordings and white noise
    (Gaussian, `fold_in(key, 7)`, scaled to the generated RMS)."""
    real_rms = np.array([rms(a) for a in real])
    gen_rms = np.array([rms(a) for a in generated])
    lo, hi = np.percentile(real_rms, [5, 95])
    gen_flat = np.array([spectral_flatness(a) for a in generated])
    real_flat = np.array([spectral_flatness(a) for a in real])
    noise = np.asarray(jax.random.normal(jax.random.fold_in(key, 7), generated.shape)) * max(gen_rms.mean(), 1e-3)
    noise_flat = np.array([spectral_flatness(a) for a in noise])
    return {"generated_rms_median": float(np.median(gen_rms)), "generated_rms_min": float(gen_rms.min()),
            "generated_rms_max": float(gen_rms.max()),
            "real_test_rms_p5": float(lo), "real_test_rms_p95": float(hi),
            "real_test_rms_min": float(real_rms.min()), "real_test_rms_max": float(real_rms.max()),
            "generated_rms_share_in_real_p5_p95": float(np.mean((gen_rms >= lo) & (gen_rms <= hi))),
            "generated_rms_median_in_real_p5_p95": bool(lo <= np.median(gen_rms) <= hi),
            "generated_spectral_flatness_median": float(np.median(gen_flat)),
            "generated_spectral_flatness_max": float(gen_flat.max()),
            "real_test_spectral_flatness_median": float(np.median(real_flat)),
            "white_noise_spectral_flatness_median": float(np.median(noise_flat)),
            "generated_flatness_below_white_noise": bool(np.median(gen_flat) < np.median(noise_flat)),
            "generated_recordings": int(len(generated)),
            "generated_seconds_each": generated.shape[1] / audio.SAMPLE_RATE}


def silent_crop_share(recordings: dict, crop_length: int, batch_size: int, seed: int, num_batches: int,
                      threshold_db: float = -30.0) -> dict:
    """Share of training crops (batches 0 .. num_batches - 1, as `audio.voiced_crops` draws them) that are
    near-silent.

    Near-silent: the crop's RMS (over its real samples) is more than |threshold_db| dB below the loudest
    20-ms frame of its recording. Also the share under an absolute RMS of 0.005 (-46 dBFS), and the same
    shares for crops placed uniformly in the whole recording (what the voiced placement avoids).

    Args:
      recordings: from `audio.coded_recordings` (`audio`, `codes`, `voiced`).
    """
    d, n = recordings, crop_length
    lengths = [len(c) for c in d["codes"]]
    peak = np.array([audio.frame_rms(a).max() for a in d["audio"]])
    rel, ab, rel_u, ab_u = [], [], [], []
    for step in range(num_batches):
        rng = np.random.default_rng([seed, step])
        idx = rng.integers(0, len(d["audio"]), batch_size)
        starts = audio.crop_starts(rng, idx, d["voiced"], lengths, n)
        uni = np.random.default_rng([seed, step, 1])
        for i, s in zip(idx, starts):
            a = d["audio"][i]
            u = uni.integers(0, max(0, len(a) - n) + 1)
            for seg, r_list, a_list in ((a[s: s + n], rel, ab), (a[u: u + n], rel_u, ab_u)):
                r = rms(seg)
                r_list.append(r < peak[i] * 10 ** (threshold_db / 20))
                a_list.append(r < 0.005)
    return {"silent_crop_share": float(np.mean(rel)), "silent_crop_share_abs_rms_lt_0.005": float(np.mean(ab)),
            "silent_crop_share_if_uniform_crops": float(np.mean(rel_u)),
            "silent_crop_share_if_uniform_crops_abs": float(np.mean(ab_u)),
            "silent_crop_threshold_db": threshold_db, "silent_crops_checked": len(rel)}
