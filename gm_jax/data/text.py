"""Character-level text: tiny_shakespeare from TFDS, a character vocabulary, fixed-length windows.

`tiny_shakespeare` (Karpathy's char-rnn corpus, 1,115,394 characters) is read
with `tfds.data_source` (no TensorFlow) from the directories searched by
`gm_jax.data.find_data_dir`. TFDS stores each split as ONE record whose
`"text"` feature is the whole split as UTF-8 bytes: train 1,003,854
characters, validation 55,770, test 55,770.

Vocabulary and the unknown-character policy
-------------------------------------------
`CharVocab.from_text(train_text)` holds the distinct characters of the
training split, sorted by code point (65 for tiny_shakespeare), with ids
0..V-1. There is no `<unk>` token: a character outside the vocabulary is a
`ValueError` naming the offending characters, whether it is in a prompt or in
text to encode (`CharVocab.encode`). The validation and test splits of
tiny_shakespeare contain no character outside the training vocabulary, so
bits/char are over the exact test text with nothing dropped or replaced.
`encode(text, unknown="drop")` removes unknown characters instead, for
callers that choose to.

Windows (teacher forcing)
-------------------------
A window of `length + 1` consecutive tokens gives `inputs = w[:-1]` and
`targets = w[1:]` (the target at step t is the input at step t + 1).
`windows` cuts a token array into consecutive (or strided) windows for
evaluation: every token after the first is a target exactly once, the tail
included; `random_windows` yields training batches of windows at uniformly
random offsets, a pure function of `(seed, step)` so that a resumed run sees
the same batches.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import numpy as np

from gm_jax.data import synthetic
from gm_jax.data.datasets import DATASETS, DatasetNotFoundError, find_data_dir

DATASET = "tiny_shakespeare"


@functools.lru_cache(maxsize=None)
def _read_text(name: str, split: str, directory: str) -> str:
    import tensorflow_datasets as tfds  # lazily: slow to import

    try:
        source = tfds.data_source(name, split=split, data_dir=directory, download=False)
        records = [source[i] for i in range(len(source))]
    except Exception as e:  # TFDS raises many types; one clear message
        raise DatasetNotFoundError(
            f"could not read split {split!r} of dataset {name!r} from {directory}: {type(e).__name__}: {e}"
        ) from e
    return "".join(bytes(r["text"]).decode("utf-8") for r in records)


def load_text(split: str, data_dir: str | os.PathLike | None = None, name: str = DATASET) -> str:
    """The text of one split of a prepared TFDS text dataset (cached per process).

    Args:
      split: `"train"`, `"validation"` or `"test"`.
      data_dir: explicit TFDS data dir, else the search order of `gm_jax.data.datasets`;
        "synthetic" for generated text (`gm_jax.data.synthetic`).
      name: the TFDS dataset (default `"tiny_shakespeare"`).

    Returns:
      the split as one Python string.

    Raises:
      ValueError: unknown dataset or split.
      DatasetNotFoundError: the dataset is not prepared where searched.
    """
    if name not in DATASETS or "text" not in DATASETS[name]["features"]:
        raise ValueError(f"{name!r} is not a text dataset; valid: "
                         f"{[k for k, v in DATASETS.items() if 'text' in v['features']]}")
    if split not in DATASETS[name]["splits"]:
        raise ValueError(f"dataset {name!r} has no split {split!r}; valid choices: {list(DATASETS[name]['splits'])}")
    if synthetic.is_synthetic(data_dir):
        return synthetic.text(split)
    return _read_text(name, split, str(find_data_dir(name, data_dir or None)))


class CharVocab:
    """A character vocabulary: ids 0..V-1 for the sorted distinct characters of a text.

    Unknown characters (not in the vocabulary) are a `ValueError` (see the
    module docstring); there is no `<unk>` id.
    """

    def __init__(self, chars: str):
        if not chars or len(set(chars)) != len(chars):
            raise ValueError(f"CharVocab needs distinct characters, got {len(chars)} with "
                             f"{len(chars) - len(set(chars))} repeated")
        self.chars = "".join(sorted(chars))
        self._index = {c: i for i, c in enumerate(self.chars)}
        self._lookup = None

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of the distinct characters of `text` (the training split)."""
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab(size={self.size})"

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` outside the vocabulary, sorted."""
        return sorted(set(text) - set(self._index))

    def encode(self, text: str, unknown: str = "error") -> np.ndarray:
        """Token ids of `text`.

        Args:
          text: a string.
          unknown: `"error"` (default): a character outside the vocabulary is a
            ValueError; `"drop"`: such characters are removed.

        Returns:
          int32 [len(text)] (fewer with `"drop"`).

        Raises:
          ValueError: unknown characters under `"error"`, or a bad `unknown`.
        """
        if unknown not in ("error", "drop"):
            raise ValueError(f"unknown={unknown!r}; valid choices: ['error', 'drop']")
        bad = self.unknown(text)
        if bad:
            if unknown == "error":
                raise ValueError(f"characters outside the vocabulary of {self.size} training characters: {bad!r}")
            text = "".join(c for c in text if c in self._index)
        if self._lookup is None:
            self._lookup = np.full(max(map(ord, self.chars)) + 1, -1, np.int32)
            self._lookup[[ord(c) for c in self.chars]] = np.arange(self.size, dtype=np.int32)
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32)
        return self._lookup[codes].astype(np.int32)

    def decode(self, ids) -> str:
        """The string of token ids (any integer array-like of ids in [0, V)).

        Raises:
          ValueError: an id outside [0, V).
        """
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"token ids must be in [0, {self.size}), got [{ids.min()}, {ids.max()}]")
        return "".join(self.chars[i] for i in ids)


def windows(tokens: np.ndarray, length: int, stride: int | None = None) -> dict[str, np.ndarray]:
    """Windows of `length + 1` tokens for evaluation; every token but the first is scored exactly once.

    With `stride = length` (the default) the windows are consecutive, overlapping
    by one token: window i covers tokens[i*length : i*length + length + 1], so a
    target sees on average length/2 tokens of context. With `stride < length`
    (sliding-window evaluation, as in Transformer-XL / GPT-2 perplexity figures)
    window i starts at i*stride; the first window scores all its targets and each
    later one only its targets not scored before (its last `stride`), so every
    target but those of the first window sees at least `length - stride` tokens
    of context. The tail that does not fill a window of the grid is scored by one
    last window ending at the last token (start `T - 1 - length`), which scores
    only its last `r < stride` targets, each with at least `length - r` tokens
    of context before it. So the scored targets are exactly tokens[1:], each once:
    `mask.sum() == T - 1`.

    Args:
      tokens: int [T].
      length: steps per window (>= 1).
      stride: steps between window starts, 1 <= stride <= length (None: length).

    Returns:
      {"inputs": int32 [W, length], "targets": int32 [W, length],
       "mask": float32 [W, length] (1 where the target is scored)},
      W = (T - 1 - length) // stride + 1, plus one when (T - 1 - length) % stride > 0.

    Raises:
      ValueError: `length` < 1, `stride` outside [1, length], or fewer than `length + 1` tokens.
    """
    tokens = np.asarray(tokens, np.int32).reshape(-1)
    stride = length if stride is None else int(stride)
    if length < 1 or len(tokens) < length + 1 or not 1 <= stride <= length:
        raise ValueError(f"windows need length >= 1, 1 <= stride <= length and at least length + 1 tokens; got "
                         f"length={length}, stride={stride}, {len(tokens)} tokens")
    w, tail = divmod(len(tokens) - 1 - length, stride)
    w += 1
    starts = np.arange(w) * stride
    if tail:  # the final partial window: one more window ending at the last token
        starts = np.append(starts, len(tokens) - 1 - length)
    seq = tokens[starts[:, None] + np.arange(length + 1)[None, :]]
    mask = np.zeros((len(starts), length), np.float32)
    mask[0] = 1.0
    mask[1:w, length - stride:] = 1.0
    if tail:
        mask[w, length - tail:] = 1.0
    return {"inputs": seq[:, :-1], "targets": seq[:, 1:], "mask": mask}


def random_windows(tokens: np.ndarray, length: int, batch_size: int, seed: int,
                   start_step: int = 0, rows: slice | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Endless training batches of windows at random offsets, reproducible from `(seed, step)`.

    Batch `s` draws `batch_size` offsets uniformly from [0, T - length - 1]
    with `np.random.default_rng([seed, s])`; only the windows of `rows` (this process's share of the
    global batch, `gm_jax.data.pipeline`; None: all) are read.

    Yields:
      {"inputs": int32 [batch_size, length], "targets": int32 [batch_size, length]} (or their `rows`).

    Raises:
      ValueError: fewer than `length + 1` tokens or batch_size < 1.
    """
    tokens = np.asarray(tokens, np.int32).reshape(-1)
    if len(tokens) < length + 1 or batch_size < 1 or length < 1:
        raise ValueError(f"random_windows needs length >= 1, batch_size >= 1 and at least length + 1 tokens; "
                         f"got length={length}, batch_size={batch_size}, {len(tokens)} tokens")
    span = np.arange(length + 1)[None, :]
    step = start_step
    while True:
        starts = np.random.default_rng([seed, step]).integers(0, len(tokens) - length, batch_size)
        starts = starts if rows is None else starts[rows]
        seq = tokens[starts[:, None] + span]
        yield {"inputs": seq[:, :-1], "targets": seq[:, 1:]}
        step += 1

