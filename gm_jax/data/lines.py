"""Text as lines ("sentences") of characters: split, filter by length, encode and pad.

A line is the text between two "\\n"; empty lines (the blank lines between
tiny_shakespeare's speeches) are dropped, and so are lines longer than
`max_len - 1` characters (a line takes its characters plus one end-of-line
token, the "\\n" itself). In tiny_shakespeare the longest line has 63
characters, so with `max_len = 64` no line is dropped.
"""
from __future__ import annotations

import numpy as np

EOL = "\n"


def split_lines(text: str, max_len: int) -> tuple[list[str], int]:
    """(the non-empty lines of `text` with at most `max_len - 1` characters, the number of longer ones dropped)."""
    lines = [line for line in text.split(EOL) if line]
    kept = [line for line in lines if len(line) <= max_len - 1]
    return kept, len(lines) - len(kept)


def encode_lines(vocab, lines, max_len: int) -> np.ndarray:
    """int32 [N, max_len]: each line's ids, its EOL, then EOL padding.

    Raises:
      ValueError: a line with a character outside `vocab` (`CharVocab.encode` names them), a line holding
        "\\n", or longer than `max_len - 1` characters; `vocab` without "\\n".
    """
    if EOL not in vocab.chars:
        raise ValueError("the vocabulary has no '\\n', the end-of-line token")
    eol = int(vocab.encode(EOL)[0])
    out = np.full((len(lines), max_len), eol, np.int32)
    for i, line in enumerate(lines):
        if EOL in line:
            raise ValueError(f"line {i} holds a '\\n': give one line per string ({line!r})")
        if len(line) > max_len - 1:
            raise ValueError(f"line {i} has {len(line)} characters; at most max_len - 1 = {max_len - 1} "
                             f"(one position is the end-of-line token): {line[:40]!r}...")
        out[i, :len(line)] = vocab.encode(line)  # ValueError naming characters outside the vocabulary
    return out
