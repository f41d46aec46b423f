"""Naive vs cached (Paine et al. 2016) WaveNet generation: seconds of audio per second, speed-up, identical output.

    python -m benchmarks.wavenet_sampling [--seconds 1.0] [--num-samples 1] [--repeats 1]
        [--workdir RUN_DIR] [--out benchmarks/results] [--quick]

The model is `wavenet_digits` with its default config (parameters freshly
initialised from the config seed), or restored from `--workdir` (trained
weights). Both samplers are jitted and compiled ahead of time
(`jax.jit(...).lower(...).compile()`, excluded from the timings); then each is
timed `--repeats` times generating `--seconds` of 8 kHz audio for
`--num-samples` recordings (digit i mod 10, speaker jackson) with keys
`key(i + 1)`, each call ended by `jax.block_until_ready`, with
`time.perf_counter`. Reported: the median seconds per call, the real-time
factor (seconds of audio generated per wall-clock second, per recording
times recordings), the speed-up naive / cached and whether the two return
identical samples for the same key (and the number of differing samples).

`sample_naive` re-runs the whole stack over the last R = receptive-field
positions for every new sample (O(R L) per sample); `sample_cached` keeps a queue
per layer (O(L) per sample).

Writes `OUT/wavenet_sampling.json` and `OUT/wavenet_sampling.md` (a markdown
table, also printed).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import gm_jax
from benchmarks.harness import write_report
from gm_jax.data import audio
from gm_jax.models import wavenet
from gm_jax.training.loop import run_keys

QUICK = {"layers_per_block": 4, "num_blocks": 1, "residual_channels": 8, "skip_channels": 8, "cond_dim": 4}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def time_samplers(seconds: float, num_samples: int, repeats: int, workdir: str | None = None,
                  quick: bool = False, log=print) -> dict:
    """One record: compile and median call seconds of both samplers, real-time factors, ratio, identity."""
    if workdir:
        handle = gm_jax.load(workdir)
        experiment, params, source = handle.experiment, handle.params, f"trained ({workdir}, step {handle.step})"
    else:
        experiment = gm_jax.build("wavenet_digits", **(QUICK if quick else {}))
        params, source = experiment.init_params(run_keys(experiment.config.seed)["init"]), "initialised"
    model = experiment.model
    length = max(1, round(seconds * audio.SAMPLE_RATE))
    digit = jnp.arange(num_samples, dtype=jnp.int32) % 10
    speaker = jnp.full((num_samples,), audio.SPEAKERS.index("jackson"), jnp.int32)
    c = experiment.config
    record = {"model": "wavenet_digits", "params": source, "num_samples": num_samples, "seconds": length / 8000,
              "length_samples": length, "repeats": repeats, "receptive_field_samples": experiment.receptive_field,
              "config": {k: c[k] for k in ("layers_per_block", "num_blocks", "residual_channels", "skip_channels")}}
    outputs = {}
    for kind, fn in (("cached", wavenet.sample_cached), ("naive", wavenet.sample_naive)):
        jitted = jax.jit(fn, static_argnums=(0, 5))
        t0 = time.perf_counter()
        compiled = jitted.lower(model, params, jax.random.key(1), digit, speaker, length).compile()
        record[f"{kind}_compile_s"] = time.perf_counter() - t0
        log(f"[{kind}] compiled in {record[f'{kind}_compile_s']:.1f} s")
        timings = []
        for i in range(repeats):
            t0 = time.perf_counter()
            out = jax.block_until_ready(compiled(params, jax.random.key(i + 1), digit, speaker))
            timings.append(time.perf_counter() - t0)
            log(f"[{kind}] {timings[-1]:.3f} s for {length / 8000:.3f} s of audio x {num_samples}")
            if i == 0:
                outputs[kind] = np.asarray(out)
        record[f"{kind}_timings_s"] = timings
        record[f"{kind}_median_s"] = statistics.median(timings)
        record[f"{kind}_audio_seconds_per_second"] = num_samples * length / 8000 / record[f"{kind}_median_s"]
    record["speedup"] = record["naive_median_s"] / record["cached_median_s"]
    record["identical"] = bool(np.array_equal(outputs["naive"], outputs["cached"]))
    record["differing_samples"] = int((outputs["naive"] != outputs["cached"]).sum())
    return record


def markdown(records: list[dict]) -> str:
    lines = ["| params | audio | naive s (median) | cached s (median) | naive audio-s/s | cached audio-s/s | speed-up "
             "| identical |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        lines.append(f"| {r['params']} | {r['num_samples']} x {r['seconds']:.3f} s | {r['naive_median_s']:.2f} "
                     f"| {r['cached_median_s']:.3f} | {r['naive_audio_seconds_per_second']:.4f} "
                     f"| {r['cached_audio_seconds_per_second']:.3f} | {r['speedup']:.1f}x "
                     f"| {r['identical']} ({r['differing_samples']} differing samples) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.wavenet_sampling", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="restore trained parameters from this wavenet_digits run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="a tiny model (a smoke test)")
    args = parser.parse_args(argv)
    if args.num_samples < 1 or args.repeats < 1 or not args.seconds > 0:
        parser.error("--num-samples and --repeats must be positive, --seconds > 0")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    records = [time_samplers(args.seconds, args.num_samples, args.repeats, args.workdir, args.quick, log)]
    return write_report(args.out, "wavenet_sampling", vars(args) | {"out": str(args.out)}, records, markdown)


if __name__ == "__main__":
    main()
