"""Synthetic stand-ins for every dataset the library reads, for tests and smoke runs.

`--config.data_dir=synthetic` (or `data_dir="synthetic"` in `gm_jax.create`)
makes every loader of `gm_jax.data` return small, deterministic data with the
real dataset's schema (dtypes, shapes, value ranges, splits) instead of
reading files: MNIST-like digits, their fixed binarization, Shakespeare-like
text with speeches, JSB-like chorales and FSDD-like recordings. Nothing is
read or downloaded, so the contract test of every experiment runs without
`../shared`. The data have some structure (a class-dependent stroke pattern,
repeated words, harmonic tones) so that models and evaluations see more than
white noise, but no figure measured on them means anything.
"""
from __future__ import annotations

import functools
import zlib

import numpy as np

SYNTHETIC = "synthetic"
NUM_IMAGES = {"train": 512, "validation": 128, "test": 128}
TEXT_CHARS = {"train": 6000, "validation": 1500, "test": 1500}
NUM_PIECES = {"train": 12, "valid": 4, "test": 4}
WORDS = ("the king my lord good sir thou art a fool and i will speak thee now what say you to this love "
         "o heaven hath made me so poor tis true that we shall die come let us go hence").split()
SPEAKER_NAMES = ("KING", "QUEEN", "ROMEO", "JULIET", "FOOL")


def is_synthetic(data_dir) -> bool:
    """True when `data_dir` asks for synthetic data (the string "synthetic")."""
    return isinstance(data_dir, str) and data_dir == SYNTHETIC


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


@functools.lru_cache(maxsize=None)
def images(name: str, split: str) -> dict[str, np.ndarray]:
    """MNIST-like split: `image` uint8 [N, 28, 28, 1] (0-255, or 0/1 for "binarized_mnist"), `label` int32 [N].

    Digit c is a bright bar whose angle and position depend on c, with pixel noise.
    """
    n = NUM_IMAGES.get(split, 128)
    rng = _rng("images", split)
    labels = rng.integers(0, 10, n).astype(np.int32)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    angle = labels[:, None, None] * (np.pi / 10) + rng.normal(0, 0.1, (n, 1, 1))
    offset = (labels[:, None, None] % 3 - 1) * 4 + rng.normal(0, 1, (n, 1, 1))
    dist = np.abs((xx - 14) * np.cos(angle) + (yy - 14) * np.sin(angle) - offset)
    img = np.clip(255 * np.exp(-dist ** 2 / 4) * (np.hypot(xx - 14, yy - 14) < 11), 0, 255)
    img = np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)[..., None]
    if name == "binarized_mnist":
        out = {"image": (img > 127).astype(np.uint8)}
    else:
        out = {"image": img, "label": labels}
    for v in out.values():
        v.setflags(write=False)
    return out


@functools.lru_cache(maxsize=None)
def text(split: str) -> str:
    """Shakespeare-like text: speeches "NAME:\\nline\\nline\\n\\n" of words from a small vocabulary."""
    rng = _rng("text", split)
    out, size = [], 0
    while size < TEXT_CHARS.get(split, 1500):
        lines = [" ".join(rng.choice(WORDS, rng.integers(3, 9))).capitalize() + rng.choice([",", ".", "!", "?"])
                 for _ in range(rng.integers(1, 4))]
        speech = f"{rng.choice(SPEAKER_NAMES)}:\n" + "\n".join(lines) + "\n\n"
        out.append(speech)
        size += len(speech)
    return "".join(out)


@functools.lru_cache(maxsize=None)
def chorales(split: str, resolution: str) -> list:
    """JSB-like pieces: lists of time steps of 4 MIDI pitches (soprano first; 16th-note voices for "satb16th")."""
    rng = _rng("jsb", split, resolution)
    pieces = []
    for _ in range(NUM_PIECES.get(split, 4)):
        length = int(rng.integers(16, 40)) * (4 if resolution in ("16th", "satb16th") else 1)
        root = 60 + int(rng.integers(0, 8))
        steps = []
        for t in range(length):
            chord = root + int(rng.choice([0, 2, 4, 5, 7])) if t % 4 == 0 or not steps else None
            base = chord if chord is not None else steps[-1][0]
            s = int(np.clip(base + (12 if base < 66 else 0), 60, 81))
            steps.append([s, s - 5, s - 12, s - 24])
        pieces.append(steps)
    return pieces


@functools.lru_cache(maxsize=None)
def recordings(split: str, file_names: tuple[str, ...], speakers: tuple[str, ...]) -> tuple:
    """FSDD-like recordings: (audio float32 [T] in [-1, 1), digit, speaker index, take) per file name.

    A digit's recording is a decaying harmonic tone (pitch set by the digit and
    speaker) between short silences, 0.2-0.5 s at 8 kHz. Only every 10th file of
    the split is kept, so the synthetic splits stay small.
    """
    out = []
    for name in file_names[::10]:
        digit, speaker, take = name[:-4].split("_")
        rng = _rng("fsdd", name)
        n = int(rng.integers(1600, 4000))
        t = np.arange(n) / 8000.0
        f0 = 100 + 20 * int(digit) + 30 * speakers.index(speaker)
        env = np.exp(-3 * t) * (t > 0.03) * (t < n / 8000.0 - 0.03)
        x = env * (0.3 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(4 * np.pi * f0 * t))
        x = (x + rng.normal(0, 0.002, n)).clip(-1, 0.999).astype(np.float32)
        out.append((x, int(digit), speakers.index(speaker), int(take), name))
    return tuple(out)
