"""Samples written in the form of their data: PNG grids, scatter plots, text, MIDI / piano rolls, WAV.

`write_samples(experiment, params, samples, out)` is the one writer of `Model.sample`'s output by the
experiment's kind of data (`output_form`), used by `gm-jax sample` (`gm_jax.command`) and by evaluation
during training (`gm_jax.training.loop`). The experiment is read duck-typed (`data_kind`, `data_max`,
`to_rolls`, `decode`, `vocab`, `config.step_seconds`, `sample_rate`), so this module imports no
experiment code.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from gm_jax.viz import images as viz_images

# output form -> (accepted suffixes, what is written), the first suffix the default
OUTPUT_FORMS = {
    "image": ((".png",), "a PNG grid of images"),
    "points": ((".png",), "a PNG scatter plot"),
    "text": ((".txt",), "a text file"),
    "music": ((".mid", ".midi", ".png"), "MIDI files (one per sample) or a PNG piano-roll plot"),
    "audio": ((".wav",), "WAV files (one per sample)"),
}

def output_form(experiment) -> str:
    """How samples of `experiment` are written: a key of `OUTPUT_FORMS`.

    Piano-roll experiments (those with `to_rolls`, the JSB models) are "music", whatever their data
    kind; otherwise the data kind decides: binary / uint8 -> "image", tokens -> "text", audio ->
    "audio", float_points -> "points" ("image" for a model of PCA coordinates with a `decode(params, z)`
    to images, as `gm_jax.recipes.classical.PCAGMMExperiment`).

    Raises:
      ValueError: a data kind with no writer.
    """
    kind = experiment.data_kind
    if hasattr(experiment, "to_rolls"):
        return "music"
    if kind in ("binary", "uint8"):
        return "image"
    if kind == "float_points":
        return "image" if callable(getattr(experiment, "decode", None)) else "points"
    if kind == "tokens":
        return "text"
    if kind == "audio":
        return "audio"
    raise ValueError(f"{experiment.name}: no sample writer for data kind {kind!r}")


def check_out_path(experiment, out: str | os.PathLike) -> Path:
    """`out` as a Path whose suffix fits `experiment`'s samples (`OUTPUT_FORMS`).

    Raises:
      ValueError: the suffix does not fit (the message names the ones that do).
    """
    out = Path(out)
    form = output_form(experiment)
    suffixes, what = OUTPUT_FORMS[form]
    if out.suffix.lower() not in suffixes:
        raise ValueError(f"--out {out}: {experiment.name}'s samples are {experiment.data_kind} data, written as "
                         f"{what}; use a file ending in {' or '.join(suffixes)} (got {out.suffix or 'no suffix'!r})")
    return out


def numbered_paths(out: Path, n: int) -> list[Path]:
    """The files of n one-per-file samples: [out] for n = 1, else out's stem + `_{i}` (zero-padded) beside it."""
    if n == 1:
        return [out]
    width = len(str(n - 1))
    return [out.with_name(f"{out.stem}_{i:0{width}d}{out.suffix}") for i in range(n)]


def decode_tokens(experiment, ids: np.ndarray) -> list[str]:
    """Token ids int [N, T] as N strings: the character vocabulary (`experiment.vocab.decode`), the word
    decoder (`experiment.decode(ids)`, LDA), else the ids separated by spaces."""
    vocab = getattr(experiment, "vocab", None)
    if vocab is not None and hasattr(vocab, "decode"):
        return [vocab.decode(row) for row in ids]
    if callable(getattr(experiment, "decode", None)):
        return list(experiment.decode(ids))
    return [" ".join(str(int(i)) for i in row) for row in ids]


def write_samples(experiment, params, samples, out: str | os.PathLike, title: str = "") -> list[Path]:
    """Write samples of `experiment` in the form of its data (see the module docstring); returns the files.

    Args:
      experiment: the `gm_jax.experiment.Experiment` that drew them.
      params: its parameters (used only to decode PCA coordinates to images).
      samples: what `Model.sample` returned: images [N, H, W, C] in [0, data_max], points float [N, D],
        token ids int [N, T], piano rolls / melodies [N, T, ...], waveforms float [N, T] in [-1, 1].
      out: the output file; its suffix must fit the data (`check_out_path`). Parent directories are created.
      title: figure title (points, piano rolls) or text header.

    Raises:
      ValueError: `out`'s suffix does not fit the data; samples of the wrong shape for their form.
    """
    out = check_out_path(experiment, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    form = output_form(experiment)
    x = np.asarray(samples)
    n = len(x)
    if form == "image":
        if experiment.data_kind == "float_points":  # PCA coordinates -> images in [0, 1]
            x, max_value = np.asarray(experiment.decode(params, x)), 1.0
        else:
            max_value = float(experiment.data_max)
        viz_images.save_samples(out, x, max_value=max_value, cols=math.ceil(math.sqrt(n)))
        return [out]
    if form == "points":
        from gm_jax.viz import toy as viz_toy

        if x.ndim != 2:
            raise ValueError(f"points must be float [N, D]; got shape {x.shape}")
        shown = x if x.shape[1] <= 2 else x[:, :2]
        note = "" if x.shape[1] <= 2 else f" (coordinates 0 and 1 of {x.shape[1]})"
        viz_toy.save_samples(out, shown, (title or f"{experiment.name}: {n} samples") + note)
        return [out]
    if form == "text":
        sep = "\n" + "=" * 60 + "\n"
        header = f"# {title or f'{experiment.name}: {n} samples'}{sep}"
        out.write_text(header + sep.join(decode_tokens(experiment, x)) + "\n")
        return [out]
    if form == "music":
        from gm_jax.viz import music as viz_music

        rolls = experiment.to_rolls(x)
        if out.suffix.lower() == ".png":
            viz_music.save_piano_roll_png(out, list(rolls), [f"{title or experiment.name} sample {i}"
                                                             for i in range(n)])
            return [out]
        paths = numbered_paths(out, n)
        step_seconds = float(experiment.config.get("step_seconds", 0.5))
        for roll, path in zip(rolls, paths):
            viz_music.roll_to_midi(roll, path, step_seconds=step_seconds)
        return paths
    # audio
    from gm_jax.data import audio
    from gm_jax.viz import audio as viz_audio

    if x.ndim != 2:
        raise ValueError(f"waveforms must be float [N, T]; got shape {x.shape}")
    paths = numbered_paths(out, n)
    for wave, path in zip(x, paths):
        viz_audio.save_wav(path, np.clip(wave, -1.0, 1.0), int(getattr(experiment, "sample_rate", audio.SAMPLE_RATE)))
    return paths
