"""Multi-process runs on JAX's own distributed runtime (`jax.distributed`).

Every process of a run executes the same program (JAX's multi-controller model):
`initialize` connects it to the others before JAX starts its backend, then
`jax.devices()` lists the devices of all processes, `jax.local_devices()` this
process's. The `sharded` train step spans the global mesh (`TrainStep`), each
process reads and places only its rows of every global batch, and process 0 alone writes
the run's files (`is_writer`).

Where the process layout comes from, first match wins:

1. the arguments (`--coordinator_address --num_processes --process_id` on the
   command line);
2. the environment: `JAX_COORDINATOR_ADDRESS` (`host:port` of process 0),
   `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`;
3. JAX's cluster auto-detection (Slurm, Open MPI, Cloud TPU, Kubernetes);
4. none of these: one process, nothing is initialised.

On CPU the cross-process collectives are gloo's
(`jax_cpu_collectives_implementation`), set here unless already chosen.
"""
from __future__ import annotations

import os
import socket
import time

import jax

DEFAULT_TIMEOUT_S = 300  # seconds to wait for the coordinator and the other processes (JAX's own default)
ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def _env_int(name: str, value: int | None) -> int | None:
    if value is not None or not os.environ.get(name):
        return value
    try:
        return int(os.environ[name])
    except ValueError:
        raise ValueError(f"${name}={os.environ[name]!r} is not an integer") from None


def _wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Poll a TCP connection to `address` ("host:port") until it is accepted.

    Raises:
      ValueError: the address is not host:port, or nothing accepts connections there within `timeout_s` seconds.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"coordinator address {address!r} must be host:port, e.g. 10.0.0.1:1234")
    host = host.strip("[]")  # [::1]:1234
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(5.0, max(timeout_s, 0.1))):
                return
        except OSError as e:
            if time.monotonic() >= deadline:
                raise ValueError(
                    f"the JAX coordinator at {address} could not be reached within {timeout_s:g} s "
                    f"({type(e).__name__}: {e}); start process 0 first (it runs the coordinator), check the "
                    "address and port, or raise --distributed_timeout_s") from None
            time.sleep(0.2)


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
    """Join a multi-process run (`jax.distributed.initialize`), or stay one process when none is configured.

    Call before anything starts JAX's backend (a computation, `jax.devices()`, `device_put`). Arguments
    left None come from `$JAX_COORDINATOR_ADDRESS`, `$JAX_NUM_PROCESSES`, `$JAX_PROCESS_ID`, then from
    JAX's cluster auto-detection (Slurm, Open MPI, TPU); see the module docstring. Does nothing when the
    distributed runtime is already initialised.

    Args:
      coordinator_address: "host:port" of process 0, where it runs the coordinator service; every process
        passes the same one.
      num_processes: number of processes in the run.
      process_id: this process's index, 0 .. num_processes - 1.
      timeout_s: seconds to wait for the coordinator (processes other than 0) and for all processes to
        register (JAX's `initialization_timeout`).

    Returns:
      `jax.process_count()` after initialisation when the run is multi-process, 1 when nothing was
      initialised.

    Raises:
      ValueError: a process other than 0 cannot reach the coordinator within `timeout_s` (the message names
        the address and the timeout); an address that is not host:port; a non-integer environment value;
        `num_processes`/`process_id` out of range, or given without a coordinator address.
      RuntimeError: a multi-process layout was requested after JAX's backend had started.
    """
    if jax.distributed.is_initialized():
        return jax.process_count()
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    num_processes = _env_int(ENV_NUM_PROCESSES, num_processes)
    process_id = _env_int(ENV_PROCESS_ID, process_id)
    if coordinator_address is None and (num_processes, process_id) != (None, None):
        if num_processes in (None, 1) and process_id in (None, 0):
            return 1
        raise ValueError(f"num_processes={num_processes} and process_id={process_id} need a coordinator address "
                         f"(--coordinator_address or ${ENV_COORDINATOR})")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1; got {num_processes}")
    if num_processes is not None and process_id is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must be in 0..{num_processes - 1}; got {process_id}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0; got {timeout_s}")
    if coordinator_address is None:  # JAX's cluster auto-detection, or one process
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():  # too late to join a cluster: this stays one process
            return 1
        _use_gloo_on_cpu()
        try:
            jax.distributed.initialize(initialization_timeout=int(max(1, timeout_s)))
        except ValueError as e:  # no cluster detected ("coordinator_address should be defined")
            if "coordinator_address" in str(e):
                return 1
            raise
        return jax.process_count()
    if process_id not in (None, 0):
        t0 = time.monotonic()
        _wait_for_coordinator(coordinator_address, timeout_s)
        timeout_s = max(1.0, timeout_s - (time.monotonic() - t0))
    _use_gloo_on_cpu()
    jax.distributed.initialize(coordinator_address, num_processes=num_processes, process_id=process_id,
                               initialization_timeout=int(max(1, round(timeout_s))))
    return jax.process_count()


def _use_gloo_on_cpu() -> None:
    """gloo for cross-process collectives of the CPU backend, unless another implementation was chosen
    (the GPU and TPU backends have their own; the setting only concerns the CPU client)."""
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def is_writer() -> bool:
    """True in the process that writes the run's files (process 0; the only one of a single-process run)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier `name` (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
