"""How much memory a request may use: free bytes on a device (or the host) and an up-front check.

`gm_jax.Model.sample` estimates the bytes of its output (`jax.eval_shape`, no
computation) and calls `check_fits` before drawing anything, so a request
whose output alone cannot fit fails at once with the estimate in the message
instead of dying in an allocation (`RESOURCE_EXHAUSTED`) minutes later.
"""
from __future__ import annotations

import contextlib
import os

import jax
import numpy as np


def host_available_bytes() -> int:
    """Bytes of host memory available to a new allocation.

    Linux: `MemAvailable` of /proc/meminfo (free memory plus reclaimable page
    cache); elsewhere, or when it cannot be read, the free physical pages
    (`os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")`).
    """
    with contextlib.suppress(OSError, ValueError, IndexError):  # no /proc (macOS) or an unexpected format
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the value is in kB
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_bytes(device: jax.Device | None = None) -> tuple[int, str]:
    """Free bytes where a computation on `device` (default: this process's first device) puts its output.

    Returns:
      (bytes, where): `bytes_limit - bytes_in_use` of `device.memory_stats()`
      when the device reports them (GPU, TPU), with where = "<platform> device
      memory"; otherwise `host_available_bytes()` with where = "host memory"
      (the CPU backend reports no limit).
    """
    device = device if device is not None else jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except (NotImplementedError, RuntimeError):  # backends without memory statistics (XlaRuntimeError: a RuntimeError)
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), f"{device.platform} device memory"
    return host_available_bytes(), "host memory"


def format_bytes(n: float) -> str:
    """A byte count in decimal units (powers of 1000) with one decimal: "7.8 GB", "1.5 kB", "512 B"."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def host_buffer(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised C-contiguous NumPy array whose data is 64-byte aligned.

    Once filled, `jax.device_put` on the CPU backend uses such a buffer in
    place (no copy; the jax array keeps it alive), so assembling a large result
    on the host and returning it as a jax array needs its memory once, not twice.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def check_fits(nbytes: int, what: str, device: jax.Device | None = None, item_bytes: int = 0,
               items: str = "items", host: bool = False) -> None:
    """Refuse a request whose result of `nbytes` bytes would not fit in the free memory.

    Args:
      nbytes: the estimated size of the result.
      what: the request, for the message (e.g. "vae_mnist.sample(num_samples=10000000) returns uint8
        [10000000, 28, 28, 1]").
      device: where the result goes (`available_bytes(device)`; default: JAX's first device).
      item_bytes: bytes of one item of the result (> 0: the message says how many `items` would fit).
      host: check the host's free memory (`host_available_bytes`) instead of the device's.

    Raises:
      ValueError: `nbytes` exceeds the free memory; the message gives both (e.g. "7.8 GB").
    """
    free, where = (host_available_bytes(), "host memory") if host else available_bytes(device)
    if nbytes > free:
        free = max(free, 0)
        fit = ""
        if item_bytes > 0:
            n = free // item_bytes
            fit = f"; at most {n:,} {items} fit, so ask for fewer" if n else f"; not even one of the {items} fits"
        raise ValueError(f"{what}: {format_bytes(nbytes)}, more than the {format_bytes(free)} of {where} "
                         f"available{fit}")
