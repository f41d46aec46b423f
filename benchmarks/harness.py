"""Timing of train steps and samplers, generic over every `gm_jax` experiment.

Units: train steps in **examples/s** (global batch size x steps / seconds),
samplers in **samples/s** (`num_samples` / seconds). Every record also gives
the median seconds per call (one train step, or one sampler call).

How the timing is done:

* **Compile once, time the steady state.** Each function is called once
  before timing (the warm-up compiles it and is excluded from the numbers).
* **Train step** (`TrainStep(update, parallel)` for the update of each training
  stage, `experiment.update_stages()`: the steps the training loop uses; a
  model trained in stages, the VQ-VAE and its prior, gets one record per
  stage): one timing is a block of `steps_per_timing` consecutive
  updates on real batches from `experiment.train_batches(0)`, ended by
  `jax.block_until_ready` on the new state and metrics. The batches are read
  from the iterator before timing, so shuffling and indexing are excluded,
  while the host-to-device transfer each step (`TrainStep.put_batch`, as in
  training) is included. Per-step keys are drawn before timing too.
* **Sampler** (`jax.jit(experiment.sample, static_argnums=2)`): one timing is
  one call with a fresh key, ended by `jax.block_until_ready`. The parameters
  are the freshly initialised ones (`params_of(jit_init_state(run_keys(seed)["init"]))`, as `gm_jax.create`).
* Each measurement is repeated `repeats` times and the **median** is reported
  (all raw timings are kept in the JSON as `timings_s`). Clocks:
  `time.perf_counter`.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

import gm_jax
from benchmarks import flops
from gm_jax.experiment import Experiment
from gm_jax.training.loop import run_keys, write_json
from gm_jax.training.steps import PARALLEL_CHOICES, TrainStep

TRAIN = "train_step"
SAMPLE = "sample"
UNITS = {TRAIN: "examples/s", SAMPLE: "samples/s"}


class Unsupported(ValueError):
    """A measurement that cannot run on this host (recorded as skipped, not as an error)."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One benchmarked configuration of an experiment.

    Attributes:
      name: unique entry name (what `--only` selects).
      experiment: the experiment name given to `gm_jax.build`.
      overrides: config overrides for the full benchmark.
      sample_sizes: `num_samples` values at which the sampler is timed.
      quick_overrides: overrides applied on top of `overrides` under `--quick`
        (tiny model and batch, so a test runs in seconds).
      quick_sample_sizes: `sample_sizes` under `--quick`.
      conditioning: for conditional samplers, `f(experiment, num_samples) ->
        dict` of keyword arguments passed to `experiment.sample` (e.g. labels).
      sampler_stats: `f(experiment, params, key, num_samples) -> dict` of figures of one sampler call added
        to its record (e.g. `{"nfe": ...}`, the function evaluations of an ODE solve); None: none.
      flops: `f(experiment, batch) -> float`, the train step's FLOPs on one train batch
        (`benchmarks.flops.experiment_train_flops`: its matmuls, read from its jaxpr), for a step XLA's count
        misses most of (it counts a `lax.scan`'s body once, not once per iteration); None: XLA's count.
    """

    name: str
    experiment: str
    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sample_sizes: tuple[int, ...] = (64,)
    quick_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    quick_sample_sizes: tuple[int, ...] = (8,)
    conditioning: Callable[[Experiment, int], dict] | None = None
    sampler_stats: Callable[..., dict] | None = None
    flops: Callable[[Experiment, dict], float] | None = None

    def resolved_overrides(self, quick: bool) -> dict:
        return {**self.overrides, **(self.quick_overrides if quick else {})}

    def resolved_sample_sizes(self, quick: bool) -> tuple[int, ...]:
        return tuple(self.quick_sample_sizes if quick else self.sample_sizes)


def parallel_modes() -> list[str]:
    """`"none"`, plus `"pmap"` and `"sharded"` when there is more than one local device."""
    return list(PARALLEL_CHOICES) if jax.local_device_count() > 1 else ["none"]


def environment() -> dict:
    """Where the numbers come from: devices, library versions, host."""
    devices = jax.devices()
    return {
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(jax.lib, "__version__", None) or _dist_version("jaxlib"),
        "gm_jax_version": gm_jax.__version__,
        "backend": jax.default_backend(),
        "devices": {
            "platform": devices[0].platform,
            "device_kind": devices[0].device_kind,
            "count": len(devices),
            "local_count": jax.local_device_count(),
        },
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "system": platform.platform(),
        "git_commit": _git_commit(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def _summary(timings: Sequence[float], calls_per_timing: int, items_per_call: int) -> dict:
    median = statistics.median(timings)
    per_call = median / calls_per_timing
    return {
        "median_s_per_call": per_call,
        "throughput": items_per_call / per_call if per_call > 0 else math.inf,
        "timings_s": list(timings),
    }


@functools.lru_cache(maxsize=None)
def hardware_peak(dtype: str = "float32") -> tuple[float, str]:
    """The peak FLOP/s MFU is measured against, once per process and dtype (`benchmarks.flops.peak_flops`:
    a measured float32 matmul on a CPU, the vendor's dense `dtype` peak on a known GPU/TPU)."""
    return flops.peak_flops(jax.devices()[0], dtype)


def time_train_step(experiment: Experiment, parallel: str, repeats: int, steps_per_timing: int,
                    stage: int = 0, flops_fn: Callable[[Experiment, dict], float] | None = None) -> dict:
    """Steady-state throughput of one train step of `experiment` under `parallel`: the update of training
    stage `stage` (`experiment.update_stages()`), from the initial state.

    Returns:
      A record: `throughput` in examples/s, `median_s_per_call` in seconds per
      step, `batch_size` (global), `num_devices`, `timings_s` (seconds per block
      of `steps_per_timing` steps), `flops_per_step` (XLA's count of the compiled
      step, over all its devices: `benchmarks.flops.compiled_flops`; or, with `flops_fn`,
      `flops_fn(experiment, batch)`, XLA's count then kept as `flops_xla`) with `flops_source`
      ("xla" / "jaxpr"),
      `achieved_flops_per_s` (that / the median seconds per step), `nfe` (the last step's `nfe` metric,
      where the experiment reports one: an ODE solve's function evaluations), `memory_bytes` (the
      compiled step's arguments, outputs and temporaries on one device), `peak_flops_per_s`
      with `peak_source` (`hardware_peak`) and `mfu` (achieved / peak, of the
      devices the step runs on), ...

    Raises:
      Unsupported: the batch size is not divisible by the device count.
    """
    if repeats < 1 or steps_per_timing < 1:
        raise ValueError(f"repeats and steps_per_timing must be >= 1, got {repeats}, {steps_per_timing}")
    keys = run_keys(experiment.config.seed)
    stages = experiment.update_stages()
    step = TrainStep(stages[stage][1], parallel, compiler_options=experiment.compiler_options)
    batches = list(itertools.islice(experiment.train_batches(0), steps_per_timing))
    batch_size = int(jax.tree_util.tree_leaves(batches[0])[0].shape[0])
    if batch_size % step.num_devices:
        raise Unsupported(f"batch size {batch_size} is not divisible by {step.num_devices} devices")
    step_keys = [jax.random.fold_in(keys["train"], i) for i in range(steps_per_timing)]
    # A host copy, placed anew: the step donates its input state.
    state = step.put_state(jax.device_get(experiment.jit_init_state(keys["init"])))

    # XLA's FLOP count and memory of the step program (the jitted or pmapped function TrainStep calls)
    compiled = step.lower(state, batches[0], step_keys[0]).compile()
    step_flops = flops.compiled_flops(compiled, step.num_devices)
    written_out = {}
    if flops_fn is not None:
        written_out = {"flops_xla": step_flops}
        step_flops = float(flops_fn(experiment, batches[0]))
    step_bytes = flops.compiled_bytes(compiled)
    state, metrics = step(state, batches[0], step_keys[0])  # warm-up: compiles
    jax.block_until_ready((state, metrics))
    timings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for batch, key in zip(batches, step_keys):
            state, metrics = step(state, batch, key)
        jax.block_until_ready((state, metrics))
        timings.append(time.perf_counter() - t0)
    loss = float(np.asarray(metrics["loss"]))
    summary = _summary(timings, steps_per_timing, batch_size)
    peak, peak_source = hardware_peak(str(experiment.config.get("compute_dtype", "float32")))
    if jax.devices()[0].platform == "cpu":  # XLA's CPU devices share the host's cores: one host peak
        copies = 1
        peak_source += f" (the host's cores, shared by its {step.num_devices} CPU devices)" * (step.num_devices > 1)
    else:
        copies = step.num_devices
        peak_source += f", x {copies} devices" * (copies > 1)
    achieved = step_flops / summary["median_s_per_call"] if step_flops else None
    return {
        "what": TRAIN,
        **({"stage": stage + 1} if len(stages) > 1 else {}),
        "parallel": parallel,
        "num_devices": step.num_devices,
        "batch_size": batch_size,
        "size": batch_size,
        "steps_per_timing": steps_per_timing,
        "repeats": repeats,
        "unit": UNITS[TRAIN],
        "final_loss": loss,
        **({"nfe": float(np.asarray(metrics["nfe"]))} if "nfe" in metrics else {}),
        "flops_per_step": step_flops,
        "flops_source": "jaxpr" if flops_fn is not None else "xla",
        **written_out,
        "memory_bytes": step_bytes,
        "achieved_flops_per_s": achieved,
        "peak_flops_per_s": peak * copies,
        "peak_source": peak_source,
        "mfu": achieved / (peak * copies) if achieved else None,
        **summary,
    }


def time_sampler(experiment: Experiment, num_samples: int, repeats: int, conditioning: dict | None = None,
                 stats: Callable[..., dict] | None = None) -> dict:
    """Steady-state throughput of `jax.jit(experiment.sample, static_argnums=2)` at `num_samples`.

    Returns:
      A record: `throughput` in samples/s, `median_s_per_call` in seconds per
      call, `num_samples`, `timings_s` (seconds per call), and `stats(experiment, params, key,
      num_samples)` (`Entry.sampler_stats`) when given, ...
    """
    if repeats < 1 or num_samples < 1:
        raise ValueError(f"repeats and num_samples must be >= 1, got {repeats}, {num_samples}")
    keys = run_keys(experiment.config.seed)
    params = jax.device_put(experiment.params_of(experiment.jit_init_state(keys["init"])))
    sample = jax.jit(experiment.sample, static_argnums=2)
    conditioning = conditioning or {}
    call_keys = [jax.random.fold_in(keys["eval"], i) for i in range(repeats + 1)]

    jax.block_until_ready(sample(params, call_keys[-1], num_samples, **conditioning))  # warm-up: compiles
    timings = []
    for key in call_keys[:repeats]:
        t0 = time.perf_counter()
        jax.block_until_ready(sample(params, key, num_samples, **conditioning))
        timings.append(time.perf_counter() - t0)
    return {
        "what": SAMPLE,
        "parallel": "none",
        "num_devices": 1,
        "num_samples": num_samples,
        "size": num_samples,
        "repeats": repeats,
        "unit": UNITS[SAMPLE],
        **_summary(timings, 1, num_samples),
        **(stats(experiment, params, call_keys[-1], num_samples) if stats else {}),
    }


def run_entry(entry: Entry, *, quick: bool, repeats: int, steps_per_timing: int,
              modes: Sequence[str] | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """All records of one entry: the train step under each parallel mode, then the sampler at each size.

    A measurement that cannot run here (e.g. a batch not divisible by the
    device count) gives a record with `"skipped"` set to the reason; one that
    raises gives a record with `"error"` set to the exception (the traceback
    goes to `log`). Either way `throughput` is None and the other
    measurements still run.
    """
    overrides = entry.resolved_overrides(quick)
    experiment = gm_jax.build(entry.experiment, **overrides)
    base = {"entry": entry.name, "experiment": entry.experiment, "overrides": _jsonable(overrides)}
    records = []
    num_stages = len(experiment.update_stages())
    for mode in (modes if modes is not None else parallel_modes()):
        for stage in range(num_stages):
            log(f"[{entry.name}] train step{f' of stage {stage + 1}' * (num_stages > 1)}, parallel={mode} ...")
            failed = {"what": TRAIN, **({"stage": stage + 1} if num_stages > 1 else {}), "parallel": mode,
                      "size": experiment.config.batch_size, "batch_size": experiment.config.batch_size}
            records.append({**base, **_guarded(
                lambda: time_train_step(experiment, mode, repeats, steps_per_timing, stage, entry.flops),
                failed, repeats, log)})
    for n in entry.resolved_sample_sizes(quick):
        log(f"[{entry.name}] sampler, num_samples={n} ...")
        cond = entry.conditioning(experiment, n) if entry.conditioning else None
        failed = {"what": SAMPLE, "parallel": "none", "size": n, "num_samples": n}
        records.append({**base, **_guarded(lambda: time_sampler(experiment, n, repeats, cond, entry.sampler_stats),
                                           failed, repeats, log)})
    return records


def _guarded(measure: Callable[[], dict], failed: dict, repeats: int, log: Callable[[str], None]) -> dict:
    try:
        return measure()
    except Unsupported as e:
        reason = {"skipped": str(e)}
    except Exception as e:  # noqa: BLE001 - recorded, and the run goes on to the other measurements
        log(traceback.format_exc())
        reason = {"error": f"{type(e).__name__}: {e}"}
    return {**failed, "unit": UNITS[failed["what"]], "repeats": repeats,
            "median_s_per_call": None, "throughput": None, **reason}


def failures(records: Sequence[dict]) -> list[dict]:
    """The records whose measurement raised an error (not those skipped as unsupported here)."""
    return [r for r in records if r.get("error")]


def _jsonable(x):
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def markdown_table(records: Sequence[dict]) -> str:
    """One row per record: entry, what, parallel, devices, batch / num_samples, median s/call, throughput."""
    lines = [
        "| entry | what | parallel | devices | batch / num_samples | median s/call | throughput | GFLOP/step "
        "| GFLOP/s | MFU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in records:
        if r.get("skipped") or r.get("error"):
            reason = f"skipped: {r['skipped']}" if r.get("skipped") else f"ERROR: {r['error']}"
            per_call, thr = "-", _cell(reason)
        else:
            per_call, thr = f"{r['median_s_per_call']:.3e}", f"{r['throughput']:,.1f} {r['unit']}"
        size = f"batch {r['size']}" if r["what"] == TRAIN else f"n {r['size']}"
        flop_cells = "| - | - | - |"
        if r.get("flops_per_step") and r.get("achieved_flops_per_s"):
            source = " (per loop iteration)" if r.get("flops_source", "xla") != "xla" else ""
            flop_cells = (f"| {r['flops_per_step'] / 1e9:,.3f}{source} | {r['achieved_flops_per_s'] / 1e9:,.1f} "
                          f"| {100 * r['mfu']:.1f}% |")
        what = r["what"] + (f" (stage {r['stage']})" if r.get("stage") else "") + (
            f" (NFE {r['nfe']:.0f})" if r.get("nfe") is not None else "")
        lines.append(f"| {r['entry']} | {what} | {r['parallel']} | {r.get('num_devices', '-')} "
                     f"| {size} | {per_call} | {thr} {flop_cells}")
    return "\n".join(lines)


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def markdown_report(payload: dict) -> str:
    """The table with a short header on the environment and the timing method."""
    env, settings = payload["environment"], payload["settings"]
    dev = env["devices"]
    header = [
        "# gm_jax benchmarks",
        "",
        f"- devices: {dev['count']} x {dev['device_kind']} ({dev['platform']}); jax {env['jax_version']}",
        f"- repeats: {settings['repeats']} (median reported); train timing blocks of "
        f"{settings['steps_per_timing']} steps; quick: {settings['quick']}",
        "- compiled once (warm-up call excluded), steady state, each timing ended by `jax.block_until_ready`;",
        "  throughput in examples/s (train step) and samples/s (sampler).",
        "- train steps: FLOPs per step from XLA's cost analysis of the compiled step (all its devices), or,",
        "  marked (per loop iteration), the matmul FLOPs read from the step's jaxpr with every iteration of a",
        "  `lax.scan` counted (`benchmarks.flops.experiment_train_flops`; XLA counts a loop's body once);",
        "  GFLOP/s = that / median s per step, MFU = GFLOP/s / the peak of the devices used: "
        + _peak_note(payload["records"]) + ".",
        "",
    ]
    return "\n".join(header) + "\n" + markdown_table(payload["records"]) + "\n"


def _peak_note(records: Sequence[dict]) -> str:
    peaks = {(r["peak_flops_per_s"], r["peak_source"]) for r in records if r.get("peak_flops_per_s")}
    return "; ".join(f"{p / 1e9:,.1f} GFLOP/s ({src})" for p, src in sorted(peaks)) or "none measured"


def write_report(out, stem: str, settings: dict, records: list, markdown) -> dict:
    """Write `out/<stem>.json` ({"environment", "settings", "records"}) and `out/<stem>.md`
    (`markdown(records)`, also printed to stdout); return the JSON payload."""
    from pathlib import Path

    out = Path(out)
    payload = {"environment": environment(), "settings": settings, "records": records}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{stem}.json", payload)
    report = markdown(records)
    (out / f"{stem}.md").write_text(report)
    print(report, end="")
    return payload


def matmul_peak(n: int = 2048, repeats: int = 20) -> float:
    """Measured float32 GFLOP/s of a jitted n x n matmul on the default device, measured afresh at each call
    (`benchmarks.flops.matmul_flops_per_s`, median of `repeats`)."""
    return flops.matmul_flops_per_s(None, n, repeats) / 1e9
