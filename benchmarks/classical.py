"""Throughput of the classical and energy-based models: EM iterations/s, Gibbs sweeps/s, VI iterations/s,
Langevin steps/s.

    python -m benchmarks.classical [--out DIR] [--repeats 5] [--quick]

Each measurement compiles first (one warm-up call, excluded), then times
`--repeats` calls, each ended by `jax.block_until_ready`, and reports the
median seconds per call and its inverse in iterations/s:

* `gmm_em_toy` / `gmm_em_mnist`: one full-batch EM iteration (`gmm.em_step`,
  E and M step) of the default `gmm_toy` (5,000 2-D points, K = 8, full) and
  `gmm_mnist` (60,000 x 50 PCA coordinates, K = 20, full) configs;
* `lda_gibbs_sweep` / `lda_vi_iteration`: one collapsed Gibbs sweep over all
  training tokens / one mean-field VI iteration (5 local rounds + the topic
  update) of the default `lda_shakespeare` corpus (tokens/s = N x sweeps/s);
* `ebm_langevin_toy`: Langevin steps/s of the default `ebm_toy` energy
  (fresh parameters) for 2,500 chains in one `lax.scan` of `sample_steps`
  steps (chain-steps/s = chains x steps/s).

`--quick` shrinks every workload (for tests). Writes `OUT/classical.json` and
`OUT/classical.md` (default OUT: benchmarks/results) and prints the table.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

import gm_jax
from benchmarks.harness import environment
from gm_jax.models import gmm, lda
from gm_jax.training.loop import run_keys, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _median_seconds(fn, repeats: int) -> float:
    jax.block_until_ready(fn(0))  # compile
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(i + 1))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_gmm(name: str, experiment_name: str, repeats: int, overrides: dict) -> dict:
    e = gm_jax.api.build(experiment_name, **overrides)
    x = jnp.asarray(e.train_data())
    c = e.config
    params = e.init_params(run_keys(0)["init"])["gmm"]
    step = jax.jit(lambda p: gmm.em_step(p, x, c.covariance_type, c.reg_covar)[0])
    s = _median_seconds(lambda i: step(params), repeats)
    return {"name": name, "unit": "EM iterations/s", "per_s": 1 / s, "median_s": s,
            "workload": f"N={x.shape[0]}, D={x.shape[1]}, K={c.num_components}, {c.covariance_type}"}


def measure_lda(repeats: int, overrides: dict) -> list[dict]:
    e = gm_jax.api.build("lda_shakespeare", **overrides)
    c = e.config
    params = e.init_params(run_keys(0)["init"])
    words, docs = (jnp.asarray(a) for a in e.corpus()["train"])
    n = int(words.shape[0])
    sweep = jax.jit(lambda s, k: lda.gibbs_sweep(s, k, words, docs, c.alpha, c.eta))
    vi = jax.jit(lambda s: lda.vi_step(s, words, docs, c.alpha, c.eta, c.vi_inner_steps))
    s_g = _median_seconds(lambda i: sweep(params["gibbs"], jax.random.key(i)), repeats)
    s_v = _median_seconds(lambda i: vi(params["vi"]), repeats)
    work = f"N={n} tokens, D={int(docs[-1]) + 1}, V={e.vocab_size}, K={c.num_topics}"
    return [{"name": "lda_gibbs_sweep", "unit": "Gibbs sweeps/s", "per_s": 1 / s_g, "median_s": s_g,
             "tokens_per_s": n / s_g, "workload": work},
            {"name": "lda_vi_iteration", "unit": "VI iterations/s", "per_s": 1 / s_v, "median_s": s_v,
             "tokens_per_s": n / s_v, "workload": f"{work}, {c.vi_inner_steps} local rounds"}]


def measure_langevin(repeats: int, overrides: dict, chains: int) -> dict:
    e = gm_jax.api.build("ebm_toy", **overrides)
    params = e.init_params(run_keys(0)["init"])
    steps = e.config.sample_steps
    run = jax.jit(lambda k: e.sample(params, k, chains))
    s = _median_seconds(lambda i: run(jax.random.key(i)), repeats)
    return {"name": "ebm_langevin_toy", "unit": "Langevin steps/s", "per_s": steps / s, "median_s": s,
            "chain_steps_per_s": chains * steps / s,
            "workload": f"{chains} chains x {steps} steps, MLP {tuple(e.config.hidden)}"}


def markdown(records: list[dict], env: dict) -> str:
    lines = [f"Classical models and Langevin sampling on {env['devices']['device_kind']} "
             f"({env['backend']}, jax {env['jax_version']}), median of repeats after one compiling call.", "",
             "| benchmark | throughput | median s / call | workload |", "| --- | --- | --- | --- |"]
    for r in records:
        lines.append(f"| {r['name']} | {r['per_s']:.2f} {r['unit']} | {r['median_s']:.4f} | {r['workload']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.classical", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="tiny workloads (for tests)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    q = args.quick
    records = [
        measure_gmm("gmm_em_toy", "gmm_toy", args.repeats, {"num_train": 500} if q else {}),
        *([] if q else [measure_gmm("gmm_em_mnist", "gmm_mnist", args.repeats, {})]),
        *measure_lda(args.repeats, {"num_topics": 4} if q else {}),
        measure_langevin(args.repeats, {"hidden": (8,), "sample_steps": 5} if q else {}, 64 if q else 2500),
    ]
    env = environment()
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "classical.json", {"environment": env, "records": records})
    table = markdown(records, env)
    (args.out / "classical.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
