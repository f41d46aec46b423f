"""Free Spoken Digit Dataset (FSDD) waveforms, mu-law companding, voiced-part detection, training crops.

Files: `recordings/{digit}_{speaker}_{index}.wav` (Jackson et al., FSDD v1.0.10,
CC BY-SA 4.0): 6 speakers x 10 digits x 50 takes, RIFF WAV, 16-bit PCM mono at
8 kHz, 0.14-2.28 s. Read with `soundfile` (libsndfile) as float32 in [-1, 1).
Official split (the dataset's README): take index 0-4 is the test split,
5-49 the training split (2,700 / 300 recordings).

Where the folder is found, in order: an explicit `data_dir` (the
`spoken_digits` folder itself, a folder holding `spoken_digits/`, or the
`recordings` folder), then `shared/data/spoken_digits` beside the checkout
(`../shared/data`).

mu-law (ITU-T G.711; van den Oord et al. 2016, Eq. 1 / Sec. 2.2), mu = 255,
256 classes:

    f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu),  x in [-1, 1]
    q    = floor((f + 1) / 2 * mu + 1/2)            in {0, ..., 255}

so x = -1 -> 0, x = 0 -> 128, x = 1 -> 255; the inverse maps class q to the
amplitude of f = 2 q / mu - 1 (`mu_law_decode`), and `mu_law_encode(mu_law_decode(q)) == q`.

Training crops (`voiced_crops`) lie inside the voiced part of a recording
(`voiced_bounds`: leading / trailing 20-ms frames more than |threshold| dB below
the loudest are trimmed), a pure function of `(seed, step)`; `padded_batches`
gives whole recordings for evaluation.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import numpy as np

from gm_jax.data import synthetic
from gm_jax.data.datasets import DatasetNotFoundError

SAMPLE_RATE = 8000  # Hz
MU = 255
NUM_CLASSES = MU + 1
DIGITS = tuple(range(10))
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")  # sorted; index = speaker id
TEST_TAKES = range(0, 5)  # official split: takes 0-4 test, 5-49 train
NUM_TAKES = 50
SPLITS = ("train", "test")
DATASET = "spoken_digits"
_NAME = re.compile(r"^(\d+)_([a-z]+)_(\d+)\.wav$")
_REPO_ROOT = Path(__file__).resolve().parents[2]


# -- mu-law ---------------------------------------------------------------------------
def mu_law_encode(x, mu: int = MU):
    """Quantise amplitudes with mu-law companding (module docstring).

    Args:
      x: float array (numpy or jax) of amplitudes; values outside [-1, 1] are clipped.
      mu: the companding parameter; `mu + 1` classes.

    Returns:
      int32 array of the same shape with values in {0, ..., mu} (0 -> 128 for mu = 255).
    """
    xp = _xp(x)
    x = xp.clip(xp.asarray(x, xp.float32), -1.0, 1.0)
    f = xp.sign(x) * xp.log1p(mu * xp.abs(x)) / np.log1p(mu)
    return xp.floor((f + 1.0) / 2.0 * mu + 0.5).astype(xp.int32)


def mu_law_decode(q, mu: int = MU):
    """The inverse of `mu_law_encode`: class q -> sign(f) ((1 + mu)^|f| - 1) / mu with f = 2 q / mu - 1.

    Args:
      q: int array (numpy or jax) with values in {0, ..., mu}.

    Returns:
      float32 array of amplitudes in [-1, 1] (0 -> -1, mu -> 1).
    """
    xp = _xp(q)
    f = 2.0 * xp.asarray(q, xp.float32) / mu - 1.0
    x = xp.sign(f) * xp.expm1(xp.abs(f) * np.log1p(mu)) / mu
    return xp.clip(x, -1.0, 1.0).astype(xp.float32)  # float32 rounding would give 1.0000006 for class mu


def mu_law_bin_edges(mu: int = MU) -> np.ndarray:
    """Amplitude edges of the mu-law classes: float64 [mu + 2], edges[q] .. edges[q + 1] encode to q.

    The outer edges are -inf and +inf (values beyond +-1 are clipped into the end classes).
    """
    f = (np.arange(1, mu + 1) - 0.5) / mu * 2.0 - 1.0  # companded boundaries between classes
    inner = np.sign(f) * np.expm1(np.abs(f) * np.log1p(mu)) / mu
    return np.concatenate([[-np.inf], inner, [np.inf]])


def _xp(x):
    import jax

    return jax.numpy if isinstance(x, jax.Array) else np


# -- labels ----------------------------------------------------------------------------
def parse_name(name: str | os.PathLike) -> tuple[int, str, int]:
    """`(digit, speaker, take)` from a file name `{digit}_{speaker}_{index}.wav`.

    Raises:
      ValueError: the name does not follow the pattern, or the digit / speaker is unknown.
    """
    m = _NAME.match(Path(name).name)
    if not m:
        raise ValueError(f"{name}: not an FSDD file name; expected '{{digit}}_{{speaker}}_{{index}}.wav', "
                         "e.g. '7_jackson_32.wav'")
    return check_digit(int(m.group(1))), SPEAKERS[speaker_id(m.group(2))], int(m.group(3))


def check_digit(digit) -> int:
    """The digit as an int. Raises ValueError unless it is an integer in 0..9."""
    if isinstance(digit, (bool, np.bool_)) or not isinstance(digit, (int, np.integer)) or digit not in DIGITS:
        raise ValueError(f"digit must be an int in 0..9 (valid: {list(DIGITS)}), got {digit!r}")
    return int(digit)


def speaker_id(speaker) -> int:
    """Speaker index in `SPEAKERS` of a name (case-insensitive) or an index 0..5.

    Raises:
      ValueError: an unknown name or an index out of range; the message lists the valid speakers.
    """
    valid = f"valid speakers: {', '.join(f'{i}={s}' for i, s in enumerate(SPEAKERS))}"
    if isinstance(speaker, str):
        if speaker.lower() not in SPEAKERS:
            raise ValueError(f"unknown speaker {speaker!r}; {valid}")
        return SPEAKERS.index(speaker.lower())
    if isinstance(speaker, (bool, np.bool_)) or not isinstance(speaker, (int, np.integer)) \
            or not 0 <= speaker < len(SPEAKERS):
        raise ValueError(f"unknown speaker {speaker!r}; {valid}")
    return int(speaker)


# -- files -------------------------------------------------------------------------------
def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for `recordings/` (see the module docstring), in order."""
    if data_dir:
        d = Path(data_dir).expanduser()
        return [d, d / DATASET, d.parent] if d.name == "recordings" else [d, d / DATASET]
    return [root / "shared" / "data" / DATASET for root in (_REPO_ROOT.parent, Path.cwd().parent)]


