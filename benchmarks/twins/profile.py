"""Where a twin's train step spends its time, gm_jax against PyTorch: `python -m benchmarks.twins --profile`.

For each twin, `profile` traces `steps` steady-state train steps of each side:

* gm_jax with `jax.profiler.trace`: every XLA:CPU thunk's events (the compiled step's HLO instructions,
  named as in `compiled.as_text()`), summed over the threads they ran on (thread-time: on one core, `--cores 1`, it
  is the step's wall time; on more it exceeds it where ops ran side by side). Control-flow thunks (while,
  conditional, call) are left out: their bodies' instructions are counted themselves.
* PyTorch with `torch.profiler` (CPU activities): each aten op's self time on the calling thread.

Ops fall into three kinds by name: matmul & convolution (XLA: a dot or convolution, or a fusion that calls
one, e.g. YNNPACK's `ynn_fusion`; PyTorch: mm / addmm / bmm / linear / conv / attention / mkldnn RNN ops
and their backward kernels, which compute their gates' elementwise ops inside), copies & transposes (data
movement: slices, pads, gathers, concatenations too), and the rest (elementwise, reductions, the optimizer). The report
(`OUT/twins_profile.md`) gives each kind's ms per step for both sides and each side's costliest ops: the
profile the issue asks for where a ratio is missed, beside each side's untraced step time. Profile on one
core (`--cores 1`): there the traced ops add up to the step. On more, XLA:CPU runs a convolution as an
asynchronous task in its Eigen pool whose work the trace does not attribute to the op (the Gated PixelCNN's
traced ops summed to 188 ms on two cores, where its timed step takes about 330), and PyTorch's intra-op threads are not traced either.
"""
from __future__ import annotations

import collections
import glob
import re
import statistics
import tempfile
import time

import jax
import numpy as np

from benchmarks.twins.common import Pair, Twin

try:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
except ImportError as e:  # pragma: no cover - the benchmark's own dependency
    raise ImportError("benchmarks.twins needs PyTorch (CPU): pip install -e .[bench]") from e

KINDS = ("matmul & convolution", "copies & transposes", "other")
CONTROL_FLOW = ("while", "conditional", "call")
_TORCH_COMPUTE = re.compile(r"(^|::)(_?mkldnn_)?(mm|addmm|bmm|baddbmm|matmul|linear|conv|_conv|convolution|"
                            r"mkldnn_convolution|convolution_backward|_convolution|conv2d|conv1d|"
                            r"conv_transpose\w*|_slow_conv\w*|thnn_conv\w*|_scaled_dot_product\w*|"
                            r"_mkldnn_transpose|mkldnn_rnn\w*)")
_TORCH_COPY = re.compile(r"(^|::)(copy_|contiguous|clone|transpose|permute|t|reshape|_reshape_alias|view|"
                         r"as_strided|expand|cat|stack|narrow|slice|select|unbind|split|chunk)$")


