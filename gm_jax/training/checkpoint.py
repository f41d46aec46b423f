"""Verified orbax checkpoints of a TrainState, with fallback to the newest intact step.

Checkpoints live in `workdir/checkpoints/<step>/`. Orbax writes each step to a
temporary directory and renames it when complete, so an interrupted save never
replaces an earlier checkpoint, and only complete steps are listed. Orbax's
TensorStore files carry a CRC32C of their shard *index* only, not of the array
data (a flipped byte in the data loads silently), so each step also gets a
manifest, `<step>/gm_jax_manifest.json`, written right after orbax finishes:
the size and SHA-256 of every file of the step. `Checkpointer.restore` checks a
step against its manifest, restores it, and checks the restored tree against
the expected structure, shapes, dtypes and finiteness; a step that fails any
check is skipped with a `CheckpointWarning` naming it and the reason, and the
newest intact step is used. When steps exist but none is intact, `restore`
raises (it never falls back to a fresh start silently).

A step without a manifest (written before manifests existed, or a process
killed in the moment between orbax's rename and the manifest write) is
restored unverified, with a warning.

Saves are synchronous: the manifest can only be written once the step is on
disk, and a checkpoint every few hundred steps costs little next to training.

Several processes (`gm_jax.training.distributed`): every process calls `save`
and `restore` (orbax coordinates them; its primary host, process 0, writes the
metadata). Process 0 writes the manifest once the step is complete on all
processes, and the others wait for it; every process verifies the manifest
before restoring. The checkpoint directory must be on a file system that all
processes see.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from gm_jax.training.distributed import barrier, is_writer
from gm_jax.training.rundir import utc_stamp, write_text_atomic

MANIFEST = "gm_jax_manifest.json"
ITEM = "default"  # orbax's directory for the one item (the train state) of each step
_HASH_CHUNK = 1 << 20


class CheckpointWarning(UserWarning):
    """A checkpoint step was skipped (failed verification or restore) or restored unverified."""


class CorruptCheckpointError(ValueError):
    """A checkpoint step failed verification, could not be restored, or does not match the expected state."""


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _step_files(step_dir: Path) -> dict[str, Path]:
    """The files of a step directory (relative posix path -> path), the manifest excluded."""
    return {p.relative_to(step_dir).as_posix(): p for p in sorted(step_dir.rglob("*"))
            if p.is_file() and not p.name.startswith(MANIFEST)}


def write_manifest(step_dir: str | os.PathLike) -> Path:
    """Write `step_dir/gm_jax_manifest.json`: size and SHA-256 of every file of the step (atomically)."""
    step_dir = Path(step_dir)
    files = {rel: {"bytes": p.stat().st_size, "sha256": _file_digest(p)} for rel, p in _step_files(step_dir).items()}
    path = step_dir / MANIFEST
    write_text_atomic(path, json.dumps({"format": 1, "algorithm": "sha256", "files": files}, indent=1, sort_keys=True))
    return path


def verify_manifest(step_dir: str | os.PathLike) -> bool:
    """Check a step directory against its manifest.

    Returns:
      True when the step matches its manifest; False when it has no manifest.

    Raises:
      CorruptCheckpointError: the manifest is unreadable, or a file is missing,
        unexpected, of the wrong size or with the wrong SHA-256 (the message names it).
    """
    step_dir = Path(step_dir)
    path = step_dir / MANIFEST
    if not path.is_file():
        return False
    try:
        expected = json.loads(path.read_text())["files"]
        expected = {rel: (int(v["bytes"]), str(v["sha256"])) for rel, v in expected.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise CorruptCheckpointError(f"its manifest {path} is unreadable ({type(e).__name__}: {e})") from e
    actual = _step_files(step_dir)
    missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    if missing or extra:
        raise CorruptCheckpointError(f"files missing {missing[:5]} / unexpected {extra[:5]} against its manifest")
    for rel, (size, digest) in expected.items():
        if actual[rel].stat().st_size != size:
            raise CorruptCheckpointError(f"{rel} has {actual[rel].stat().st_size} bytes, the manifest says {size}")
        if _file_digest(actual[rel]) != digest:
            raise CorruptCheckpointError(f"{rel} does not match its SHA-256 in the manifest (corrupted on disk)")
    return True


def _check_restored(restored, abstract) -> None:
    """Raise CorruptCheckpointError unless `restored` has the structure, shapes and dtypes of `abstract`
    and only finite floating-point values."""
    got, got_def = jax.tree_util.tree_flatten_with_path(restored)
    want, want_def = jax.tree_util.tree_flatten_with_path(abstract)
    if got_def != want_def:
        raise CorruptCheckpointError(f"its tree structure differs from the expected state "
                                     f"({len(got)} leaves, expected {len(want)})")
    for (path, g), (_, w) in zip(got, want):
        g_dtype, w_dtype = np.asarray(g).dtype, getattr(w, "dtype", np.asarray(w).dtype)
        if np.shape(g) != np.shape(w) or g_dtype != w_dtype:
            raise CorruptCheckpointError(
                f"{jax.tree_util.keystr(path)} is {g_dtype}{list(np.shape(g))}, the config expects "
                f"{w_dtype}{list(np.shape(w))} (written by a different config?)")
        if np.issubdtype(g_dtype, np.inexact) and not bool(np.all(np.isfinite(np.asarray(g)))):
            raise CorruptCheckpointError(f"{jax.tree_util.keystr(path)} holds non-finite values")


class Checkpointer:
    """Verified checkpoints in `workdir/checkpoints` (an orbax `CheckpointManager` plus manifests).

    Usage::

        with Checkpointer(workdir, save_every=1000, keep=2) as ckpt:
            state = ckpt.restore(abstract_state)        # newest intact step
            ckpt.save(step, state)                      # step dir + manifest

    Args:
      workdir: the run directory.
      save_every: `save` only writes steps that are multiples of this (unless `force=True`).
      keep: how many most recent checkpoints are kept.
      read_only: open without creating or deleting anything (for `gm_jax.load`, and figures that read
        past steps); otherwise stale temporary directories of interrupted saves are removed. A
        read-only checkpointer involves this process only (no cross-process barriers).
    """

    def __init__(self, workdir: str | os.PathLike, save_every: int = 1, keep: int = 3, read_only: bool = False):
        self.directory = Path(workdir).resolve() / "checkpoints"
        # A reader is this process's alone: in a multi-process run, process 0 reads checkpoints for its
        # figures (a GAN's training snapshots) while the others do not, so it must not wait for them.
        local = ocp.options.MultiprocessingOptions(primary_host=jax.process_index(),
                                                   active_processes={jax.process_index()},
                                                   barrier_sync_key_prefix=f"gm_jax_reader_{jax.process_index()}")
        self._options = ocp.CheckpointManagerOptions(  # a reader neither saves nor deletes (quiets orbax's warnings)
            save_interval_steps=0 if read_only else save_every, max_to_keep=None if read_only else keep,
            create=not read_only, read_only=read_only, cleanup_tmp_directories=not read_only,
            enable_async_checkpointing=False,
            **({"multiprocessing_options": local} if read_only and jax.process_count() > 1 else {}))
        self._manager = ocp.CheckpointManager(self.directory, options=self._options)
        self.skipped: dict[int, str] = {}  # step -> why `restore` skipped it

    def _reopen(self) -> None:
        """A new orbax manager: after a failed restore orbax's item registry can be left inconsistent."""
        self._manager.close()
        self._manager = ocp.CheckpointManager(self.directory, options=self._options)

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._manager.close()

    def steps(self) -> list[int]:
        """The complete steps on disk, ascending (not yet verified)."""
        return sorted(int(s) for s in self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest complete step on disk (not yet verified), or None."""
        steps = self.steps()
        return steps[-1] if steps else None

    def step_dir(self, step: int) -> Path:
        """The directory of checkpoint `step` (`<workdir>/checkpoints/<step>`; it may not exist)."""
        return self.directory / str(int(step))

    def quarantine(self, step: int, dest: str | os.PathLike) -> Path:
        """Move step `step` out of the checkpoint directory into `dest/<step>-<UTC time>/` (kept for
        inspection, never deleted), so a resumed run can write that step again. Returns the new path.
        With several processes every process calls it and process 0 moves the step."""
        target = Path(dest) / f"{int(step)}-{utc_stamp()}"
        if is_writer():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.step_dir(step), target)
        barrier("gm_jax_checkpoint_quarantined")
        self._manager.reload()
        self.skipped.pop(int(step), None)
        return target

    def save(self, step: int, state, force: bool = False) -> bool:
        """Save `state` (a pytree of arrays, all finite) at `step`, then its manifest.

        Returns:
          Whether a checkpoint was written (`save_every` decides unless `force`).
        """
        if not self._manager.save(step, args=ocp.args.StandardSave(state), force=force):
            return False
        self._manager.wait_until_finished()
        barrier("gm_jax_checkpoint_saved")  # the step holds every process's files
        if is_writer():
            write_manifest(self.step_dir(step))
        barrier("gm_jax_checkpoint_manifest")
        return True

    def restore_step(self, target, step: int):
        """Verify and restore exactly `step` into the structure of `target`.

        Raises:
          FileNotFoundError: there is no checkpoint at `step`.
          CorruptCheckpointError: it fails verification or restore, or does not match `target`.
        """
        if step not in self.steps():
            raise FileNotFoundError(f"no checkpoint at step {step} in {self.directory} (steps: {self.steps()})")
        verified = verify_manifest(self.step_dir(step))
        if not (self.step_dir(step) / ITEM).is_dir():
            raise CorruptCheckpointError(f"it has no {ITEM!r} item directory (empty or partly deleted)")
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
        try:
            restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax/tensorstore raise many types for unreadable files
            self._reopen()
            raise CorruptCheckpointError(f"it could not be restored: {type(e).__name__}: {str(e)[:300]}") from e
        _check_restored(restored, abstract)
        if not verified:
            warnings.warn(f"checkpoint {self.step_dir(step)} has no {MANIFEST} (written by an older gm_jax, or "
                          "the run was killed just after the save): restored without verification",
                          CheckpointWarning, stacklevel=3)
        return restored

    def restore(self, target, step: int | None = None):
        """Restore `step`, or with `step=None` the newest intact step, into the structure of `target`.

        With `step=None`, steps are tried newest first; each one that fails
        verification, fails to restore or does not match `target` is recorded in
        `self.skipped` and reported with a `CheckpointWarning`.

        Args:
          target: a state of the right structure (concrete or `jax.ShapeDtypeStruct`s);
            only shapes and dtypes are used.
          step: a specific step (no fallback), or None.

        Returns:
          The restored state, as plain arrays.

        Raises:
          FileNotFoundError: there is no checkpoint (at `step`).
          ValueError: `step` (or, with `step=None`, every step) is corrupt or does not
            match `target`; the message names each step and why.
        """
        if step is not None:
            try:
                return self.restore_step(target, step)
            except CorruptCheckpointError as e:
                raise CorruptCheckpointError(f"checkpoint {self.step_dir(step)} is unusable: {e}") from e
        steps = self.steps()
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        for s in reversed(steps):
            try:
                return self.restore_step(target, s)
            except CorruptCheckpointError as e:
                self.skipped[s] = str(e)
                warnings.warn(f"skipping checkpoint {self.step_dir(s)}: {e}", CheckpointWarning, stacklevel=2)
        reasons = "; ".join(f"step {s}: {why}" for s, why in sorted(self.skipped.items(), reverse=True))
        raise CorruptCheckpointError(
            f"no intact checkpoint in {self.directory} ({reasons}). Restore a backup, start a new --workdir, or "
            "move the checkpoints away to train from scratch")
