"""Convolution backward passes on XLA:CPU: the plain formulation against `gm_jax.nn`'s, layer by layer.

    python -m benchmarks.conv_grad [--repeats 20] [--out benchmarks/results]

For each layer of the default `pixelcnn_mnist` and `gated_pixelcnn_mnist` models (batch 32, 28x28),
in the same run and alternating between the variants, this times the forward pass, the input gradient
(dX) and the kernel gradient (dK) of sum(y * g), each jitted, compiled once, one timing one call ended by
`jax.block_until_ready`, the median over `--repeats` in ms, with GFLOP/s from the layer's own FLOPs
(2 N H W kh kw C_in C_out per pass) and the same run's measured matmul peak. Variants:

* `plain`: what the layer computed before (`jax.lax.conv_general_dilated` with the whole masked kernel;
  shifted convolutions of a `jnp.pad`-ed input; `flax.linen.Dense` on the 4-D map);
* `plain_ynnpack`: the same, compiled with `gm_jax.xla_cpu.YNNPACK_CONV_OPTIONS`: XLA:CPU's default
  convolution kernels (YNNPACK's), which `import gm_jax` replaces by XLA's own for the process;
* `gm_jax`: `gm_jax.nn` now (`MaskedConv2D` with its zero rows cropped, `conv2d`'s 1x1 kernels as
  matmuls and few-input-channel kernels as im2col + matmul, the shifted convolutions' padding inside the
  convolution, `gm_jax.nn.Dense`'s 2-D matmul), on XLA's own convolution kernels.

The figures are those the PyTorch-twin comparison (`python -m benchmarks.twins`) traces back to.
Writes `OUT/conv_grad.json` and `OUT/conv_grad.md`.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks.harness import matmul_peak, write_report
from gm_jax import nn as gnn
from gm_jax import xla_cpu

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
N, H, W = 32, 28, 28

# (name, C_in, C_out, kernel or "dense", mask type or None (a shifted conv: padded on top / left))
LAYERS = [
    ("pixelcnn 7x7 mask A, 1 -> 64", 1, 64, (7, 7), "A"),
    ("pixelcnn 3x3 mask B, 32 -> 32", 32, 32, (3, 3), "B"),
    ("pixelcnn 1x1, 64 -> 32", 64, 32, (1, 1), "B"),
    ("pixelcnn 1x1, 32 -> 64", 32, 64, (1, 1), "B"),
    ("gated vertical 3x5, 32 -> 64", 32, 64, (3, 5), None),
    ("gated horizontal 1x3, 32 -> 64", 32, 64, (1, 3), None),
    ("gated link (dense), 64 -> 64", 64, 64, "dense", None),
]


def _layer(c_in, c_out, kernel, mask):
    """(plain apply, gm_jax apply, params, FLOPs of one pass)."""
    x = jnp.zeros((N, H, W, c_in))
    if kernel == "dense":
        plain, new = nn.Dense(c_out), gnn.Dense(c_out)
        params = plain.init(jax.random.key(0), x)
        return plain.apply, new.apply, params, 2 * N * H * W * c_in * c_out
    if mask is not None:
        new = gnn.MaskedConv2D(c_out, kernel, mask)
        params = new.init(jax.random.key(0), x)
        m = gnn.causal_mask(kernel, c_in, c_out, mask)
        pad = ((kernel[0] // 2,) * 2, (kernel[1] // 2,) * 2)

        def plain_apply(p, x):
            p = p["params"]
            return jax.lax.conv_general_dilated(x, p["kernel"] * m, (1, 1), pad,
                                                dimension_numbers=gnn.layers.DIMENSION_NUMBERS) + p["bias"]
        return plain_apply, new.apply, params, 2 * N * H * W * kernel[0] * kernel[1] * c_in * c_out
    new = gnn.DownShiftedConv2D(c_out, kernel) if kernel[0] > 1 else gnn.DownRightShiftedConv2D(c_out, kernel)
    params = new.init(jax.random.key(0), x)
    pad = (gnn.down_shifted_padding if kernel[0] > 1 else gnn.down_right_shifted_padding)(kernel)

    def plain_apply(p, x):  # the input zero-padded by jnp.pad, then a VALID convolution
        p = p["params"]
        return jax.lax.conv_general_dilated(jnp.pad(x, ((0, 0), *pad, (0, 0))), p["kernel"], (1, 1), "VALID",
                                            dimension_numbers=gnn.layers.DIMENSION_NUMBERS) + p["bias"]
    return plain_apply, new.apply, params, 2 * N * H * W * kernel[0] * kernel[1] * c_in * c_out


def _passes(apply, params, x, g, compiler_options=None):
    fwd = jax.jit(lambda p, x: apply(p, x), compiler_options=compiler_options)
    dx = jax.jit(jax.grad(lambda x, p: jnp.sum(apply(p, x) * g)), compiler_options=compiler_options)
    dk = jax.jit(jax.grad(lambda p, x: jnp.sum(apply(p, x) * g)), compiler_options=compiler_options)
    return {"forward": lambda: fwd(params, x), "dX": lambda: dx(x, params), "dK": lambda: dk(params, x)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.conv_grad", description=__doc__)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)
    peak = matmul_peak()
    records = []
    for name, c_in, c_out, kernel, mask in LAYERS:
        plain, new, params, flops = _layer(c_in, c_out, kernel, mask)
        x = jax.random.normal(jax.random.key(1), (N, H, W, c_in))
        g = jax.random.normal(jax.random.key(2), (N, H, W, c_out))
        fns = {"plain_ynnpack": _passes(plain, params, x, g, xla_cpu.compiler_options("ynnpack") or None),
               "plain": _passes(plain, params, x, g), "gm_jax": _passes(new, params, x, g)}
        for variant in fns.values():
            for f in variant.values():
                jax.block_until_ready(f())
        times = {(v, p): [] for v in fns for p in fns[v]}
        for _ in range(args.repeats):
            for v, passes in fns.items():
                for p, f in passes.items():
                    t0 = time.perf_counter()
                    jax.block_until_ready(f())
                    times[(v, p)].append(time.perf_counter() - t0)
        for p in ("forward", "dX", "dK"):
            ms = {v: 1e3 * statistics.median(times[(v, p)]) for v in fns}
            records.append({"layer": name, "pass": p, "plain_ynnpack_ms": ms["plain_ynnpack"],
                            "plain_ms": ms["plain"], "gm_jax_ms": ms["gm_jax"],
                            "speedup": ms["plain"] / ms["gm_jax"], "speedup_ynnpack": ms["plain_ynnpack"] / ms["gm_jax"],
                            "gflops_per_s": flops / ms["gm_jax"] / 1e6,
                            "peak_fraction": flops / ms["gm_jax"] / 1e6 / peak})
        print(f"{name}: done", file=sys.stderr, flush=True)
    settings = {"repeats": args.repeats, "batch": N, "matmul_peak_gflops": peak}

    def markdown(records):
        lines = ["# Convolution passes on XLA:CPU: plain vs gm_jax.nn", "",
                 f"- batch {N}, 28x28; median of {args.repeats}; matmul peak of the same run {peak:.0f} GFLOP/s;",
                 "  GFLOP/s counts the whole (unmasked) kernel's FLOPs, so a cropped masked layer can exceed 'plain'.",
                 "- plain on YNNPACK: XLA:CPU's default convolution kernels (before `import gm_jax` replaced "
                 "them by XLA's own); plain and gm_jax: on XLA's own", "",
                 "| layer | pass | plain on YNNPACK ms | plain ms | gm_jax ms | speed-up over plain on YNNPACK "
                 "| over plain | gm_jax GFLOP/s | % of matmul peak |",
                 "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in records:
            lines.append(f"| {r['layer']} | {r['pass']} | {r['plain_ynnpack_ms']:.2f} | {r['plain_ms']:.2f} "
                         f"| {r['gm_jax_ms']:.2f} | {r['speedup_ynnpack']:.2f} | {r['speedup']:.2f} "
                         f"| {r['gflops_per_s']:.0f} | {100 * r['peak_fraction']:.0f}% |")
        return "\n".join(lines) + "\n"

    write_report(args.out, "conv_grad", settings, records, markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
