"""Transposed convolution: `flax.linen.ConvTranspose` vs `gm_jax.nn.FractionallyStridedConv2D`.

    python -m benchmarks.conv_transpose [--repeats 20] [--batch 64] [--out benchmarks/results] [--quick]

Both compute the same function (a SAME-padded 4x4 stride-2 transposed convolution,
the DCGAN generator's upsampling layer; equal to float32 round-off, tested in
`tests/test_nn.py`). `nn.ConvTranspose` runs `jax.lax.conv_transpose`, a
convolution of the zero-dilated input; `FractionallyStridedConv2D` runs one
stride-1 convolution of the undilated input per output phase, with the kernel
taps that land on it, and interleaves the phases. For each
variant, in the same run and alternating between them, this times:

* the layers of the DCGAN generators of `experiments.dcgan_mnist` (default
  7x7x64 -> 14x14x32 -> 28x28x1, and the wider 7x7x128 -> 14x14x64): the
  forward pass and the kernel gradient of `sum(y**2)`;
* the whole unconditional DCGAN train step (`GAN.update`: one discriminator and
  one generator update) of `dcgan_mnist` with G 64-32 / D 32-64 and with
  G 128-64 / D 64-128, PacGAN packs of 4 and no self-conditioning clusters.

Every function is jitted and compiled first (one warm-up call excluded); each
timing is one call ended by `jax.block_until_ready`; the median over
`--repeats` is reported in milliseconds, with the speed-up old / new.

Writes `OUT/conv_transpose.json` and `OUT/conv_transpose.md` (also printed).
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

from benchmarks.harness import write_report

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
VARIANTS = ("flax ConvTranspose", "FractionallyStridedConv2D")
PACK = 4  # the unconditional DCGAN train steps use a PacGAN discriminator with packs of 4


def _conv_transpose(features, kernel_size, strides, use_bias=True, kernel_init=nn.initializers.lecun_normal()):
    """`nn.ConvTranspose` with `FractionallyStridedConv2D`'s signature (SAME padding)."""
    return nn.ConvTranspose(features, tuple(kernel_size), tuple(strides), "SAME", use_bias=use_bias,
                            kernel_init=kernel_init)


def _layer_fns(variant: str, cin: int, cout: int, size: int, batch: int):
    from gm_jax.nn import FractionallyStridedConv2D

    make = _conv_transpose if variant == VARIANTS[0] else FractionallyStridedConv2D
    layer = make(cout, (4, 4), (2, 2), use_bias=False)
    x = jax.random.normal(jax.random.key(0), (batch, size, size, cin))
    params = layer.init(jax.random.key(1), x)
    forward = jax.jit(layer.apply)
    kernel_grad = jax.jit(jax.grad(lambda p, x: jnp.sum(layer.apply(p, x) ** 2)))
    return {"forward": (forward, (params, x)), "kernel gradient": (kernel_grad, (params, x))}


def _step_fn(variant: str, g_channels, d_channels, batch: int):
    from experiments import dcgan_mnist
    from gm_jax.models import gan

    original = gan.FractionallyStridedConv2D
    if variant == VARIANTS[0]:
        gan.FractionallyStridedConv2D = _conv_transpose  # the generator is built at call time
    try:
        config = dcgan_mnist.get_config()
        config.g_channels, config.d_channels, config.batch_size = g_channels, d_channels, batch
        config.clusters, config.pack = 0, PACK  # unconditional: no k-means clusters to condition on
        experiment = dcgan_mnist.Experiment(config)
        state = experiment.init_state(jax.random.key(0))
        step = jax.jit(lambda s, x, k: experiment.gan.update(s, x, None, k))
        x = jax.random.uniform(jax.random.key(1), (batch, 28, 28, 1), minval=-1.0, maxval=1.0)
        keys = jax.random.split(jax.random.key(2), batch)
        jax.block_until_ready(step(state, x, keys))  # trace (and compile) while the variant is installed
    finally:
        gan.FractionallyStridedConv2D = original
    return step, (state, x, keys)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conv_transpose", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="small layers and steps (a smoke test)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.batch < 1:
        parser.error("--repeats and --batch must be >= 1")
    layers = [(64, 32, 7), (32, 1, 14), (128, 64, 7)] if not args.quick else [(8, 4, 7)]
    steps = [((64, 32), (32, 64)), ((128, 64), (64, 128))] if not args.quick else [((8, 4), (4, 8))]
    cases = []  # (what, {variant: (fn, args)})
    for cin, cout, size in layers:
        fns = {v: _layer_fns(v, cin, cout, size, args.batch) for v in VARIANTS}
        for kind in ("forward", "kernel gradient"):
            cases.append((f"layer {size}x{size}x{cin} -> {2 * size}x{2 * size}x{cout}, {kind}",
                          {v: fns[v][kind] for v in VARIANTS}))
    for g, d in steps:
        cases.append((f"DCGAN train step, G {g[0]}-{g[1]} / D {d[0]}-{d[1]}, PacGAN pack {PACK}",
                      {v: _step_fn(v, g, d, args.batch) for v in VARIANTS}))
    records = []
    for what, fns in cases:
        for fn, fargs in fns.values():
            jax.block_until_ready(fn(*fargs))  # compile + warm up
        timings = {v: [] for v in VARIANTS}
        for _ in range(args.repeats):
            for v, (fn, fargs) in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(fn(*fargs))
                timings[v].append(time.perf_counter() - t0)
        med = {v: statistics.median(t) * 1e3 for v, t in timings.items()}
        records.append({"what": what, "batch": args.batch, "median_ms": med, "speedup": med[VARIANTS[0]] / med[VARIANTS[1]],
                        "timings_s": timings})
        print(f"{what}: " + ", ".join(f"{v} {m:.2f} ms" for v, m in med.items()), file=sys.stderr)

    def markdown(recs) -> str:
        lines = ["# Transposed convolution: flax ConvTranspose vs FractionallyStridedConv2D", "",
                 f"- {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}; batch {args.batch}; "
                 f"median of {args.repeats} calls, variants alternated in one run", "",
                 f"| what | {VARIANTS[0]} (ms) | {VARIANTS[1]} (ms) | speed-up |", "|---|---|---|---|"]
        for r in recs:
            lines.append(f"| {r['what']} | {r['median_ms'][VARIANTS[0]]:.2f} | {r['median_ms'][VARIANTS[1]]:.2f} | "
                         f"{r['speedup']:.2f}x |")
        return "\n".join(lines) + "\n"

    return write_report(args.out, "conv_transpose", vars(args) | {"out": str(args.out)}, records, markdown)


if __name__ == "__main__":
    main()
