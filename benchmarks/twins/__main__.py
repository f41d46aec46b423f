"""Run the twins: `python -m benchmarks.twins [--only NAME ...] [--rounds R] [--steps K] [--compile] [--cores N]
[--profile] [--out DIR]`.

Writes `OUT/twins.json` and `OUT/twins.md` (default OUT: benchmarks/results). See `benchmarks.twins`.
`--cores N` pins the process to its first N cores before JAX starts its CPU client, so XLA's thread pool
and PyTorch's "all threads" are both N: `--cores 1` compares gm_jax and PyTorch on one core each.
`--profile` traces the steps instead of timing them and writes `OUT/twins_profile.{json,md}`: where each
side's step spends its time, by kind of op (`benchmarks.twins.profile`).
"""
from __future__ import annotations

import argparse
import os
import sys

from benchmarks.harness import matmul_peak, write_report
from benchmarks.twins import all_twins, markdown
from benchmarks.twins.common import measure


def main(argv=None) -> int:
    twins = all_twins()
    ap = argparse.ArgumentParser(prog="python -m benchmarks.twins", description=__doc__)
    ap.add_argument("--only", nargs="*", choices=sorted(t.name for t in twins))
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median reported)")
    ap.add_argument("--steps", type=int, default=5, help="train steps per timing")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the twin's step")
    ap.add_argument("--cores", type=int, default=None,
                    help="pin the process to its first N usable cores (default: all of them)")
    ap.add_argument("--profile", action="store_true",
                    help="trace the steps instead (benchmarks.twins.profile): OUT/twins_profile.md")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    usable = sorted(os.sched_getaffinity(0))
    if args.cores is not None:
        if not 1 <= args.cores <= len(usable):
            ap.error(f"--cores must be in 1..{len(usable)} (the cores this process may use), got {args.cores}")
        if jax_backend_started():
            ap.error("--cores must be set before JAX starts its CPU client (XLA sizes its thread pool then)")
        os.sched_setaffinity(0, usable[:args.cores])
    selected = [t for t in twins if not args.only or t.name in args.only]
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if args.profile:
        from benchmarks.twins import profile

        cores = len(os.sched_getaffinity(0))
        run = lambda twin: profile.profile(twin, steps=args.steps, threads=cores, log=log)  # noqa: E731
        records, failed = _each(selected, run, log)
        write_report(args.out, "twins_profile", {"steps": args.steps, "cores": cores}, records,
                     lambda r: profile.markdown(r, cores))
        return 1 if failed else 0
    peak = matmul_peak()
    log(f"matmul peak {peak:.1f} GFLOP/s")
    records, failed = _each(selected, lambda twin: measure(twin, rounds=args.rounds, steps=args.steps,
                                                           compile_torch=args.compile, log=log), log)
    peak_after = matmul_peak()
    settings = {"rounds": args.rounds, "steps": args.steps, "compile": args.compile,
                "cores": len(os.sched_getaffinity(0)),
                "matmul_peak_gflops": [peak, peak_after]}
    write_report(args.out, "twins", settings, records, lambda r: markdown(r, settings))
    return 1 if failed else 0


def _each(selected, fn, log) -> tuple[list[dict], bool]:
    """([fn(twin) for each twin, or an error record where it raised], whether one raised)."""
    records, failed = [], False
    for twin in selected:
        try:
            records.append(fn(twin))
        except Exception as e:  # noqa: BLE001 - recorded; the exit status says so
            failed = True
            records.append({"name": twin.name, "experiment": twin.experiment, "error": f"{type(e).__name__}: {e}"})
            log(f"{twin.name}: FAILED {type(e).__name__}: {e}")
    return records, failed


def jax_backend_started() -> bool:
    """Whether this process's JAX backends (and so XLA's CPU thread pool) exist already."""
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


if __name__ == "__main__":
    sys.exit(main())
