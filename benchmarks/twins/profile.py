"""Where a twin's train step spends its time, gm_jax against PyTorch: `python -m benchmarks.twins --profile`.

For each twin, `profile` traces `steps` steady-state train steps of each side:

* gm_jax with `jax.profiler.trace`: every XLA:CPU thunk's events (the compiled step's HLO instructions,
  named as in `compiled.as_text()`), summed over the threads they ran on (on one core, `--cores 1`, their
  sum is the step's wall time; on more, see below). Control-flow thunks (while, conditional, call) are
  left out: their bodies' instructions are counted themselves.
* PyTorch with `torch.profiler` (CPU activities): each aten op's self time on the calling thread.

Ops fall into three kinds (`benchmarks.op_kinds`): matmul & convolution (XLA: a dot or convolution, or a
fusion that calls one, e.g. YNNPACK's `ynn_fusion`; PyTorch: mm / addmm / bmm / linear / conv / attention /
mkldnn RNN ops and their backward kernels, which compute their gates' elementwise ops inside), copies &
transposes (data movement: slices, pads, gathers, concatenations too), and the rest (elementwise,
reductions, the optimizer). The report (`OUT/twins_profile.md`) gives each kind's ms per step for both
sides and each side's costliest ops, beside each side's untraced step time: the profile the issue asks for
where a ratio is missed. Profile on one core (`--cores 1`): there the traced ops add up to the step.
On more, XLA:CPU runs a convolution as an asynchronous task in its Eigen pool whose work the trace does
not attribute to the op (figures in the README, "Against PyTorch"), and PyTorch's intra-op threads are not
traced either.
"""
from __future__ import annotations

import collections
import glob
import re
import statistics
import tempfile
import time

import jax

from benchmarks.op_kinds import KINDS, hlo_op_kinds, torch_op_kind
from benchmarks.twins.common import Pair, Twin

try:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
except ImportError as e:  # pragma: no cover - the benchmark's own dependency
    raise ImportError("benchmarks.twins needs PyTorch (CPU): pip install -e .[bench]") from e


def _median_ms(run, steps: int, rounds: int = 3) -> float:
    """Median ms per step of `rounds` untraced blocks of `steps` steps."""
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        run(steps)
        times.append((time.perf_counter() - t0) / steps * 1e3)
    return statistics.median(times)


def _jax_profile(pair: Pair, steps: int) -> tuple[dict[str, float], dict[str, str], float]:
    """({HLO instruction: ms per step, summed over the threads it ran on} of `steps` traced gm_jax train
    steps, {instruction: kind} of the compiled step, the untraced step's median ms)."""
    run, _ = pair.jax_runner()
    run(2)
    step_ms = _median_ms(run, steps)
    kinds = hlo_op_kinds(pair.compiled["none"].as_text())  # the program `run` runs: the same instruction names
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            run(steps)
        (path,) = glob.glob(f"{d}/**/*.xplane.pb", recursive=True)
        data = jax.profiler.ProfileData.from_file(path)
    ms: dict[str, float] = collections.defaultdict(float)
    for plane in data.planes:
        for line in plane.lines:  # XLA's threads, and the caller's where a thunk ran inline
            for event in line.events:
                if kinds.get(event.name, "control flow") != "control flow":
                    ms[event.name] += event.duration_ns / 1e6 / steps
    return dict(ms), kinds, step_ms


def _torch_profile(pair: Pair, steps: int, threads: int) -> tuple[dict[str, float], float]:
    """({aten op: self ms per step} of `steps` profiled PyTorch train steps with `threads` threads, the
    unprofiled step's median ms)."""
    run = pair.torch_runner(threads)
    run(2)
    step_ms = _median_ms(run, steps)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        run(steps)
    return {e.key: e.self_cpu_time_total / 1e3 / steps for e in prof.key_averages()
            if e.key.startswith("aten::") and e.self_cpu_time_total > 0}, step_ms


def profile(twin: Twin, *, steps: int = 5, threads: int = 1, top: int = 8, log=print) -> dict:
    """The record of one twin: per-kind ms per step of each side and each side's `top` costliest ops (the
    per-kind figures also go to `log`)."""
    pair = Pair(twin)
    jax_ms, kinds, jax_step = _jax_profile(pair, steps)
    torch_ms, torch_step = _torch_profile(pair, steps, threads)
    by_kind = {"gm_jax": dict.fromkeys(KINDS, 0.0), "torch": dict.fromkeys(KINDS, 0.0)}
    for name, v in jax_ms.items():
        by_kind["gm_jax"][kinds[name]] += v
    for name, v in torch_ms.items():
        by_kind["torch"][torch_op_kind(name)] += v
    jax_top = collections.defaultdict(float)  # fusions numbered apart (ynn_fusion.3) summed by stem
    for name, v in jax_ms.items():
        jax_top[(re.sub(r"\.\d+$", "", name), kinds[name])] += v
    log(f"{twin.name}: " + "; ".join(f"{side} " + ", ".join(f"{k} {v:.1f}" for k, v in per_kind.items())
                                     for side, per_kind in by_kind.items()) + " ms")
    return {"name": twin.name, "steps": steps, "torch_threads": threads, "by_kind": by_kind,
            "step_ms": {"gm_jax": jax_step, "torch": torch_step},
            "gm_jax_top": [(n, k, v) for (n, k), v in sorted(jax_top.items(), key=lambda x: -x[1])[:top]],
            "torch_top": [(n, torch_op_kind(n), v) for n, v in sorted(torch_ms.items(), key=lambda x: -x[1])[:top]]}


def markdown(records: list[dict], cores: int) -> str:
    """The report: per twin, ms per step by kind (gm_jax thread-time, PyTorch self time) and the top ops."""
    lines = ["# Where the twins' train steps spend their time", "",
             f"- {cores} core(s); gm_jax: `jax.profiler` trace, HLO instructions' time summed over the threads they "
             "ran on; PyTorch: `torch.profiler`, aten ops' self time; ms per train step (tracing adds time: "
             "compare the kinds, take step times from `twins.md`)"]
    if cores > 1:
        lines.append("- more than one core: the traced ops undercount the step (XLA's asynchronous convolutions and "
                     "PyTorch's intra-op threads are not attributed); profile with `--cores 1`")
    lines.append("")
    for r in records:
        if "error" in r:
            lines += [f"## {r['name']}", "", f"error: {r['error']}", ""]
            continue
        g, t = r["by_kind"]["gm_jax"], r["by_kind"]["torch"]
        lines += [f"## {r['name']} (PyTorch with {r['torch_threads']} thread(s))", "",
                  "| kind | gm_jax ms | PyTorch ms |", "| --- | ---: | ---: |"]
        lines += [f"| {k} | {g[k]:.1f} | {t[k]:.1f} |" for k in KINDS]
        lines += [f"| all traced ops | {sum(g.values()):.1f} | {sum(t.values()):.1f} |",
                  f"| the step, untraced | {r['step_ms']['gm_jax']:.1f} | {r['step_ms']['torch']:.1f} |", "",
                  "| gm_jax op (HLO, numbered fusions summed) | kind | ms | PyTorch op | kind | ms |",
                  "| --- | --- | ---: | --- | --- | ---: |"]
        for (a, ak, av), (b, bk, bv) in zip(r["gm_jax_top"], r["torch_top"]):
            lines.append(f"| `{a}` | {ak} | {av:.2f} | `{b}` | {bk} | {bv:.2f} |")
        lines.append("")
    return "\n".join(lines) + "\n"
