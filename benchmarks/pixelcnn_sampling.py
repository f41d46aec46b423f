"""Naive vs cached ancestral sampling of the PixelCNN family: seconds, speed-up, identical output.

    python -m benchmarks.pixelcnn_sampling [--models gated_pixelcnn_mnist pixelcnn_mnist pixelrnn_row_mnist
        pixelrnn_diag_mnist pixelcnn_pp_mnist] [--num-samples 16] [--repeats 3] [--workdir RUN_DIR]
        [--out benchmarks/results] [--quick]

For each model of `MODELS` (every experiment whose `sample_methods` has both "naive" and "cached"; default
config, or the tiny `QUICK` overrides of the model with `--quick`; parameters freshly initialised from the
config seed, or restored from `--workdir` when given, which makes the identity check run on trained weights)
it jits the experiment's own `sample(params, key, num_samples, method=...)` with each method: "naive" (one
full network pass per pixel in one `lax.fori_loop`) and "cached" (Ramachandran et al. 2017 caches; for the
PixelRNNs the carried LSTM states), calls each once to compile (excluded), then times `--repeats` calls on
`--num-samples` 28x28 samples, each ended by `jax.block_until_ready`, with `time.perf_counter`.
Class-conditional models sample labels `arange(N) % num_classes`. It reports the median seconds per call of
each, the speed-up ratio naive / cached, and whether the two return identical samples for the same key
(also the number of differing pixels).

Writes `OUT/pixelcnn_sampling.json` and `OUT/pixelcnn_sampling.md` (a markdown
table, also printed).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

import gm_jax
from benchmarks.harness import write_report
from gm_jax.training.loop import run_keys

MODELS = ("gated_pixelcnn_mnist", "pixelcnn_mnist", "pixelrnn_row_mnist", "pixelrnn_diag_mnist",
          "pixelcnn_pp_mnist")
_QUICK_PIXELCNN = {"features": 4, "num_layers": 1, "output_features": 4}
QUICK = {"gated_pixelcnn_mnist": _QUICK_PIXELCNN, "pixelcnn_mnist": _QUICK_PIXELCNN,
         "pixelrnn_row_mnist": {**_QUICK_PIXELCNN, "first_kernel": 3},
         "pixelrnn_diag_mnist": {**_QUICK_PIXELCNN, "first_kernel": 3},
         "pixelcnn_pp_mnist": {"features": 4, "num_mixtures": 2}}  # keeps the three resolutions
# the size fields recorded with each result (those the model's config has)
CONFIG_KEYS = ("features", "num_layers", "first_kernel", "kernel_size", "output_features", "num_resnet",
               "num_levels", "num_mixtures")
METHODS = ("naive", "cached")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def time_samplers(name: str, num_samples: int, repeats: int, workdir: str | None = None, quick: bool = False,
                  log=print) -> dict:
    """One record: median seconds of the naive and cached samplers, the ratio, and the identity check.

    Raises:
      ValueError: the experiment does not have both a naive and a cached sampler.
    """
    if workdir:
        handle = gm_jax.load(workdir)
        experiment, params, source = handle.experiment, handle.params, f"trained ({workdir}, step {handle.step})"
    else:
        experiment = gm_jax.build(name, **(QUICK[name] if quick else {}))
        params, source = experiment.init_params(run_keys(experiment.config.seed)["init"]), "initialised"
    if not set(METHODS) <= set(experiment.sample_methods):
        raise ValueError(f"{experiment.name} has samplers {list(experiment.sample_methods)}, not both {list(METHODS)}")
    model = experiment.model
    kwargs = {}
    if getattr(model, "num_classes", 0):
        kwargs["labels"] = jax.numpy.arange(num_samples) % model.num_classes
    fns = {kind: jax.jit(lambda p, k, kind=kind: experiment.sample(p, k, num_samples, method=kind, **kwargs))
           for kind in METHODS}
    record = {"model": experiment.name, "params": source, "num_samples": num_samples,
              "image_shape": list(model.image_shape), "repeats": repeats,
              "config": {k: experiment.config[k] for k in CONFIG_KEYS if k in experiment.config}}
    outputs = {}
    for kind, fn in fns.items():
        log(f"[{name}] {kind}: compiling ...")
        t0 = time.perf_counter()
        outputs[kind] = np.asarray(jax.block_until_ready(fn(params, jax.random.key(0))))
        record[f"{kind}_first_call_s"] = time.perf_counter() - t0
        timings = []
        for i in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(params, jax.random.key(i + 1)))
            timings.append(time.perf_counter() - t0)
            log(f"[{name}] {kind}: {timings[-1]:.3f} s")
        record[f"{kind}_timings_s"] = timings
        record[f"{kind}_median_s"] = statistics.median(timings)
    record["speedup"] = record["naive_median_s"] / record["cached_median_s"]
    record["identical"] = bool(np.array_equal(outputs["naive"], outputs["cached"]))
    record["differing_pixels"] = int((outputs["naive"] != outputs["cached"]).sum())
    record["mean_pixel"] = float(outputs["cached"].mean())
    return record


def markdown(records: list[dict]) -> str:
    lines = ["| model | params | samples | naive s (median) | cached s (median) | speed-up | identical |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in records:
        lines.append(f"| {r['model']} | {r['params']} | {r['num_samples']} x {'x'.join(map(str, r['image_shape']))} "
                     f"| {r['naive_median_s']:.3f} | {r['cached_median_s']:.4f} | {r['speedup']:.1f}x "
                     f"| {r['identical']} ({r['differing_pixels']} differing pixels) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pixelcnn_sampling", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=[MODELS[0]])
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="restore trained parameters from this run (one model)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="tiny models (a smoke test)")
    args = parser.parse_args(argv)
    if args.num_samples < 1 or args.repeats < 1:
        parser.error("--num-samples and --repeats must be positive")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    records = [time_samplers(m, args.num_samples, args.repeats, args.workdir, args.quick, log) for m in args.models]
    return write_report(args.out, "pixelcnn_sampling", vars(args) | {"out": str(args.out)}, records, markdown)


if __name__ == "__main__":
    main()
