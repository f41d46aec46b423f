"""Collectives shared by models and train steps.

`pmean(tree, axis_name)` averages over the devices when the update runs per
device (`axis_name` set: "batch" under `jax.pmap` or `jax.shard_map` in
`gm_jax.training.TrainStep`) and is the identity otherwise, so one update
function serves the single-device, pmapped and sharded steps.
"""
from __future__ import annotations

import jax


def pmean(tree, axis_name: str | None):
    """`lax.pmean(tree, axis_name)` per device (axis_name set), the identity otherwise.

    Args:
      tree: a pytree of arrays (gradients, metrics, batch statistics).
      axis_name: the device axis name (pmap / shard_map), or None on one device.
    """
    return jax.lax.pmean(tree, axis_name) if axis_name else tree
