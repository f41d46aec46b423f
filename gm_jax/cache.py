"""The user cache: compiled XLA programs and experiments' data-dependent setup, so `create` is instant.

Two things are slow to recompute and identical every time, so they are kept on disk:

* **Compiled programs.** `enable_compilation_cache()` turns on JAX's persistent
  compilation cache (`jax_compilation_cache_dir`) in `<cache dir>/xla`, unless the
  user configured one (then theirs is used) or `GM_JAX_COMPILATION_CACHE=0`.
  `gm_jax.create`, `gm_jax.load` and the training entry points call it, so the
  jitted initialisation and samplers compile once per machine and configuration.
* **Data-dependent setup** (`Experiment.data_setup`): a vocabulary, k-means
  clusters, a PCA basis, an initialisation batch. `read_arrays` / `write_arrays`
  (also the decoded datasets' format) store it as a NumPy `.npz` (no pickles) under `<cache dir>/data_setup/`, keyed by
  the experiment and the config fields it depends on (`setup_cache_path`); each
  training run also keeps its own copy (`gm_jax.training.rundir.SETUP_FILE`), so
  loading a run never needs the data.
* **Decoded datasets** (`gm_jax.data.load_split`): the arrays of a TFDS split,
  decoded once (MNIST's 60,000 PNGs take about 6 s) into `<cache dir>/datasets/`,
  keyed by the dataset files' names, sizes and modification times.

The cache directory is `$GM_JAX_CACHE_DIR`, else `$XDG_CACHE_HOME/gm_jax`, else
`~/.cache/gm_jax`; deleting it loses nothing but time.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

SETUP_VERSION = 1  # bump when a setup's contents change meaning, so old cache entries are not used


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a uniquely named temp file in the same directory and a rename, so a
    crash never leaves half a file and concurrent writers of the same path never mix their bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # as a plain open() would under the usual umask (mkstemp makes it 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_dir() -> Path:
    """The gm_jax cache directory (see the module docstring); not created here."""
    if os.environ.get("GM_JAX_CACHE_DIR"):
        return Path(os.environ["GM_JAX_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gm_jax"


def enable_compilation_cache() -> str | None:
    """Turn on JAX's persistent compilation cache in `cache_dir()/xla` unless one is configured already
    (`jax_compilation_cache_dir` set by the user or `JAX_COMPILATION_CACHE_DIR`) or `GM_JAX_COMPILATION_CACHE=0`.

    Returns:
      the compilation cache directory in use (None: off).
    """
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current or os.environ.get("GM_JAX_COMPILATION_CACHE", "1") == "0":
        return current or None
    path = cache_dir() / "xla"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache rather than fail
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    return str(path)


def setup_cache_path(name: str, fields: dict) -> Path:
    """`cache_dir()/data_setup/<name>-<sha256 of the fields>.npz`: the cache entry of experiment `name`'s
    data setup for `fields` (the config values it depends on, JSON-serialisable)."""
    key = json.dumps({"experiment": name, "version": SETUP_VERSION, "fields": fields}, sort_keys=True, default=str)
    return cache_dir() / "data_setup" / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def write_arrays(path: str | os.PathLike, setup: dict[str, np.ndarray]) -> Path:
    """Write named arrays (a data setup, a decoded dataset: str -> NumPy array of numbers or strings) as
    `.npz`, atomically
    (`write_bytes_atomic`: a temp file, then a rename).

    Raises:
      ValueError: a value that is not a NumPy array of numbers or strings (object arrays would need pickle).
    """
    arrays = {k: np.asarray(v) for k, v in setup.items()}
    bad = [k for k, v in arrays.items() if v.dtype.kind not in "biufcU"]
    if bad:
        raise ValueError(f"data setup entries {bad} must be arrays of numbers or strings (got dtypes "
                         f"{[str(arrays[k].dtype) for k in bad]})")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = Path(path)
    write_bytes_atomic(path, buf.getvalue())
    return path


def read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray] | None:
    """The named arrays stored at `path` by `write_arrays` (a data setup, a decoded dataset), or None when
    there is no such file.

    Raises:
      ValueError: the file is not a readable `.npz` of plain arrays (truncated, corrupt: its zip CRC fails).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a readable data setup (.npz): {e}") from None


def setups_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Same keys, shapes, dtypes and values (exactly)."""
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)