def find_fsdd_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The `spoken_digits` folder (the one holding `recordings/`).

    Raises:
      DatasetNotFoundError (a FileNotFoundError): no searched folder holds `recordings/`; the message lists them.
    """
    searched = candidate_dirs(data_dir)
    for d in searched:
        if (d / "recordings").is_dir():
            return d
    raise DatasetNotFoundError(
        "Free Spoken Digit Dataset not found: no recordings/ folder in " + ", ".join(map(str, searched))
        + ". Point --config.data_dir at the spoken_digits folder (github.com/Jakobovski/free-spoken-digit-dataset); "
          "this project expects ../shared/data/spoken_digits beside the checkout.")


def read_wav(path: str | os.PathLike) -> np.ndarray:
    """One recording as float32 [T] in [-1, 1), checked to be mono at 8 kHz.

    Raises:
      FileNotFoundError: the file does not exist (the message names it).
      ValueError: the file cannot be decoded as audio, or is not mono / 8 kHz (the message names it).
    """
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FSDD recording {path} not found")
    try:
        x, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"cannot read FSDD recording {path} as a WAV file: {e}") from e
    if rate != SAMPLE_RATE or x.shape[1] != 1:
        raise ValueError(f"FSDD recording {path}: expected mono audio at {SAMPLE_RATE} Hz, "
                         f"got {x.shape[1]} channel(s) at {rate} Hz")
    if len(x) == 0:
        raise ValueError(f"FSDD recording {path} holds no samples")
    return x[:, 0]


def file_names(split: str) -> list[str]:
    """The file names of a split (all 6 x 10 x takes of it), sorted by (digit, speaker, take)."""
    if split not in SPLITS:
        raise ValueError(f"FSDD split {split!r}; valid choices: {list(SPLITS)}")
    takes = TEST_TAKES if split == "test" else range(TEST_TAKES.stop, NUM_TAKES)
    return [f"{d}_{s}_{i}.wav" for d in DIGITS for s in SPEAKERS for i in takes]


@functools.lru_cache(maxsize=4)
def _load(split: str, directory: str) -> tuple:
    rec = Path(directory) / "recordings"
    out = []
    for name in file_names(split):
        digit, speaker, take = parse_name(name)
        out.append((read_wav(rec / name), digit, SPEAKERS.index(speaker), take))
    return tuple(out)


def load_recordings(split: str, data_dir: str | os.PathLike | None = None) -> dict:
    """Every recording of an FSDD split with its labels (read once per process, then cached).

    Returns:
      dict with `audio` (list of float32 [T_i] in [-1, 1)), `digit` (int32 [N], 0..9),
      `speaker` (int32 [N], index into `SPEAKERS`), `take` (int32 [N]), `names` (list of file names).
      N = 2,700 for "train", 300 for "test".

    Raises:
      ValueError: unknown split; a recording that cannot be decoded (named).
      FileNotFoundError: the folder (DatasetNotFoundError) or a recording of the split is missing (named).
    """
    if split not in SPLITS:
        raise ValueError(f"FSDD split {split!r}; valid choices: {list(SPLITS)}")
    if synthetic.is_synthetic(data_dir):
        items = synthetic.recordings(split, tuple(file_names(split)), tuple(SPEAKERS))
        names = [name for *_, name in items]
        items = [item[:4] for item in items]
    else:
        items = _load(split, str(find_fsdd_dir(data_dir).resolve()))
        names = file_names(split)
    return {"audio": [a for a, *_ in items],
            "digit": np.array([d for _, d, _, _ in items], np.int32),
            "speaker": np.array([s for _, _, s, _ in items], np.int32),
            "take": np.array([t for *_, t in items], np.int32),
            "names": names}


# -- voiced part -----------------------------------------------------------------------------
def frame_rms(x: np.ndarray, frame: int = 160) -> np.ndarray:
    """RMS of consecutive frames of `frame` samples (20 ms at 8 kHz; the last partial frame too): float [F]."""
    x = np.asarray(x, np.float64)
    n = -(-len(x) // frame)
    padded = np.zeros(n * frame)
    padded[: len(x)] = x
    counts = np.full(n, frame, np.float64)
    counts[-1] = len(x) - (n - 1) * frame
    return np.sqrt((padded.reshape(n, frame) ** 2).sum(1) / counts)


def voiced_bounds(x: np.ndarray, threshold_db: float = -30.0, frame: int = 160) -> tuple[int, int]:
    """`[start, stop)` sample range from the first to the last frame within `threshold_db` of the loudest frame.

    Leading and trailing silence (frames more than |threshold_db| dB below the
    loudest 20-ms frame of the recording) is trimmed; pauses inside are kept.
    """
    rms = frame_rms(x, frame)
    loud = np.nonzero(rms >= rms.max() * 10.0 ** (threshold_db / 20.0))[0]
    return int(loud[0] * frame), int(min(len(x), (loud[-1] + 1) * frame))


# -- training crops in the voiced part ---------------------------------------------------------
ZERO_CLASS = 128  # mu-law class of amplitude 0 (`mu_law_encode(0.0)`): padding and the context before a recording


def coded_recordings(split: str, data_dir=None, silence_db: float = -30.0) -> dict:
    """`load_recordings(split)` plus `codes` (int32 mu-law classes [T_i] per recording) and `voiced`
    (int64 [N, 2]: `voiced_bounds` of each recording at `silence_db`)."""
    d = dict(load_recordings(split, data_dir))
    d["codes"] = [mu_law_encode(a) for a in d["audio"]]
    d["voiced"] = np.array([voiced_bounds(a, silence_db) for a in d["audio"]], np.int64)
    return d


def crop_starts(rng: np.random.Generator, idx: np.ndarray, voiced: np.ndarray, lengths, crop_length: int) -> np.ndarray:
    """Start of a crop of `crop_length` samples in each recording `idx` (int [B]), inside its voiced part.

    A voiced part `voiced[i] = [a, b)` at least `crop_length` long: the crop lies inside it, uniformly. A
    shorter one: the crop covers it (start uniform among those that do, within the recording of
    `lengths[i]` samples). One `rng.integers` draw per crop, in order.
    """
    starts = np.zeros(len(idx), np.int64)
    for j, i in enumerate(idx):
        a, b = voiced[i]
        if b - a >= crop_length:
            lo, hi = a, b - crop_length
        else:
            lo, hi = max(0, b - crop_length), max(0, min(a, lengths[i] - crop_length))
            lo = min(lo, hi)
        starts[j] = rng.integers(lo, hi + 1)
    return starts


def voiced_crops(recordings: dict, crop_length: int, batch_size: int, seed: int, step: int,
                 rows: slice | None = None) -> dict:
    """Training batch `step` of crops inside the voiced parts (a pure function of `(seed, step)`).

    Args:
      recordings: from `coded_recordings` (`codes`, `voiced`, `digit`, `speaker`).
      crop_length, batch_size: samples per crop, crops per batch.
      seed, step: the batch's generator is `np.random.default_rng([seed, step])`: recordings drawn
        uniformly (with replacement), then `crop_starts`.
      rows: the crops of the batch to cut (this process's share of the global batch,
        `gm_jax.data.pipeline`); None: all of them.

    Returns:
      {"x": int32 [B, crop_length] mu-law classes (`ZERO_CLASS` past the end of a short recording),
       "mask": float32 [B, crop_length] (0 on that padding), "digit", "speaker": int32 [B]}
      (B: the number of `rows`).
    """
    d, n = recordings, crop_length
    rng = np.random.default_rng([seed, step])
    idx = rng.integers(0, len(d["codes"]), batch_size)
    starts = crop_starts(rng, idx, d["voiced"], [len(c) for c in d["codes"]], n)
    if rows is not None:
        idx, starts = idx[rows], starts[rows]
    x = np.full((len(idx), n), ZERO_CLASS, np.int32)
    mask = np.zeros((len(idx), n), np.float32)
    for j, (i, s) in enumerate(zip(idx, starts)):
        seg = d["codes"][i][s: s + n]
        x[j, : len(seg)] = seg
        mask[j, : len(seg)] = 1.0
    return {"x": x, "mask": mask, "digit": d["digit"][idx], "speaker": d["speaker"][idx]}


def padded_batches(recordings: dict, batch_size: int, multiple: int = 2048):
    """Whole recordings for evaluation, shortest first, in batches padded to a multiple of `multiple` samples.

    Yields:
      {"x": int32 [b, L] mu-law classes (`ZERO_CLASS` padding), "mask": float32 [b, L] (1 = real sample),
       "digit", "speaker": int32 [b]}; every recording once, b <= batch_size, L a multiple of `multiple`
       (few distinct shapes to compile).
    """
    d = recordings
    order = np.argsort([len(c) for c in d["codes"]])
    for s in range(0, len(order), batch_size):
        idx = order[s: s + batch_size]
        length = max(len(d["codes"][i]) for i in idx)
        length = -(-length // multiple) * multiple
        x = np.full((len(idx), length), ZERO_CLASS, np.int32)
        mask = np.zeros((len(idx), length), np.float32)
        for j, i in enumerate(idx):
            x[j, : len(d["codes"][i])] = d["codes"][i]
            mask[j, : len(d["codes"][i])] = 1
        yield {"x": x, "mask": mask, "digit": d["digit"][idx], "speaker": d["speaker"][idx]}
