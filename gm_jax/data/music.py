"""JSB Chorales (Boulanger-Lewandowski et al. 2012 split) as piano rolls and as a soprano melody; MIDI reading.

Files (JSON, `json.load`), from `czhuang/JSB-Chorales-dataset`:

* `jsb-chorales-quarter.json`: {"train", "valid", "test"} -> 229 / 76 / 77
  chorales -> time steps (quarter notes) -> the sounding MIDI pitches. Read as
  an 88-key piano roll, key k = MIDI pitch 21 + k (A0..C8): uint8 [T, 88]
  (`load_piano_rolls`), polyphonic.
* `Jsb16thSeparated.json` (Coconet's SATB version, Huang et al. 2017): the
  same chorales in 16th notes, exactly 4 pitches per step in the order
  soprano, alto, tenor, bass, -1 for silence. The soprano line is read as a
  monophonic melody: a categorical over `MELODY_PITCHES` (MIDI 60..81, the
  soprano range of the training split) plus rest (`load_melodies`), token 0 =
  rest, 1 + (pitch - 60) for pitches. A pitch outside the training range is a
  ValueError (there is none in the valid and test splits).

Where the folder is found, in order: an explicit `data_dir` (the
`jsb_chorales` folder itself, or a folder holding `jsb_chorales/`), then the
`shared/data/jsb_chorales` folder beside the checkout (`../shared/data`).

MIDI files are read with `pretty_midi` (`midi_to_roll`); `gm_jax.viz.music`
writes them (one instrument, a note per run of consecutive active frames of a
key, `step_seconds` per frame) and plots piano rolls.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from gm_jax.data import synthetic
from gm_jax.data.datasets import DatasetNotFoundError

LOWEST_KEY = 21  # MIDI pitch of piano key 0 (A0)
NUM_KEYS = 88  # A0 (21) .. C8 (108)
MELODY_PITCHES = tuple(range(60, 82))  # soprano range of the training split, MIDI 60..81
REST = 0  # melody token of silence; pitch p -> 1 + p - 60
MELODY_CLASSES = 1 + len(MELODY_PITCHES)
SPLITS = ("train", "valid", "test")
FILES = {"quarter": "jsb-chorales-quarter.json", "8th": "jsb-chorales-8th.json", "16th": "jsb-chorales-16th.json",
         "satb16th": "Jsb16thSeparated.json"}
_REPO_ROOT = Path(__file__).resolve().parents[2]


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for the JSB files, in order (see the module docstring)."""
    if data_dir:
        d = Path(data_dir).expanduser()
        return [d, d / "jsb_chorales"]
    return [root / "shared" / "data" / "jsb_chorales" for root in (_REPO_ROOT.parent, Path.cwd().parent)]


