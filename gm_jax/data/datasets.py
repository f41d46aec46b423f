"""Prepared TFDS datasets, read without TensorFlow and decoded once into arrays.

Datasets are read with `tfds.data_source` (array_record files), which needs no
TensorFlow. Each split is decoded once per process into NumPy arrays and kept
in memory; everything downstream (shuffling, batching, binarization) works on
those arrays.

Where the data lives, in order (the first that holds the dataset wins):

1. the explicit `data_dir` argument (`--config.data_dir`); if given, it is the
   only directory searched;
2. the `TFDS_DATA_DIR` environment variable;
3. the `shared/tfds` folder beside the checkout (`../shared/tfds` seen from the
   project root), when it exists;
4. TFDS's own default (`~/tensorflow_datasets`).
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from gm_jax import cache
from gm_jax.data import synthetic

# name -> (features kept, expected image shape, value range of the images)
DATASETS: dict[str, dict] = {
    "mnist": {
        "features": ("image", "label"),
        "splits": ("train", "test"),
        "image_shape": (28, 28, 1),
        "max_value": 255,
    },
    "binarized_mnist": {
        "features": ("image",),
        "splits": ("train", "validation", "test"),
        "image_shape": (28, 28, 1),
        "max_value": 1,
    },
    # one record per split holding the whole text (bytes); read by gm_jax.data.text
    "tiny_shakespeare": {
        "features": ("text",),
        "splits": ("train", "validation", "test"),
    },
}

_REPO_ROOT = Path(__file__).resolve().parents[2]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is absent from every directory searched and cannot be prepared here."""


def candidate_data_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The TFDS data directories searched, in order (see the module docstring).

    Args:
      data_dir: explicit directory; when given (not None / ""), it is the only one.

    Returns:
      Distinct directories, most preferred first. They need not exist.
    """
    if data_dir:
        return [Path(data_dir).expanduser()]
    dirs: list[Path] = []
    if os.environ.get("TFDS_DATA_DIR"):
        dirs.append(Path(os.environ["TFDS_DATA_DIR"]).expanduser())
    for shared in (_REPO_ROOT.parent / "shared" / "tfds", Path.cwd().parent / "shared" / "tfds"):
        if shared.is_dir():
            dirs.append(shared)
    dirs.append(Path("~/tensorflow_datasets").expanduser())
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def _has_prepared(directory: Path, name: str) -> bool:
    base = directory / name
    return base.is_dir() and any((v / "dataset_info.json").is_file() for v in base.iterdir() if v.is_dir())


def find_data_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The first directory that holds the prepared TFDS dataset `name`.

    Raises:
      ValueError: `name` is not a dataset this module knows.
      DatasetNotFoundError: no searched directory holds it; the message names
        the dataset, every directory searched and how to prepare it.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid choices: {sorted(DATASETS)}")
    searched = candidate_data_dirs(data_dir)
    for d in searched:
        if _has_prepared(d, name):
            return d
    raise DatasetNotFoundError(
        f"dataset {name!r} is not prepared in any directory searched: "
        + ", ".join(str(d) for d in searched)
        + ". Prepare it once on a machine with internet access and TensorFlow "
        f"(`tfds.builder({name!r}, file_format='array_record').download_and_prepare()`), "
        "or point --config.data_dir / TFDS_DATA_DIR at a directory that holds it "
        "(this project expects ../shared/tfds beside the checkout)."
    )


def _decoded_cache_path(name: str, split: str, data_dir: str) -> Path:
    """The user-cache file of a decoded split (`gm_jax.cache`): keyed by the names, sizes and modification
    times of the dataset's files, so a re-prepared dataset is decoded again."""
    files = sorted(p for p in Path(data_dir, name).rglob("*") if p.is_file())
    stamp = [(str(p.relative_to(data_dir)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    digest = hashlib.sha256(json.dumps([name, split, str(Path(data_dir).resolve()), stamp]).encode()).hexdigest()
    return cache.cache_dir() / "datasets" / f"{name}-{split}-{digest[:16]}.npz"


@functools.lru_cache(maxsize=None)
def _load_split_cached(name: str, split: str, data_dir: str) -> dict[str, np.ndarray]:
    """The decoded split: from the user cache when it holds this split of these files, else decoded from
    TFDS (and written to the cache; an unreadable cache entry is decoded again)."""
    path = _decoded_cache_path(name, split, data_dir)
    with contextlib.suppress(ValueError):  # a corrupt entry: decode again
        out = cache.read_arrays(path)
        if out is not None and sorted(out) == sorted(DATASETS[name]["features"]):
            for v in out.values():
                v.setflags(write=False)
            return out
    out = _decode_split(name, split, data_dir)
    with contextlib.suppress(OSError):  # a read-only cache costs time, never the data
        cache.write_arrays(path, out)
    return out


def _decode_split(name: str, split: str, data_dir: str) -> dict[str, np.ndarray]:
    import tensorflow_datasets as tfds  # imported lazily: slow, and not needed by samplers

    try:
        source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
        records = source.__getitems__(range(len(source)))
    except Exception as e:  # TFDS raises many types; the user needs one clear message
        raise DatasetNotFoundError(
            f"could not read split {split!r} of dataset {name!r} from {data_dir}: "
            f"{type(e).__name__}: {e}"
        ) from e
    out = {}
    for feature in DATASETS[name]["features"]:
        values = np.stack([np.asarray(r[feature]) for r in records])
        out[feature] = values.astype(np.uint8 if feature == "image" else np.int32)
        out[feature].setflags(write=False)
    return out


def load_split(name: str, split: str, data_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Decode one split of a prepared TFDS dataset into arrays (cached per process, and on disk in the
    user cache, `gm_jax.cache`: decoding MNIST's training PNGs takes about 6 s, reading the arrays 0.1 s).

    Args:
      name: `"mnist"` or `"binarized_mnist"`.
      split: a split of that dataset (`"train"`, `"test"`; `"validation"` for
        binarized_mnist).
      data_dir: explicit TFDS data dir, else the search order of this module;
        "synthetic" for small generated data of the same schema (`gm_jax.data.synthetic`).

    Returns:
      A dict of read-only arrays: `"image"` uint8 [N, 28, 28, 1] (0-255 for
      mnist, 0/1 for binarized_mnist, the fixed binarization of Larochelle &
      Murray 2011) and, for mnist, `"label"` int32 [N].

    Raises:
      ValueError: unknown dataset or split.
      DatasetNotFoundError: the dataset is not prepared where searched.
    """
    if name in DATASETS and "text" in DATASETS[name]["features"]:
        raise ValueError(f"{name!r} is a text dataset (one record of bytes per split): read it with "
                         "gm_jax.data.text.load_text")
    if name in DATASETS and split not in DATASETS[name]["splits"]:
        raise ValueError(
            f"dataset {name!r} has no split {split!r}; valid choices: {list(DATASETS[name]['splits'])}"
        )
    if synthetic.is_synthetic(data_dir):
        return synthetic.images(name, split)
    directory = find_data_dir(name, data_dir)
    return _load_split_cached(name, split, str(directory))
