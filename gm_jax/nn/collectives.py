"""Collectives shared by models and train steps.

`pmean(tree, axis_name)` averages over the devices of a `jax.pmap` when the
update runs under one (`axis_name` set, "batch" in `gm_jax.training.TrainStep`)
and is the identity otherwise, so one update function serves the single-device,
pmapped and sharded steps: under sharded `jit` XLA inserts the reductions itself.
"""
from __future__ import annotations

import jax


def pmean(tree, axis_name: str | None):
    """`lax.pmean(tree, axis_name)` under pmap (axis_name set), the identity otherwise.

    Args:
      tree: a pytree of arrays (gradients, metrics, batch statistics).
      axis_name: the pmap axis name, or None outside pmap.
    """
    return jax.lax.pmean(tree, axis_name) if axis_name else tree
