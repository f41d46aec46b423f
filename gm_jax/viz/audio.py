"""Audio files and figures: 16-bit PCM WAV files and log-power spectrograms of recordings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import signal

from gm_jax.viz import pyplot


def save_wav(path: str | Path, x, sample_rate: int) -> Path:
    """Write a waveform float [T] in [-1, 1] as a mono 16-bit PCM WAV file at `sample_rate` Hz (`soundfile`)."""
    import soundfile

    soundfile.write(path, np.asarray(x), sample_rate, subtype="PCM_16")
    return Path(path)


def save_spectrograms(path: str | Path, generated: list, real: list, sample_rate: int, title: str = "") -> Path:
    """Log-power spectrograms (dB; 256-sample segments, hop 64; clips shorter than 256 samples: one
    segment of their length, hop a quarter of it), one column per clip: `generated` waveforms
    on the top row, `real` ones on the bottom row (PNG)."""
    plt = pyplot()
    n = len(generated)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 5), squeeze=False)
    for row, clips in enumerate((generated, real)):
        for i, x in enumerate(clips):
            seg = min(256, len(x))  # shorter clips: one segment of their length
            f, t, sxx = signal.spectrogram(np.asarray(x, np.float64), fs=sample_rate, nperseg=seg,
                                           noverlap=seg * 3 // 4)
            ax = axes[row][i]
            ax.pcolormesh(t, f / 1000.0, 10 * np.log10(sxx + 1e-10), shading="auto", vmin=-100, vmax=-20)
            ax.set_title(f"{'generated' if row == 0 else 'real'} {i}", fontsize=8)
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_ylabel("kHz", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
