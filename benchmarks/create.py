"""Time `gm_jax.create` and `gm_jax.load` for every experiment's default config, cold and warm.

    python -m benchmarks.create [--only NAME ...] [--out DIR] [--before PATH] [--quick]

Each measurement is a fresh Python process (so nothing is shared in memory),
with its own gm_jax cache directory (`GM_JAX_CACHE_DIR`: the compilation cache
and the data-setup cache, see `gm_jax.cache`), per experiment:

1. **cold** `create`: an empty cache (a fresh machine, or a new configuration);
2. **warm** `create`: a second process on the cache the first one filled;
3. **load**: `gm_jax.load` of a run directory holding the step-0 state
   (written by the cold process after its timing: `config.json`, the run's data
   setup and one verified checkpoint, as training writes them).

The time is the call alone, ended by `jax.block_until_ready` on the
parameters; the import of jax, gm_jax and the experiment module (about 2-4 s,
paid once per process) is reported apart. The same measurements for another
checkout (`--before PATH`, e.g. a `git worktree` of an older commit) run
interleaved in the same invocation, experiment by experiment, so the two are
compared under the same load. Each number is one run (a cold start cannot be
repeated in one cache); repeat the invocation for a spread.

Writes `OUT/create.json` and `OUT/create.md` (default OUT: benchmarks/results).
`--quick` uses the experiments' test configs (for tests of this script).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results"


def _child(name: str, phase: str, workdir: str, quick: bool) -> dict:
    """One measurement in this (fresh) process: `phase` in create | load. Works with older checkouts too
    (without `jit_init_state` it saves the eager `init_state`)."""
    t0 = time.perf_counter()
    import contextlib

    import jax

    import gm_jax
    from gm_jax.training import checkpoint
    from gm_jax.training.loop import open_run, run_keys

    module = gm_jax.api.get_experiment_module(name)
    overrides = {}
    if quick:
        test_config = module.get_test_config()
        overrides = {k: test_config[k] for k in test_config.keys() if k in module.get_config()}
    import_s = time.perf_counter() - t0
    out = {"import_s": import_s, "gm_jax": str(Path(gm_jax.__file__).parent.parent)}
    if phase == "create":
        t0 = time.perf_counter()
        model = gm_jax.create(name, **overrides)
        jax.block_until_ready(model.params)
        out["seconds"] = time.perf_counter() - t0
        out["params"] = int(sum(x.size for x in jax.tree_util.tree_leaves(model.params)))
        if not Path(workdir, "config.json").exists():  # the first (cold) process writes the run to load
            experiment = model.experiment
            init = getattr(experiment, "jit_init_state", experiment.init_state)
            state = jax.device_get(init(run_keys(experiment.config.seed)["init"]))
            with contextlib.ExitStack() as stack:
                open_run(experiment, Path(workdir), stack)
                with checkpoint.Checkpointer(workdir) as ckpt:
                    ckpt.save(0, state, force=True)
    else:
        t0 = time.perf_counter()
        model = gm_jax.load(workdir)
        jax.block_until_ready(model.params)
        out["seconds"] = time.perf_counter() - t0
    return out


def _run_child(tree: Path, name: str, phase: str, workdir: Path, cache: Path, quick: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "XLA_FLAGS")}
    env.update(GM_JAX_CACHE_DIR=str(cache), PYTHONPATH=str(tree), JAX_PLATFORMS=env.get("JAX_PLATFORMS", "cpu"))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, phase, str(workdir)] + (
        ["--quick"] if quick else [])
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}
    return json.loads(lines[-1])


def measure(tree: Path, name: str, quick: bool) -> dict:
    """Cold create, warm create and load of experiment `name` with the gm_jax of checkout `tree`."""
    with tempfile.TemporaryDirectory(prefix="gm_jax_create_bench_") as tmp:
        cache, workdir = Path(tmp, "cache"), Path(tmp, "run")
        rec = {"cold": _run_child(tree, name, "create", workdir, cache, quick)}
        rec["warm"] = _run_child(tree, name, "create", workdir, cache, quick)
        rec["load"] = _run_child(tree, name, "load", workdir, cache, quick)
    return rec


def _cell(r: dict) -> str:
    return f"{r['seconds']:.2f}" if "seconds" in r else "error"


def markdown(records: list[dict], labels: list[str]) -> str:
    head = "| experiment | " + " | ".join(f"{lab}: create cold s | {lab}: create warm s | {lab}: load s"
                                         for lab in labels) + " | import s |"
    lines = [head, "| --- |" + " ---: |" * (3 * len(labels) + 1)]
    for rec in records:
        cells = []
        for lab in labels:
            r = rec[lab]
            cells += [_cell(r["cold"]), _cell(r["warm"]), _cell(r["load"])]
        imp = rec[labels[0]]["warm"].get("import_s")
        lines.append(f"| {rec['experiment']} | " + " | ".join(cells) + f" | {imp:.2f} |" if imp is not None
                     else f"| {rec['experiment']} | " + " | ".join(cells) + " | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.create", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="experiment names (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--before", type=Path, help="another checkout to time in the same run, interleaved")
    parser.add_argument("--quick", action="store_true", help="the experiments' test configs")
    parser.add_argument("--child", nargs=3, metavar=("NAME", "PHASE", "WORKDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child, quick=args.quick)), flush=True)
        return 0
    sys.path.insert(0, str(ROOT))
    from benchmarks.harness import environment
    from gm_jax.api import experiment_names
    from gm_jax.training.loop import write_json

    trees = {"after": ROOT} if args.before is None else {"before": args.before.resolve(), "after": ROOT}
    records = []
    for name in args.only or experiment_names():
        rec = {"experiment": name}
        for label, tree in trees.items():
            rec[label] = measure(tree, name, args.quick)
            print(name, label, {k: _cell(v) for k, v in rec[label].items()}, file=sys.stderr, flush=True)
        records.append(rec)
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment()
    write_json(args.out / "create.json", {"environment": env, "quick": args.quick,
                                          "trees": {k: str(v) for k, v in trees.items()}, "records": records})
    table = markdown(records, list(trees))
    (args.out / "create.md").write_text(
        f"# create / load times, seconds ({env['devices']['device_kind']} x{env['devices']['count']}, "
        f"jax {env['jax_version']}; import apart)\n\n" + table)
    print(table)
    failed = [r["experiment"] for r in records for lab in trees for p in r[lab].values() if "seconds" not in p]
    return 1 if failed else 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a script by the child processes: the checkout comes from PYTHONPATH
        sys.path[0] = os.environ.get("PYTHONPATH", str(ROOT)).split(os.pathsep)[0]
    sys.exit(main())
