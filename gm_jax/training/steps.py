"""Pure train steps: one device, `jax.pmap`, or `jax.jit` over a sharded mesh.

All three run the same *update function*

    update_fn(state, batch, keys, axis_name) -> (new_state, metrics)

where `batch` is a dict of arrays with a leading batch axis, `keys` is a typed
PRNG key array [B] with one key per example, `axis_name` is `"batch"` when
the update runs per device, under pmap and sharded (where the function must
average its gradients, metrics and any batch statistics over devices with
`lax.pmean(..., axis_name)`; `gm_jax.nn.pmean` does this) and None otherwise,
and `metrics` is a dict of scalars. The usual update,
one optimizer step on a loss, is `loss_update(loss_fn)` for a

    loss_fn(params, batch, keys) -> (loss, metrics)

with `loss` the mean over the batch (nats per example). Models with their own
update (a GAN's two-player step, models with batch statistics) write an
update function and get the three kinds of parallelism for free.

The per-example keys are split from the step key over the *global* batch
before any sharding, so example `i` draws the same noise whichever device
holds it, and the three variants give the same parameters for the same global
batch (up to the order of float additions in the gradient mean).

Parallelism:

* `"none"`: `jax.jit` on the default device;
* `"pmap"`: `jax.pmap` over all local devices, state replicated with a
  leading device axis, the update averages with `lax.pmean`;
* `"sharded"`: `jax.jit` over a 1-D `jax.make_mesh` mesh named `"batch"`: the
  batch is sharded on its leading axis with `NamedSharding`, the state is
  replicated, and the update runs on each device's rows under `jax.shard_map`
  with `axis_name="batch"`, averaging with `lax.pmean` as under pmap. So the
  gradient is all-reduced where the update says, once per step. (Left to XLA's
  sharding propagation, a `lax.scan`'s weight gradient was all-reduced inside
  the backward loop, once per time step.)

Several processes (`gm_jax.training.distributed`): only `"sharded"` runs, over
the global mesh of every process's devices (`jax.devices()`). Every process
reads only its rows of each global batch (`process_rows`; the data order is a
function of `(seed, step)`, so the global batch is the same whatever the
process count) and passes them; `put_batch` assembles the global array from
them (`jax.make_array_from_process_local_data`). `"none"` and `"pmap"` are
refused with a ValueError (`pmap` over local devices plus a cross-process mean
is not implemented: `"sharded"` does the same work over the global mesh).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState
from jax.sharding import NamedSharding, PartitionSpec as P

from gm_jax.nn import pmean

PARALLEL_CHOICES = ("none", "pmap", "sharded")
LossFn = Callable[[Any, dict, jax.Array], tuple[jax.Array, dict]]
UpdateFn = Callable[[Any, dict, jax.Array, "str | None"], tuple[Any, dict]]


def loss_update(loss_fn: LossFn) -> UpdateFn:
    """The update function of one optimizer step on `loss_fn` for a flax `TrainState`.

    Metrics are `{"loss": loss, **aux_metrics}`, averaged over devices under pmap and sharded.
    """

    def update(state: TrainState, batch: dict, keys: jax.Array, axis_name: str | None = None):
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, batch, keys)
        grads, metrics = pmean((grads, {"loss": loss, **metrics}), axis_name)
        return state.apply_gradients(grads=grads), metrics

    return update


class TrainStep:
    """A compiled train step with the placement that goes with it.

    Usage::

        step = TrainStep(loss_update(loss_fn), parallel="pmap")
        state = step.put_state(state)          # place (replicate) once
        for batch in batches:
            state, metrics = step(state, batch, jax.random.fold_in(key, i))
        state = step.get_state(state)          # back to one plain copy

    Args:
      update_fn: see the module docstring (e.g. `loss_update(loss_fn)`).
      parallel: one of `PARALLEL_CHOICES`.
      devices: devices to use (default: `"none"` the first local device, `"pmap"` the local devices,
        `"sharded"` `jax.devices()`, which are all processes' devices in a multi-process run).
      compiler_options: XLA options for this program (`jax.jit(..., compiler_options=...)`, e.g. an
        experiment's `compiler_options`); `"pmap"` programs take the process defaults (`jax.pmap` has
        no per-program options).

    Raises:
      ValueError: unknown `parallel`; `"none"` or `"pmap"` in a multi-process run (use `"sharded"`).
    """

    def __init__(self, update_fn: UpdateFn, parallel: str = "none", devices=None, compiler_options=None):
        if parallel not in PARALLEL_CHOICES:
            raise ValueError(f"unknown parallel={parallel!r}; valid choices: {list(PARALLEL_CHOICES)}")
        if jax.process_count() > 1 and parallel != "sharded":
            raise ValueError(f"parallel={parallel!r} runs within one process; this run has {jax.process_count()} "
                             "processes: use parallel=sharded (--config.parallel=sharded), which spans the "
                             "devices of all processes")
        self.parallel = parallel
        if devices is None:
            devices = jax.devices() if parallel == "sharded" else jax.local_devices()
        self.devices = list(devices)
        self.num_devices = 1 if parallel == "none" else len(self.devices)
        self._update_fn = update_fn

        if parallel != "none":
            # Auto axes: XLA propagates the batch sharding through every op (gathers, reshapes) itself;
            # jax.make_mesh's default (Explicit axes since JAX 0.9) makes such ops fail to trace.
            self.mesh = jax.make_mesh((self.num_devices,), ("batch",), devices=self.devices,
                                      axis_types=(jax.sharding.AxisType.Auto,))
            self._replicated = NamedSharding(self.mesh, P())
            # sharded: the batch axis; pmap: the leading device axis of every input
            self._batch_sharding = NamedSharding(self.mesh, P("batch"))
        if parallel == "none":
            self._step = jax.jit(self._global_step, donate_argnums=0, compiler_options=compiler_options)
        elif parallel == "sharded":
            self._step = jax.jit(
                self._sharded_step,
                in_shardings=(self._replicated, self._batch_sharding, self._replicated),
                out_shardings=(self._replicated, self._replicated),
                donate_argnums=0,
                compiler_options=compiler_options,
            )
        else:
            # key and metrics are the same on every device: unmapped in and out
            self._step = jax.pmap(self._pmap_step, axis_name="batch", devices=self.devices,
                                  in_axes=(0, 0, None), out_axes=(0, None), donate_argnums=0)

    # -- the updates ---------------------------------------------------------
    def _global_step(self, state, batch, key):
        keys = jax.random.split(key, _batch_size(batch))
        return self._update_fn(state, batch, keys, None)

    def _sharded_step(self, state, batch, key):
        keys = jax.random.split(key, _batch_size(batch))  # over the global batch, sharded with it
        # check_vma=False: pmap's semantics, which every update is written for (a scan's carry may start
        # device-invariant and turn per-device; the update's pmean makes the outputs equal on every device).
        per_device = jax.shard_map(lambda s, b, k: self._update_fn(s, b, k, "batch"), mesh=self.mesh,
                                   in_specs=(P(), P("batch"), P("batch")), out_specs=(P(), P()),
                                   check_vma=False)
        return per_device(state, batch, keys)

    def _pmap_step(self, state, batch, key):
        local = _batch_size(batch)
        keys = jax.random.split(key, local * self.num_devices)
        keys = jax.lax.dynamic_slice_in_dim(keys, jax.lax.axis_index("batch") * local, local)
        return self._update_fn(state, batch, keys, "batch")

    # -- placement -----------------------------------------------------------
    def put_state(self, state):
        """Place a plain state for this step (replicated for pmap and sharded; every process passes the
        same state in a multi-process run)."""
        if self.parallel == "pmap":
            return self._put_per_device(state)
        if self.parallel == "sharded":
            if jax.process_count() > 1:  # from host memory: a single-device array of another process can't move
                state = jax.tree_util.tree_map(_to_host, state)
            return jax.device_put(state, self._replicated)
        return jax.device_put(state, self.devices[0])

    def get_state(self, state):
        """The inverse of `put_state`: one plain copy on one local device (the first replica under pmap,
        this process's first copy under sharded)."""
        if self.parallel == "pmap":
            return jax.tree_util.tree_map(lambda x: x[0], state)
        return local_copy(state)

    def check_batch_size(self, batch_size: int) -> None:
        """Raise ValueError unless a global batch of `batch_size` examples splits evenly over the devices."""
        if batch_size % self.num_devices:
            where = f" of {jax.process_count()} processes" if jax.process_count() > 1 else ""
            raise ValueError(
                f"batch size {batch_size} must be divisible by the number of devices ({self.num_devices}{where}) "
                f"for parallel={self.parallel!r}"
            )

    def put_batch(self, batch: dict) -> dict:
        """Place a host batch: [B, ...] -> [devices, B / devices, ...] for pmap, sharded on the batch axis
        for `"sharded"`. With several processes, `batch` is this process's rows of the global batch
        (`process_rows`), and the global array of B = rows x devices / local devices is assembled.

        Raises:
          ValueError: B is not divisible by the number of devices.
        """
        if self.parallel == "sharded" and jax.process_count() > 1:
            local = _batch_size(batch)
            b = local * self.num_devices // len(self._local_mesh_devices())
            rows = self.process_rows(b)
            if rows.stop - rows.start != local:
                raise ValueError(f"this process's devices hold {rows.stop - rows.start} rows of a global batch of "
                                 f"{b}; got {local} rows (pass the rows of process_rows(batch_size))")
            return jax.tree_util.tree_map(lambda x: jax.make_array_from_process_local_data(
                self._batch_sharding, np.asarray(x), (b, *x.shape[1:])), batch)
        b = _batch_size(batch)
        self.check_batch_size(b)
        if self.parallel == "pmap":
            batch = jax.tree_util.tree_map(lambda x: x.reshape(self.num_devices, -1, *x.shape[1:]), batch)
            return jax.device_put(batch, self._batch_sharding)
        if self.parallel == "sharded":
            return jax.device_put(batch, self._batch_sharding)
        return jax.device_put(batch, self.devices[0])

    def _local_mesh_devices(self) -> list:
        return [d for d in self.devices if d.process_index == jax.process_index()]

    def process_rows(self, batch_size: int) -> slice | None:
        """The rows of a global batch of `batch_size` examples that this process reads and passes (those its
        devices hold: contiguous on the 1-D mesh); None in a single-process run (every row).

        Raises:
          ValueError: `batch_size` is not divisible by the number of devices.
        """
        if jax.process_count() == 1:
            return None
        self.check_batch_size(batch_size)
        b = batch_size
        index = self._batch_sharding.addressable_devices_indices_map((b,))
        starts = sorted(i[0].start or 0 for i in index.values())
        stops = sorted(b if i[0].stop is None else i[0].stop for i in index.values())
        rows = slice(starts[0], stops[-1])
        if stops[-1] - starts[0] != b // self.num_devices * len(index):
            raise ValueError(f"this process's devices hold rows that are not contiguous in the batch: {index}")
        return rows

    def _put_per_device(self, tree):
        """Replicate `tree` along a new leading device axis, one copy per device (pmap's layout)."""
        stacked = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (self.num_devices, *jnp.shape(x))), tree)
        return jax.device_put(stacked, self._batch_sharding)

    def lower(self, state, batch: dict, key: jax.Array) -> jax.stages.Lowered:
        """The step lowered for `state` (as `put_state` returns it, or its `jax.ShapeDtypeStruct`s) and a
        global host `batch`, without running it: `.compile().cost_analysis()` gives XLA's FLOP count
        (`benchmarks.flops`)."""
        return self._step.lower(state, self.put_batch(batch), key)

    def __call__(self, state, batch: dict, key: jax.Array):
        """One update. `state` as returned by `put_state`; `batch` a global host batch
        (dict of [B, ...] arrays); `key` the step's key. Returns (new state, metrics dict of scalars)."""
        batch = self.put_batch(batch)
        return self._step(state, batch, key)


def local_copy(tree):
    """`tree` with every array that spans several processes replaced by this process's first copy
    (`addressable_data(0)`, a single-device array): for replicated states and metrics, which Python
    cannot read (`float`, `np.asarray`) while they are not fully addressable. Other leaves are returned as is."""
    return jax.tree_util.tree_map(
        lambda x: x.addressable_data(0) if isinstance(x, jax.Array) and not x.is_fully_addressable else x, tree)


def _to_host(x):
    """A NumPy copy of an array leaf (typed PRNG keys and non-arrays as they are)."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return x
    return np.asarray(x) if isinstance(x, jax.Array) else x


def _batch_size(batch) -> int:
    return jax.tree_util.tree_leaves(batch)[0].shape[0]


def all_finite(tree) -> bool:
    """True when every floating leaf of `tree` is finite (no NaN or inf); checked on the host (NumPy), so
    no program is compiled for it. Leaves must be fully addressable (see `local_copy`)."""
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree)
               if jnp.issubdtype(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype, jnp.floating))
