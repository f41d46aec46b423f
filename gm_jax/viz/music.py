"""Music files and figures: piano rolls as MIDI files (`pretty_midi`) and as PNG plots.

A piano roll is {0, 1} [T, 88], key k = MIDI pitch 21 + k (`gm_jax.data.music`);
`gm_jax.data.music.midi_to_roll` reads a MIDI file back.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gm_jax.data.music import LOWEST_KEY, NUM_KEYS
from gm_jax.viz import pyplot


def roll_to_midi(roll, path: str | os.PathLike | None = None, step_seconds: float = 0.5, velocity: int = 80,
                 program: int = 0):
    """Write a piano roll as a MIDI file: one note per run of consecutive active frames of a key.

    Args:
      roll: {0, 1} [T, 88] (key k = MIDI pitch 21 + k).
      path: output .mid path (None: only return the object).
      step_seconds: duration of one frame (0.5 s = quarter notes at 120 bpm).
      velocity: MIDI velocity 1..127. program: General MIDI program (0 = piano).

    Returns:
      the `pretty_midi.PrettyMIDI` object.

    Raises:
      ValueError: `roll` is not [T, 88].
    """
    import pretty_midi

    roll = np.asarray(roll) > 0
    if roll.ndim != 2 or roll.shape[1] != NUM_KEYS:
        raise ValueError(f"a piano roll is [T, {NUM_KEYS}]; got shape {roll.shape}")
    pm = pretty_midi.PrettyMIDI(initial_tempo=60.0 / step_seconds)
    inst = pretty_midi.Instrument(program=program)
    padded = np.concatenate([np.zeros((1, NUM_KEYS), bool), roll, np.zeros((1, NUM_KEYS), bool)])
    change = np.diff(padded.astype(np.int8), axis=0)  # +1 at onsets, -1 after the last active frame
    for k in range(NUM_KEYS):
        for on, off in zip(np.nonzero(change[:, k] == 1)[0], np.nonzero(change[:, k] == -1)[0]):
            inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=LOWEST_KEY + k,
                                               start=on * step_seconds, end=off * step_seconds))
    pm.instruments.append(inst)
    if path is not None:
        pm.write(str(path))
    return pm


def save_piano_roll_png(path: str | os.PathLike, rolls, titles=None) -> Path:
    """Plot piano rolls (a list of [T, 88]) one above the other, pitch upwards, time to the right (PNG)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(rolls), 1, figsize=(10, 2.2 * len(rolls)), squeeze=False)
    for i, (ax, roll) in enumerate(zip(axes[:, 0], rolls)):
        ax.imshow(np.asarray(roll).T, origin="lower", aspect="auto", cmap="gray_r", interpolation="nearest",
                  extent=(0, len(roll), LOWEST_KEY - 0.5, LOWEST_KEY + NUM_KEYS - 0.5))
        ax.set_ylabel("MIDI pitch")
        if titles:
            ax.set_title(titles[i], fontsize=9)
    axes[-1, 0].set_xlabel("time step")
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
    return Path(path)