def hlo_op_kinds(hlo_text: str) -> dict[str, str]:
    """{instruction name: kind} for every instruction of a compiled HLO module's text (`KINDS`, or
    "control flow" for while / conditional / call).

    A fusion is a matmul & convolution when the computation it calls contains a dot or a convolution
    (directly or through the computations that one calls); a copy & transpose when it holds nothing but
    copies, transposes, bitcasts, reshapes, slices, pads, gathers and the like (data movement)."""
    computations: dict[str, list[tuple[str, str, list[str]]]] = {}
    current = None
    for line in hlo_text.splitlines():
        head = re.match(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*(?:\(|\{)", line)
        if head and not line.startswith(" ") and "=" not in line.split("(")[0]:
            current = head.group(1)
            computations[current] = []
            continue
        m = re.match(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*\S.*?\s([a-z][\w\-]*)\(", line)
        if m and current is not None:
            called = re.findall(r"(?:calls|to_apply|body|condition|branch_computations)=\{?%?([\w.\-]+)", line)
            called += re.findall(r"%([\w.\-]+)", line.split("calls=")[1]) if "calls={" in line else []
            computations[current].append((m.group(1), m.group(2), called))

    @_memo
    def holds_compute(comp: str) -> bool:
        return any(op in ("dot", "convolution") or any(holds_compute(c) for c in called if c in computations)
                   for _, op, called in computations.get(comp, ()))

    layout_ops = {"copy", "transpose", "bitcast", "reshape", "slice", "parameter", "tuple", "get-tuple-element",
                  "constant", "broadcast", "concatenate", "dynamic-slice", "dynamic-update-slice", "pad", "gather",
                  "reverse", "iota"}

    @_memo
    def only_layout(comp: str) -> bool:
        return all(op in layout_ops or (op == "fusion" and all(only_layout(c) for c in called if c in computations))
                   for _, op, called in computations.get(comp, ()))

    kinds = {}
    for comp, instructions in computations.items():
        for name, op, called in instructions:
            if op in CONTROL_FLOW:
                kinds[name] = "control flow"
            elif op in ("dot", "convolution") or (op in ("fusion", "custom-call") and any(
                    holds_compute(c) for c in called)):
                kinds[name] = KINDS[0]
            elif op in ("copy", "transpose") or (op == "fusion" and called and all(
                    only_layout(c) for c in called if c in computations)):
                kinds[name] = KINDS[1]
            else:
                kinds[name] = KINDS[2]
    return kinds


def _memo(fn):
    cache: dict = {}

    def wrapped(arg):
        if arg not in cache:
            cache[arg] = False  # a cycle (none in HLO) would read False
            cache[arg] = fn(arg)
        return cache[arg]
    return wrapped


def torch_op_kind(name: str) -> str:
    """The kind (`KINDS`) of a PyTorch profiler op name such as "aten::addmm"."""
    if _TORCH_COMPUTE.search(name):
        return KINDS[0]
    if _TORCH_COPY.search(name):
        return KINDS[1]
    return KINDS[2]


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
    from gm_jax.training.steps import TrainStep

    step = TrainStep(pair.experiment.update, "none", compiler_options=pair.experiment.compiler_options)
    state = step.put_state(jax.tree_util.tree_map(np.copy, pair.state))
    names = hlo_op_kinds(step._step.lower(state, step.put_batch(pair.batch), pair.key).compile().as_text())
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            run(steps)
        (path,) = glob.glob(f"{d}/**/*.xplane.pb", recursive=True)
        data = jax.profiler.ProfileData.from_file(path)
    ms: dict[str, float] = collections.defaultdict(float)
    for plane in data.planes:
        for line in plane.lines:  # XLA's threads, and the caller's where a thunk ran inline
            for event in line.events:
                if names.get(event.name, "control flow") != "control flow":
                    ms[event.name] += event.duration_ns / 1e6 / steps
    return dict(ms), names, step_ms


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


def profile(twin: Twin, *, steps: int = 5, threads: int = 1, top: int = 8) -> dict:
    """The record of one twin: per-kind ms per step of each side and each side's `top` costliest ops."""
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
    return {"name": twin.name, "steps": steps, "torch_threads": threads, "by_kind": by_kind,
            "step_ms": {"gm_jax": jax_step, "torch": torch_step},
            "gm_jax_top": [(n, k, v) for (n, k), v in sorted(jax_top.items(), key=lambda x: -x[1])[:top]],
            "torch_top": [(n, torch_op_kind(n), v) for n, v in sorted(torch_ms.items(), key=lambda x: -x[1])[:top]]}


def markdown(records: list[dict], cores: int) -> str:
    """The report: per twin, ms per step by kind (gm_jax thread-time, PyTorch self time) and the top ops."""
    lines = ["# Where the twins' train steps spend their time", "",
             f"- {cores} core(s); gm_jax: `jax.profiler` trace, HLO instructions' time summed over XLA's threads; "
             "PyTorch: `torch.profiler`, aten ops' self time; ms per train step (tracing adds time: compare the "
             "kinds, take step times from `twins.md`)"]
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
