"""Train steps of every experiment at its paper config's batch size, float32 and bfloat16, on this device:
throughput, FLOPs, MFU and memory.

    python -m benchmarks.accelerator [--only NAME ...] [--out DIR] [--repeats N] [--quick]

Meant for a GPU/TPU (run it there as it is); it runs on a CPU too. For each
experiment (`gm_jax.experiment_names()`) and each `compute_dtype` it
implements (`Experiment.compute_dtypes`; the other dtype is recorded as not
implemented), it builds `get_paper_config()` (`--quick`: `get_test_config()`
on synthetic data, for tests) and times the train step with
`benchmarks.harness.time_train_step` on one device (`parallel = none`): one
compiling call excluded, then `--repeats` blocks of `--steps-per-timing`
steps, the median reported. Each row gives the device, examples/s, XLA's
FLOPs per step, achieved FLOP/s, MFU against the peak of the device for that
dtype (`benchmarks.flops.peak_flops`: the vendor's dense peak on a known
GPU/TPU, a measured float32 matmul on a CPU) and the step's device memory
(`Compiled.memory_analysis`: arguments, outputs and temporaries).

Writes `OUT/accelerator.json` and `OUT/accelerator.md` (default OUT:
benchmarks/results); an experiment that fails is recorded with its error and
the run goes on (exit status 1 at the end).
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import jax

import gm_jax
from benchmarks.harness import _cell, environment, time_train_step
from gm_jax.training.loop import write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DTYPES = ("float32", "bfloat16")


def _config(name: str, quick: bool):
    module = gm_jax.api.get_experiment_module(name)
    return module.get_test_config() if quick else module.get_paper_config()


def measure(name: str, dtype: str, quick: bool, repeats: int, steps: int) -> dict:
    """One record: the train step of `name` in `dtype` (see the module docstring)."""
    config = _config(name, quick)
    base = {"experiment": name, "compute_dtype": dtype, "config": "test" if quick else "paper",
            "batch_size": int(config.batch_size)}
    module = gm_jax.api.get_experiment_module(name)
    if dtype not in module.Experiment.compute_dtypes:
        return {**base, "skipped": f"compute_dtype={dtype} not implemented"}
    try:
        experiment = gm_jax.build(name, config=config, compute_dtype=dtype)
        return {**base, **time_train_step(experiment, "none", repeats, steps)}
    except Exception as e:  # noqa: BLE001 - recorded; the other experiments still run
        print(traceback.format_exc(), file=sys.stderr)
        return {**base, "error": f"{type(e).__name__}: {e}"}


def markdown(records: list[dict], env: dict, quick: bool = False) -> str:
    dev = env["devices"]
    peaks = sorted({f"{r['compute_dtype']}: {r['peak_flops_per_s'] / 1e9:,.1f} GFLOP/s ({r['peak_source']})"
                    for r in records if r.get("peak_flops_per_s")})
    lines = [f"# Train steps on {dev['device_kind']} ({dev['platform']}), jax {env['jax_version']}", "",
             ("Test configs (--quick)" if quick else "Paper configs") + ", one device, median of timed blocks "
             "after one compiling call. Peaks: "
             + "; ".join(peaks) + ".", "",
             "| experiment | dtype | batch | examples/s | GFLOP/step | GFLOP/s | MFU | step memory (MB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        if r.get("skipped") or r.get("error"):
            note = _cell(r.get("skipped") or f"ERROR: {r['error']}")
            lines.append(f"| {r['experiment']} | {r['compute_dtype']} | {r['batch_size']} | {note} | | | | |")
            continue
        gflop = r["flops_per_step"] / 1e9 if r.get("flops_per_step") else float("nan")
        rate = r["achieved_flops_per_s"] / 1e9 if r.get("achieved_flops_per_s") else float("nan")
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "-"
        mem = f"{r['memory_bytes'] / 2**20:,.1f}" if r.get("memory_bytes") else "-"
        lines.append(f"| {r['experiment']} | {r['compute_dtype']} | {r['batch_size']} | {r['throughput']:,.1f} "
                     f"| {gflop:,.3f} | {rate:,.1f} | {mfu} | {mem} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accelerator", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="experiments (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps-per-timing", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="test configs on synthetic data (for tests)")
    args = parser.parse_args(argv)
    names = args.only or gm_jax.experiment_names()
    unknown = sorted(set(names) - set(gm_jax.experiment_names()))
    if unknown:
        parser.error(f"unknown experiments {unknown}; valid: {gm_jax.experiment_names()}")
    records = []
    for name in names:
        for dtype in DTYPES:
            print(f"[{name}] {dtype} ...", file=sys.stderr, flush=True)
            records.append(measure(name, dtype, args.quick, args.repeats, args.steps_per_timing))
    env = environment()
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "accelerator.json", {"environment": env, "quick": args.quick, "records": records})
    table = markdown(records, env, args.quick)
    (args.out / "accelerator.md").write_text(table)
    print(table)
    print(f"devices: {jax.devices()}", file=sys.stderr)
    return 1 if any(r.get("error") for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
