"""XLA:CPU settings of the library: which kernels run the convolutions, and where a step's buffers live.

XLA:CPU hands convolutions to YNNPACK by default; `import gm_jax` switches them to XLA's own (Eigen)
kernels for the process, by adding `CONV_FLAG` to XLA_FLAGS. XLA reads XLA_FLAGS once, when its first
backend starts, so this happens on import, before any computation, and a flag of the same name that the
user set wins (as does GM_JAX_XLA_CPU_CONV=ynn). Measured on the library's convolutional train steps
(`python -m benchmarks.conv_grad`, `python -m benchmarks.twins`, figures in the README "Against PyTorch"):
YNNPACK's convolution kernel gradients are the slow pass, and every PixelCNN-family, DCGAN and conv-VAE
step is faster without it; an
experiment whose step is faster with it (Glow: many small convolutions that YNNPACK runs side by side)
sets `xla_cpu_convolutions = "ynnpack"`, and its train step is compiled with `YNNPACK_CONV_OPTIONS`. Only
jaxlib versions it was measured on get the flag (an XLA that does not know a flag in XLA_FLAGS aborts).

The same import keeps XLA:CPU's temporary buffers in the process heap (`keep_buffers_in_heap`). Each
execution of a compiled step allocates one block for all its intermediates (hundreds of MB for a train
step). glibc's malloc serves a block that large with a fresh `mmap` and returns it with `munmap` when
the step ends, so every step page-faults its whole working set in again (90,000 minor faults of 4 KB
per Transformer step). With mmap off and no trimming (`mallopt(M_MMAP_MAX, 0)`, an unlimited
`M_TRIM_THRESHOLD`) the block is reused from the heap. glibc serves blocks over 64 MB from `mmap` on
any thread but the main one whatever the settings, so single-device CPU programs run on the calling
thread (`jax_cpu_enable_async_dispatch=False`) instead of XLA's dispatch thread. Figures in the README
("Against PyTorch"). Not airtight: on a loaded machine a process sometimes has the block mapped afresh
for a run of calls all the same (cause not found; measurements in the README). Opt out with
GM_JAX_XLA_CPU_HEAP=off; a JAX_CPU_ENABLE_ASYNC_DISPATCH the user set wins.
"""
from __future__ import annotations

import ctypes
import importlib.metadata
import os
import sys
import warnings

CONV_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
MEASURED_JAXLIB = ((0, 10), (0, 11))  # [first, last) (major, minor) of the jaxlib versions measured
# per-program compiler options that put the convolutions back in YNNPACK (XLA:CPU's default list)
YNNPACK_CONV_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,"
                        "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_REDUCE"}
CONVOLUTIONS = ("xla", "ynnpack")


CONV_ENV, HEAP_ENV = "GM_JAX_XLA_CPU_CONV", "GM_JAX_XLA_CPU_HEAP"
ENV_CHOICES = {CONV_ENV: ("xla", "ynn"), HEAP_ENV: ("on", "off")}  # the first is the default (variable unset)


def env_choice(name: str) -> str:
    """The value of the environment variable `name` (a key of `ENV_CHOICES`), lower-cased; its default when
    unset or empty.

    Raises:
      ValueError: a value not in `ENV_CHOICES[name]` (names the valid ones).
    """
    value = os.environ.get(name, "").strip().lower() or ENV_CHOICES[name][0]
    if value not in ENV_CHOICES[name]:
        raise ValueError(f"{name}={os.environ[name]!r}; valid values: {list(ENV_CHOICES[name])} "
                         f"(unset: {ENV_CHOICES[name][0]!r})")
    return value


def set_conv_flag() -> bool:
    """Append `CONV_FLAG` to XLA_FLAGS unless the user set that flag, GM_JAX_XLA_CPU_CONV=ynn, or the
    installed jaxlib is outside `MEASURED_JAXLIB`; warns if JAX's backends already started (too late to
    take effect). Returns whether XLA_FLAGS holds `CONV_FLAG`.

    Raises:
      ValueError: GM_JAX_XLA_CPU_CONV set to a value other than xla or ynn (`env_choice`).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    conv = env_choice(CONV_ENV)
    if "xla_cpu_experimental_ynn_fusion_type" in flags:
        return CONV_FLAG in flags
    if conv == "ynn":
        return False
    if not _jaxlib_measured():
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {CONV_FLAG}".strip()
    if backends_started():
        warnings.warn("gm_jax was imported after JAX started its backends, so XLA:CPU keeps YNNPACK's "
                      "convolutions (slower train steps on CPU): import gm_jax before running any JAX "
                      f"computation, or set XLA_FLAGS={CONV_FLAG} yourself", stacklevel=4)
    return True


def backends_started() -> bool:
    """Whether JAX has started its backends in this process (after which XLA_FLAGS is not read again)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge
        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return False


def compiler_options(convolutions: str) -> dict:
    """Per-program compiler options (`jax.jit(..., compiler_options=...)`) for an experiment's
    `xla_cpu_convolutions`: {} for "xla" (the process default `import gm_jax` set), or, for "ynnpack"
    when that default is in force, `YNNPACK_CONV_OPTIONS`.

    Raises:
      ValueError: `convolutions` not in `CONVOLUTIONS`.
    """
    if convolutions not in CONVOLUTIONS:
        raise ValueError(f"xla_cpu_convolutions must be one of {CONVOLUTIONS}, got {convolutions!r}")
    return dict(YNNPACK_CONV_OPTIONS) if convolutions == "ynnpack" and CONV_FLAG_SET else {}


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_MMAP_MAX = 65536  # glibc's initial M_MMAP_MAX


def keep_buffers_in_heap() -> bool:
    """Keep XLA:CPU's per-execution buffers in the process heap instead of mapping and unmapping them every
    step (see the module docstring): with glibc, `mallopt(M_MMAP_MAX, 0)` and an unlimited
    `M_TRIM_THRESHOLD` for the process, and `jax_cpu_enable_async_dispatch=False` unless the user set
    JAX_CPU_ENABLE_ASYNC_DISPATCH. Does nothing with GM_JAX_XLA_CPU_HEAP=off, off glibc, or on a jaxlib
    outside `MEASURED_JAXLIB`; warns if JAX's backends already started (the dispatch setting is read
    when the CPU client starts). Returns whether the heap settings were applied (if glibc refuses the
    second, the first is undone: nothing changes).

    Raises:
      ValueError: GM_JAX_XLA_CPU_HEAP set to a value other than on or off (`env_choice`).
    """
    if env_choice(HEAP_ENV) == "off" or not _jaxlib_measured():
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: mallopt's parameters are glibc's
    except (OSError, AttributeError):
        return False
    if not libc.mallopt(M_MMAP_MAX, 0):
        return False
    if not libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1):  # all or nothing: mmap back on as glibc starts
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        return False
    if "JAX_CPU_ENABLE_ASYNC_DISPATCH" not in os.environ:
        import jax
        jax.config.update("jax_cpu_enable_async_dispatch", False)
        if backends_started():
            warnings.warn("gm_jax was imported after JAX started its backends, so XLA:CPU keeps dispatching "
                          "on its own thread (its step buffers are mapped afresh every step): import gm_jax "
                          "before running any JAX computation", stacklevel=4)
    return True


def _jaxlib_measured() -> bool:
    try:
        version = tuple(int(v) for v in importlib.metadata.version("jaxlib").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    return MEASURED_JAXLIB[0] <= version < MEASURED_JAXLIB[1]


CONV_FLAG_SET = set_conv_flag()
HEAP_SET = keep_buffers_in_heap()
