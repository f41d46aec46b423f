"""Orbax checkpointing of a TrainState.

Checkpoints live in `workdir/checkpoints/<step>/`. Orbax writes each one to a
temporary directory and renames it when complete, so an interrupted save never
replaces the last good checkpoint, and only complete steps are listed.
"""
from __future__ import annotations

import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp


def checkpoint_manager(workdir: str | os.PathLike, save_every: int = 1, keep: int = 3,
                       read_only: bool = False) -> ocp.CheckpointManager:
    """An orbax `CheckpointManager` over `workdir/checkpoints`.

    Args:
      workdir: the run directory.
      save_every: `save` only writes steps that are multiples of this
        (unless `force=True`).
      keep: how many most recent checkpoints are kept.
      read_only: open without creating or deleting anything (for `gm_jax.load`).
    """
    directory = Path(workdir).resolve() / "checkpoints"
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=save_every, max_to_keep=keep, create=not read_only, read_only=read_only
    )
    return ocp.CheckpointManager(directory, options=options)


def save(manager: ocp.CheckpointManager, step: int, state, force: bool = False) -> bool:
    """Save `state` at `step` (asynchronously). Returns whether a save was started."""
    return manager.save(step, args=ocp.args.StandardSave(state), force=force)


def restore(manager: ocp.CheckpointManager, target, step: int | None = None):
    """Restore the checkpoint at `step` (default: the latest) into the structure of `target`.

    Args:
      manager: from `checkpoint_manager`.
      target: a state of the right structure (concrete or `jax.ShapeDtypeStruct`s);
        only shapes and dtypes are used.
      step: which step; None for the latest complete one.

    Returns:
      The restored state, as plain arrays.

    Raises:
      FileNotFoundError: there is no checkpoint (at `step`).
      ValueError: the checkpoint exists but cannot be read into `target`
        (corrupt files, or a different model / config).
    """
    step = manager.latest_step() if step is None else step
    if step is None or step not in manager.all_steps():
        raise FileNotFoundError(f"no checkpoint{'' if step is None else f' at step {step}'} in {manager.directory}")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, target)
    try:
        return manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # orbax/tensorstore raise many types for unreadable files
        raise ValueError(
            f"checkpoint {Path(manager.directory) / str(step)} could not be restored into the expected "
            f"structure (corrupt, or written by a different model/config): {type(e).__name__}: {e}"
        ) from e
