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
                 program: int = 0, primer_steps: int = 0):
    """Write a piano roll as a MIDI file: one note per run of consecutive active frames of a key.

    Args:
      roll: {0, 1} [T, 88] (key k = MIDI pitch 21 + k).
      path: output .mid path (None: only return the object).
      step_seconds: duration of one frame (0.5 s = quarter notes at 120 bpm).
      velocity: MIDI velocity 1..127. program: General MIDI program (0 = piano).
      primer_steps: 0 (one instrument), or P in [1, T]: a primed sample, the primer marked. Frames
        0..P-1 go to an instrument named "primer" and frames P.. to one named "continuation" (a note held
        across frame P is split there), with a "continuation" text marker at P * step_seconds.

    Returns:
      the `pretty_midi.PrettyMIDI` object (`gm_jax.data.music.midi_to_roll` reads the roll back, both
      instruments together).

    Raises:
      ValueError: `roll` is not [T, 88], or `primer_steps` is not an int in [0, T].
    """
    import pretty_midi

    roll = np.asarray(roll) > 0
    if roll.ndim != 2 or roll.shape[1] != NUM_KEYS:
        raise ValueError(f"a piano roll is [T, {NUM_KEYS}]; got shape {roll.shape}")
    if isinstance(primer_steps, bool) or not isinstance(primer_steps, (int, np.integer)) \
            or not 0 <= primer_steps <= len(roll):
        raise ValueError(f"primer_steps must be an int in [0, T] = [0, {len(roll)}], got {primer_steps!r}")
    pm = pretty_midi.PrettyMIDI(initial_tempo=60.0 / step_seconds)
    if primer_steps:
        parts = [(0, roll[:primer_steps], "primer"), (primer_steps, roll[primer_steps:], "continuation")]
        pm.text_events.append(pretty_midi.Text("continuation", primer_steps * step_seconds))
    else:
        parts = [(0, roll, "")]
    for offset, part, name in parts:
        inst = pretty_midi.Instrument(program=program, name=name)
        padded = np.concatenate([np.zeros((1, NUM_KEYS), bool), part, np.zeros((1, NUM_KEYS), bool)])
        change = np.diff(padded.astype(np.int8), axis=0)  # +1 at onsets, -1 after the last active frame
        for k in range(NUM_KEYS):
            for on, off in zip(np.nonzero(change[:, k] == 1)[0], np.nonzero(change[:, k] == -1)[0]):
                inst.notes.append(pretty_midi.Note(velocity=velocity, pitch=LOWEST_KEY + k,
                                                   start=(offset + on) * step_seconds,
                                                   end=(offset + off) * step_seconds))
        pm.instruments.append(inst)
    if path is not None:
        pm.write(str(path))
    return pm


def save_piano_roll_png(path: str | os.PathLike, rolls, titles=None, primer_steps: int | None = None) -> Path:
    """Plot piano rolls (a list of [T, 88]) one above the other, pitch upwards, time to the right (PNG);
    `primer_steps` P: a dashed red line at the end of the primer (between steps P - 1 and P) on each."""
    plt = pyplot()
    fig, axes = plt.subplots(len(rolls), 1, figsize=(10, 2.2 * len(rolls)), squeeze=False)
    for i, (ax, roll) in enumerate(zip(axes[:, 0], rolls)):
        ax.imshow(np.asarray(roll).T, origin="lower", aspect="auto", cmap="gray_r", interpolation="nearest",
                  extent=(0, len(roll), LOWEST_KEY - 0.5, LOWEST_KEY + NUM_KEYS - 0.5))
        if primer_steps:
            ax.axvline(primer_steps, color="tab:red", linestyle="--", linewidth=1)
        ax.set_ylabel("MIDI pitch")
        if titles:
            ax.set_title(titles[i], fontsize=9)
    axes[-1, 0].set_xlabel("time step")
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
    return Path(path)
