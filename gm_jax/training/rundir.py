"""The run directory's identity and its single writer.

A workdir belongs to one run: `workdir/config.json` records the experiment and
its config. A command for a different experiment, or with a config that differs
in anything but the keys a resumed run may change (`RESUMABLE_KEYS`, plus an
experiment's own `Experiment.resumable_keys`), is refused before it writes
anything (`check_identity`). `--fresh` (`train(..., fresh=True)`) starts a new
run in the same workdir and first moves the old run's files into
`workdir/replaced-<UTC time>/`, so nothing is deleted.

One process writes a workdir at a time: `RunLock` holds an exclusive advisory
lock (`fcntl.flock`) on `workdir/.lock` for the run's lifetime. The kernel
releases it when the process exits, however it exits, so a killed run leaves no
stale lock behind. (With several JAX processes, only process 0 takes it.)

Every file of a run is written whole or not at all (`write_text_atomic`).
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import socket
from pathlib import Path

import ml_collections

from gm_jax.cache import write_bytes_atomic

CONFIG_FILE = "config.json"
SETUP_FILE = "data_setup.npz"  # the run's data-dependent setup (`Experiment.data_setup`, `gm_jax.cache`)
LOCK_FILE = ".lock"
# Config keys a resumed run may change: the run's length and bookkeeping, where the data
# is read from and how the step is parallelised -- none changes what the checkpoints hold.
RESUMABLE_KEYS = ("num_steps", "log_every", "checkpoint_every", "keep_checkpoints", "eval_batch_size",
                  "progress_bar", "data_dir", "parallel", "eval_every", "num_validation_examples")


def utc_stamp() -> str:
    """The current UTC time as a sortable name part, e.g. `20261130T031500123456Z`."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """`gm_jax.cache.write_bytes_atomic` of `text` encoded as UTF-8: a crash never leaves half a file."""
    write_bytes_atomic(path, text.encode())


class WorkdirMismatchError(ValueError):
    """The workdir holds a different run (another experiment, or a config that changes the run)."""


class WorkdirInUseError(ValueError):
    """Another process is running in the workdir."""


def flatten_config(d: dict, prefix: str = "") -> dict:
    """A nested config dict as `{dotted.key: value}` (tuples as lists, as after a JSON round trip)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_config(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def read_run_config(workdir: str | os.PathLike) -> dict | None:
    """`workdir/config.json` as `{"experiment": name, "config": {...}}`, or None when there is none.

    Raises:
      ValueError: the file exists but is not a gm_jax run config.
    """
    path = Path(workdir) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved["experiment"], str) or not isinstance(saved["config"], dict):
            raise TypeError("'experiment' must be a string and 'config' an object")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a valid gm_jax run config ({type(e).__name__}: {e})") from e
    return saved


def config_differences(saved: dict, config: ml_collections.ConfigDict,
                       allowed: tuple[str, ...] = RESUMABLE_KEYS) -> list[str]:
    """Lines `key: saved -> new` for the keys (outside `allowed`) where `config` differs from `saved["config"]`.

    A key the saved config lacks (added to the experiment since) counts as its current default,
    so it differs only when the new command changes it.
    """
    old, new = flatten_config(saved["config"]), flatten_config(config.to_dict())
    lines = []
    for key in sorted(set(old) | set(new)):
        if key in allowed or key.split(".")[0] in allowed:
            continue
        if key not in old:
            continue
        if key not in new:
            lines.append(f"  {key}: {old[key]!r} -> (not a key of this experiment)")
        elif old[key] != new[key]:
            lines.append(f"  {key}: {old[key]!r} -> {new[key]!r}")
    return lines


def check_identity(workdir: str | os.PathLike, name: str, config: ml_collections.ConfigDict,
                   allowed: tuple[str, ...] = RESUMABLE_KEYS) -> dict | None:
    """Check that a run of experiment `name` with `config` may write `workdir`; reads only.

    Returns:
      The workdir's saved run config, or None for a new workdir.

    Raises:
      WorkdirMismatchError: the workdir holds another experiment, or the config
        differs in keys outside `allowed`; the message lists the differences and
        how to start a new run.
      ValueError: its config.json is unreadable.
    """
    saved = read_run_config(workdir)
    if saved is None:
        return None
    hint = (f"Use a new --workdir for a new run, or pass --fresh (train(..., fresh=True)) to start over in "
            f"{workdir}; the old run's files are then moved to {Path(workdir) / 'replaced-<time>'}/.")
    if saved["experiment"] != name:
        raise WorkdirMismatchError(
            f"{workdir} holds a run of {saved['experiment']!r}, not {name!r}; nothing was written. {hint}")
    diff = config_differences(saved, config, allowed)
    if diff:
        raise WorkdirMismatchError(
            f"{workdir} holds a run of {name} with a different config; nothing was written. Differences "
            f"(saved -> this command):\n" + "\n".join(diff) + f"\nOnly {', '.join(allowed)} may change when a "
            f"run is resumed. {hint}")
    return saved


def move_run_aside(workdir: str | os.PathLike) -> Path | None:
    """Move every entry of `workdir` except the lock into `workdir/replaced-<UTC time>/`; returns that
    directory (None when there was nothing to move)."""
    workdir = Path(workdir)
    entries = [p for p in workdir.iterdir() if p.name != LOCK_FILE and not p.name.startswith("replaced-")]
    if not entries:
        return None
    dest = workdir / f"replaced-{utc_stamp()}"
    dest.mkdir()
    for p in entries:
        os.replace(p, dest / p.name)
    return dest


class RunLock:
    """An exclusive advisory lock on `workdir/.lock`, held while the context is open.

    The lock file records the holder's PID, host and start time; a second
    process gets `WorkdirInUseError` naming them. The kernel drops the lock when
    the holder exits (even by `kill -9`), so stale lock files never block. The
    holding process may enter it again (nested), e.g. `train` inside `train_and_evaluate`.

    Raises:
      WorkdirInUseError: another process holds the lock.
    """

    _held: dict[Path, int] = {}  # lock path -> depth: re-entering in the holding process is allowed

    def __init__(self, workdir: str | os.PathLike):
        self.path = (Path(workdir) / LOCK_FILE).resolve()
        self._fd: int | None = None
        self._nested = False

    def __enter__(self) -> "RunLock":
        if self.path in RunLock._held:
            RunLock._held[self.path] += 1
            self._nested = True
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown process"
            os.close(fd)
            raise WorkdirInUseError(
                f"{self.path.parent} is in use by another run ({holder}); wait for it to finish or stop it, "
                "or use another --workdir") from None
        info = (f"pid {os.getpid()} on host {socket.gethostname()}, since "
                f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        self._fd = fd
        RunLock._held[self.path] = 1
        return self

    def __exit__(self, *exc) -> None:
        RunLock._held[self.path] -= 1
        if RunLock._held[self.path] == 0:
            del RunLock._held[self.path]
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def resumable_keys(experiment) -> tuple[str, ...]:
    """`RESUMABLE_KEYS` plus the experiment's own `resumable_keys` (e.g. evaluation sizes)."""
    return RESUMABLE_KEYS + tuple(experiment.resumable_keys)

