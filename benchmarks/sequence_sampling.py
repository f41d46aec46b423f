"""Cached vs naive Transformer generation (and the carried-state RNN sampler), in tokens/s.

    python -m benchmarks.sequence_sampling [--out DIR] [--length 256] [--num-samples 1 8] [--repeats 10]
                                           [--override key=value ...]

For `transformer_shakespeare` (default config, fresh parameters: speed does
not depend on their values) it times `gm_jax.models.transformer.sample_cached`
and `sample_naive` generating `--length` new tokens from a one-character
prompt, each compiled first (one warm-up call, excluded), then `--repeats`
timed calls with fresh keys, each ended by `jax.block_until_ready`, and
reports the median seconds per call, tokens/s (num_samples x length /
median) and the speed-up `naive median / cached median`. It also checks
that both return identical tokens for the same key. The char-LSTM
(`charrnn_shakespeare`) sampler is timed the same way for comparison.

Writes `OUT/sequence_sampling.json` and `OUT/sequence_sampling.md` (default
OUT: benchmarks/results) and prints the table.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import jax
import numpy as np

import gm_jax
from benchmarks.harness import environment
from gm_jax.models import rnn, transformer
from gm_jax.training.loop import run_keys, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _time(fn, keys) -> tuple[list[float], np.ndarray]:
    out = jax.block_until_ready(fn(keys[-1]))  # warm-up: compiles
    timings = []
    for k in keys[:-1]:
        t0 = time.perf_counter()
        jax.block_until_ready(fn(k))
        timings.append(time.perf_counter() - t0)
    return timings, np.asarray(out)


def _parse_override(text: str):
    """`"key=value"` -> (key, value as int, else float, else the string)."""
    key, _, value = text.partition("=")
    for cast in (int, float):
        with contextlib.suppress(ValueError):
            return key, cast(value)
    return key, value


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sequence_sampling", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--num-samples", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--override", nargs="*", default=[], help="transformer config overrides key=value")
    args = parser.parse_args(argv)

    overrides = dict(_parse_override(o) for o in args.override)
    exp = gm_jax.build("transformer_shakespeare", **overrides)
    params = jax.device_put(exp.init_params(run_keys(exp.config.seed)["init"]))
    lstm = gm_jax.build("charrnn_shakespeare")
    lstm_params = jax.device_put(lstm.init_params(run_keys(0)["init"]))
    records = []
    for n in args.num_samples:
        prompt = exp.encode_prompt("\n", n)
        keys = [jax.random.key(i) for i in range(args.repeats + 1)]
        timed = {}
        for name, fn in (("cached", transformer.sample_cached), ("naive", transformer.sample_naive)):
            timings, out = _time(lambda k, fn=fn: fn(exp.model, params, k, prompt, args.length), keys)
            timed[name] = out
            med = statistics.median(timings)
            records.append({"model": "transformer_shakespeare", "sampler": name, "num_samples": n,
                            "length": args.length, "median_s": med, "tokens_per_s": n * args.length / med,
                            "timings_s": timings})
        identical = bool(np.array_equal(timed["cached"], timed["naive"]))
        ratio = records[-1]["median_s"] / records[-2]["median_s"]
        records[-2].update(speedup_vs_naive=ratio, identical_to_naive=identical)
        rnn_sample = jax.jit(rnn.sample_cached, static_argnums=(0, 4))
        timings, _ = _time(lambda k: rnn_sample(lstm.model, lstm_params, k, prompt, args.length), keys)
        med = statistics.median(timings)
        records.append({"model": "charrnn_shakespeare", "sampler": "cached (carried state)", "num_samples": n,
                        "length": args.length, "median_s": med, "tokens_per_s": n * args.length / med,
                        "timings_s": timings})
    cfg = exp.config
    payload = {"environment": environment(),
               "settings": {"length": args.length, "repeats": args.repeats, "overrides": overrides,
                            "transformer": {k: cfg[k] for k in ("block_size", "dim", "num_layers", "num_heads")}},
               "records": records}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "sequence_sampling.json", payload)
    lines = [f"# sequence sampling: {args.length} new tokens, median of {args.repeats} timings after compilation",
             f"- devices: {payload['environment']['devices']['device_kind']}; transformer "
             f"{payload['settings']['transformer']}", "",
             "| model | sampler | num_samples | median s | tokens/s | speed-up vs naive | identical |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in records:
        lines.append(f"| {r['model']} | {r['sampler']} | {r['num_samples']} | {r['median_s']:.3f} | "
                     f"{r['tokens_per_s']:,.0f} | {r.get('speedup_vs_naive', float('nan')):.2f} | "
                     f"{r.get('identical_to_naive', '-')} |")
    report = "\n".join(lines) + "\n"
    (args.out / "sequence_sampling.md").write_text(report)
    print(report, end="")
    return payload


if __name__ == "__main__":
    main()