def find_jsb_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the JSB Chorales JSON files.

    Raises:
      DatasetNotFoundError (a FileNotFoundError): no searched folder holds `jsb-chorales-quarter.json`;
        the message lists them.
    """
    searched = candidate_dirs(data_dir)
    for d in searched:
        if (d / FILES["quarter"]).is_file():
            return d
    raise DatasetNotFoundError(
        "JSB Chorales not found: no jsb-chorales-quarter.json in " + ", ".join(map(str, searched))
        + ". Point --config.data_dir at the jsb_chorales folder (from github.com/czhuang/JSB-Chorales-dataset); "
          "this project expects ../shared/data/jsb_chorales beside the checkout.")


@functools.lru_cache(maxsize=None)
def _load_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def load_chorales(split: str, resolution: str = "quarter", data_dir=None) -> list:
    """The raw chorales of a split: a list of pieces, each a list of time steps of MIDI pitches.

    Raises:
      ValueError: unknown split or resolution. DatasetNotFoundError: files not found.
    """
    if split not in SPLITS:
        raise ValueError(f"JSB split {split!r}; valid choices: {list(SPLITS)}")
    if resolution not in FILES:
        raise ValueError(f"JSB resolution {resolution!r}; valid choices: {list(FILES)}")
    if synthetic.is_synthetic(data_dir):
        return synthetic.chorales(split, resolution)
    return _load_json(str(find_jsb_dir(data_dir) / FILES[resolution]))[split]


def piano_roll(piece) -> np.ndarray:
    """A piece (time steps of MIDI pitches, negative = silence) as uint8 [T, 88], key k = pitch 21 + k.

    Raises:
      ValueError: a pitch outside 21..108.
    """
    roll = np.zeros((len(piece), NUM_KEYS), np.uint8)
    for t, pitches in enumerate(piece):
        for p in pitches:
            if p < 0:
                continue
            if not LOWEST_KEY <= p < LOWEST_KEY + NUM_KEYS:
                raise ValueError(f"MIDI pitch {p} at step {t} is outside the piano range 21..108")
            roll[t, int(p) - LOWEST_KEY] = 1
    return roll


def load_piano_rolls(split: str, data_dir=None, resolution: str = "quarter") -> list[np.ndarray]:
    """The chorales of a split as 88-key piano rolls: a list of uint8 [T_i, 88]."""
    return [piano_roll(p) for p in load_chorales(split, resolution, data_dir)]


def melody_tokens(pitches) -> np.ndarray:
    """MIDI pitches (negative = rest) as melody tokens int32 [T]: 0 = rest, 1 + (p - 60) for p in 60..81.

    Raises:
      ValueError: a pitch outside `MELODY_PITCHES`.
    """
    p = np.asarray(pitches, np.int64)
    bad = sorted(set(p[(p >= 0) & ((p < MELODY_PITCHES[0]) | (p > MELODY_PITCHES[-1]))].tolist()))
    if bad:
        raise ValueError(f"soprano pitches {bad} are outside the melody range MIDI {MELODY_PITCHES[0]}.."
                         f"{MELODY_PITCHES[-1]}")
    return np.where(p < 0, REST, 1 + p - MELODY_PITCHES[0]).astype(np.int32)


def melody_to_roll(tokens) -> np.ndarray:
    """Melody tokens [T] as a piano roll uint8 [T, 88] (one key or none per step)."""
    tokens = np.asarray(tokens).reshape(-1)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= MELODY_CLASSES):
        raise ValueError(f"melody tokens must be in [0, {MELODY_CLASSES}), got [{tokens.min()}, {tokens.max()}]")
    roll = np.zeros((len(tokens), NUM_KEYS), np.uint8)
    t = np.nonzero(tokens != REST)[0]
    roll[t, MELODY_PITCHES[0] - 1 + tokens[t] - LOWEST_KEY] = 1
    return roll


def load_melodies(split: str, data_dir=None) -> list[np.ndarray]:
    """Soprano lines (voice 0 of `Jsb16thSeparated.json`, 16th notes) as melody tokens: a list of int32 [T_i]."""
    return [melody_tokens([step[0] for step in piece]) for piece in load_chorales(split, "satb16th", data_dir)]


def pad_sequences(seqs, length: int | None = None, value=0) -> tuple[np.ndarray, np.ndarray]:
    """Stack sequences [T_i, ...] into [N, L, ...] padded with `value`, and a float32 mask [N, L] (1 = real)."""
    length = length or max(len(s) for s in seqs)
    first = np.asarray(seqs[0])
    out = np.full((len(seqs), length, *first.shape[1:]), value, first.dtype)
    mask = np.zeros((len(seqs), length), np.float32)
    for i, s in enumerate(seqs):
        n = min(len(s), length)
        out[i, :n] = np.asarray(s)[:n]
        mask[i, :n] = 1
    return out, mask


# -- MIDI ---------------------------------------------------------------------------------------
def midi_to_roll(path_or_midi, step_seconds: float = 0.5, num_steps: int | None = None) -> np.ndarray:
    """Read a MIDI file (or `PrettyMIDI`) into a piano roll uint8 [T, 88] with `step_seconds` per frame.

    A note covers frames round(start / step) .. round(end / step) - 1; pitches outside 21..108 are dropped.
    """
    import pretty_midi

    pm = path_or_midi if isinstance(path_or_midi, pretty_midi.PrettyMIDI) else pretty_midi.PrettyMIDI(str(path_or_midi))
    notes = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    end = max((int(round(n.end / step_seconds)) for n in notes), default=0)
    roll = np.zeros((num_steps if num_steps is not None else end, NUM_KEYS), np.uint8)
    for n in notes:
        if LOWEST_KEY <= n.pitch < LOWEST_KEY + NUM_KEYS:
            roll[int(round(n.start / step_seconds)):int(round(n.end / step_seconds)), n.pitch - LOWEST_KEY] = 1
    return roll
