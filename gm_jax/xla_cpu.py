"""XLA:CPU settings of the library: which kernels run the convolutions.

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
"""
from __future__ import annotations

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


def set_conv_flag() -> bool:
    """Append `CONV_FLAG` to XLA_FLAGS unless the user set that flag, GM_JAX_XLA_CPU_CONV=ynn, or the
    installed jaxlib is outside `MEASURED_JAXLIB`; warns if JAX's backends already started (too late to
    take effect). Returns whether XLA_FLAGS holds `CONV_FLAG`."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" in flags:
        return CONV_FLAG in flags
    if os.environ.get("GM_JAX_XLA_CPU_CONV", "") == "ynn":
        return False
    try:
        version = tuple(int(v) for v in importlib.metadata.version("jaxlib").split(".")[:2])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False
    if not MEASURED_JAXLIB[0] <= version < MEASURED_JAXLIB[1]:
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


CONV_FLAG_SET = set_conv_flag()
