"""Side-by-side train-step benchmarks: each gm_jax default model against a parameter-identical PyTorch twin.

    pip install -e .[bench] --extra-index-url https://download.pytorch.org/whl/cpu
    python -m benchmarks.twins [--only pixelcnn_mnist ...] [--compile]
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m benchmarks.twins   # + the sharded step

One module per family holds its twins (`TWINS`); `benchmarks.twins.common` the harness (the checks,
the interleaved timing, the FLOP counts). Results: `benchmarks/results/twins.md`.
"""
from __future__ import annotations

import importlib

FAMILIES = ("vae", "pixelcnn", "pixelcnn_pp", "sequences", "wavenet", "gan", "flows")


def all_twins() -> list:
    """Every registered twin, in `FAMILIES` order."""
    return [t for fam in FAMILIES for t in importlib.import_module(f"benchmarks.twins.{fam}").TWINS]


def markdown(records, settings) -> str:
    """The results table: median ms/step, ratios (PyTorch / gm_jax: > 1 means gm_jax is faster), GFLOP/s."""
    peaks = settings["matmul_peak_gflops"]
    lines = ["# gm_jax against PyTorch twins (train steps)", "",
             f"- measured matmul peak (jitted 2048x2048 float32, before / after the run): {peaks[0]:.0f} / "
             f"{peaks[1]:.0f} GFLOP/s; each entry's % of matmul peak is against the same matmul timed in that "
             "entry's rounds (its own column)",
             f"- {settings['rounds']} interleaved rounds of {settings['steps']} steps each; medians; "
             "ratio = PyTorch ms / gm_jax ms (> 1: gm_jax faster)",
             "- GFLOP/s from XLA's FLOP count of the step, or, marked (FLOPs per loop iteration), from its matmul "
             "FLOPs counted with every iteration of a `lax.scan` (`benchmarks.flops.experiment_train_flops`; "
             "XLA counts a loop's body once)",
             f"- {settings.get('cores', '?')} core(s): XLA's thread pool and PyTorch's all threads"
             + (" (`--cores 1`: PyTorch's 1 and all threads are the same runner)" if settings.get("cores") == 1
                else ""), "",
             "| model | batch | params | gm_jax ms | torch 1 thr ms | ratio | torch all thr ms | ratio "
             "| torch.compile ms | gm_jax GFLOP/s | matmul GFLOP/s, same rounds | % of matmul peak |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    sharded = [r for r in records if "ratio_sharded" in r]
    if sharded:
        lines.insert(4, f"- sharded: the same step over {sharded[0]['host_devices']} CPU devices of this host "
                        "(`XLA_FLAGS=--xla_force_host_platform_device_count=N`, `TrainStep(..., \"sharded\")`)")
        lines[-2] += f" gm_jax sharded over {sharded[0]['host_devices']} CPU devices ms | ratio to torch all thr | % of matmul peak |"
        lines[-1] += " ---: | ---: | ---: |"
    for r in records:
        if "error" in r:
            lines.append(f"| {r['name']} | error: {r['error'][:120]} |" + " |" * 10)
            continue
        ms = r["ms_per_step"]
        peak = r["matmul_peak_gflops"]
        all_key = next((k for k in ms if k.startswith("torch_") and k not in ("torch_1", "torch_compile")),
                       "torch_1")  # one core: all threads is one
        comp = f"{ms['torch_compile']:.1f}" if "torch_compile" in ms else r.get("errors", {}).get("torch_compile", "-")[:40]
        name = r["name"] + (" (FLOPs per loop iteration)" if r.get("flops_source", "xla") != "xla" else "")
        lines.append(
            f"| {name} | {r['batch_size']} | {r['params']:,} | {ms['gm_jax']:.1f} | {ms['torch_1']:.1f} "
            f"| {r['ratio']['torch_1']:.2f} | {ms[all_key]:.1f} | {r['ratio'][all_key]:.2f} | {comp} "
            f"| {r['gflops_per_s']:.1f} | {peak:.0f} | {100 * r['gflops_per_s'] / peak:.0f}% |"
            + (f" {ms['gm_jax_sharded']:.1f} | {r['ratio_sharded'][all_key]:.2f} "
               f"| {100 * r['gflops_per_s_sharded'] / peak:.0f}% |" if "ratio_sharded" in r else
               " - | - | - |" if sharded else ""))
    return "\n".join(lines) + "\n"
