"""Fault injection on run directories: kill -9, corrupted checkpoints, wrong commands, two writers, NaN.

    python -m benchmarks.faults [--trials 20] [--flips 6] [--out benchmarks/results]

Trains tiny configs (each experiment's `get_test_config()` with `CHILD_OVERRIDES`)
of three families -- a likelihood model (`vae_mnist`), a GAN (`gan_toy`) and a
flow (`realnvp_toy`) -- and counts, writing `faults.md` and `faults.json`:

* **kill -9**: a training process is killed at a uniformly random moment of its
  training phase (frequent checkpoints, so many kills land inside a save), then
  the same command resumes it; the trial passes when the final train state
  (parameters and optimizer state) and `metrics.jsonl` (without wall times)
  equal an uninterrupted run's bit for bit;
* **corruption**: the newest checkpoint step is truncated, overwritten with
  garbage, has a byte flipped, loses a file, is emptied or gets a broken
  `_METADATA`; the check passes when `gm_jax.load` falls back to the previous
  step with exactly its parameters (or with every step corrupt raises a
  `ValueError`) and a resumed run ends bit-identical to an uninterrupted one;
  a *silent wrong load* is a state that differs from the intact state of the
  step it reports;
* **wrong command**: another experiment, or a changed config, in an existing
  workdir (through the command line) is refused and the tree is byte-identical;
* **two writers**: a second process on a busy workdir is refused at once;
* **NaN**: a run whose state turns NaN at a random step stops, and no
  checkpoint on disk holds a non-finite value.

The child processes are `python -m benchmarks.faults child NAME WORKDIR [--poison-at K]`.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # the checkout: where the child processes run
FAMILIES = {"vae_mnist": "likelihood", "gan_toy": "GAN", "realnvp_toy": "flow"}
CHILD_OVERRIDES = dict(num_steps=40, checkpoint_every=3, log_every=1, keep_checkpoints=2, progress_bar=False)
CORRUPTIONS = ("truncate", "garbage", "flip", "delete", "empty_dir", "broken_metadata")


# -- building and reading tiny runs ---------------------------------------------
def build_tiny(name: str, poison_at: int | None = None, **overrides):
    """Experiment `name` with its test config and `CHILD_OVERRIDES` (plus `overrides`); with
    `poison_at`, every float of the train state turns NaN from that step on."""
    from gm_jax import config as config_lib
    from gm_jax.api import get_experiment_module

    module = get_experiment_module(name)
    config = config_lib.apply_overrides(module.get_test_config(), {**CHILD_OVERRIDES, **overrides}, name)
    experiment = module.Experiment(config)
    if poison_at is not None:
        update = experiment.update

        def poisoned(state, batch, keys, axis_name=None):
            new, metrics = update(state, batch, keys, axis_name)
            scale = jnp.where(new.step >= poison_at, jnp.nan, 1.0)
            new = jax.tree_util.tree_map(lambda x: x * scale.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact)
                                         else x, new)
            return new, metrics

        experiment.update = poisoned
    return experiment


def stored_states(name: str, workdir: Path) -> dict[int, list[np.ndarray]]:
    """Every checkpoint step in `workdir` -> the leaves of its train state, restored with verification
    (steps that fail are left out)."""
    from gm_jax.training import checkpoint

    experiment = build_tiny(name)
    target = experiment.abstract_state()
    out = {}
    with checkpoint.Checkpointer(workdir, read_only=True) as ckpt, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in ckpt.steps():
            with contextlib.suppress(ValueError):  # a step that fails verification is left out
                out[step] = [np.asarray(x) for x in jax.tree_util.tree_leaves(ckpt.restore(target, step))]
    return out


def raw_states(name: str, workdir: Path) -> dict[int, list[np.ndarray]]:
    """Every step restored by orbax alone (no manifest, no checks): what a reader without verification sees."""
    import orbax.checkpoint as ocp

    experiment = build_tiny(name)
    target = experiment.abstract_state()
    out = {}
    with ocp.CheckpointManager((workdir / "checkpoints").resolve(),
                               options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
        for step in manager.all_steps():
            with contextlib.suppress(Exception):  # any failure to read is "not a silent load": left out
                out[int(step)] = [np.asarray(x) for x in jax.tree_util.tree_leaves(
                    manager.restore(step, args=ocp.args.StandardRestore(target)))]
    return out


def _unflatten_like(name: str, leaves: list[np.ndarray]):
    """Leaves (from `stored_states`) back into experiment `name`'s train-state structure."""
    from gm_jax.training.loop import run_keys

    experiment = build_tiny(name)
    treedef = jax.tree_util.tree_structure(jax.eval_shape(experiment.init_state, run_keys(0)["init"]))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True)
                                    for x, y in zip(a, b))


def metrics_without_time(workdir: Path) -> list[dict]:
    from gm_jax.training.metrics import read_metrics

    return [{k: v for k, v in r.items() if k != "wall_s"} for r in read_metrics(workdir / "metrics.jsonl")]


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file (directories as "dir"): the tree's exact content."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def child_command(name: str, workdir: Path, poison_at: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.faults", "child", name, str(workdir)]
    return cmd + (["--poison-at", str(poison_at)] if poison_at is not None else [])


def _env() -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one device in the children, whatever the parent uses
    return env


def run_child(name: str, workdir: Path, poison_at: int | None = None, timeout: float = 300):
    return subprocess.run(child_command(name, workdir, poison_at), capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=ROOT)


# -- the checks ----------------------------------------------------------------------
def reference_run(name: str, root: Path) -> dict:
    """An uninterrupted child run: its final state, metrics, and how long its training phase took."""
    workdir = root / f"reference-{name}"
    t0 = time.perf_counter()
    proc = subprocess.Popen(child_command(name, workdir), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=_env(), cwd=ROOT)
    started = None
    while proc.poll() is None:
        if started is None and (workdir / "metrics.jsonl").exists():
            started = time.perf_counter()
        time.sleep(0.005)
    if proc.returncode != 0:
        raise RuntimeError(f"reference run of {name} failed:\n{proc.stderr.read()[-3000:]}")
    end = time.perf_counter()
    states = stored_states(name, workdir)
    return {"workdir": workdir, "final": states[max(states)], "metrics": metrics_without_time(workdir),
            "train_s": end - (started or t0), "total_s": end - t0}


def kill_trial(name: str, reference: dict, workdir: Path, rng: np.random.Generator, attempts: int = 4) -> dict:
    """Kill -9 a child at a random moment of its training phase, resume it, compare with `reference`.

    A child that finishes before its kill (the machine ran faster than the reference) is started
    again in a fresh directory, with an earlier kill time, up to `attempts` times."""
    for attempt in range(attempts):
        if workdir.exists():
            shutil.rmtree(workdir)
        proc = subprocess.Popen(child_command(name, workdir), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT)
        while proc.poll() is None and not (workdir / "metrics.jsonl").exists():
            time.sleep(0.002)
        time.sleep(rng.uniform(0, reference["train_s"]) / 2 ** attempt)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if killed:
            break
    ckpt_dir = workdir / "checkpoints"
    in_save = ckpt_dir.is_dir() and any("tmp" in p.name for p in ckpt_dir.iterdir())
    steps = sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) if ckpt_dir.is_dir() else []
    unverified = bool(steps) and not (ckpt_dir / str(steps[-1]) / "gm_jax_manifest.json").exists()
    resumed = run_child(name, workdir)
    ok = resumed.returncode == 0
    if ok:
        states = stored_states(name, workdir)
        ok = bool(states) and same(states[max(states)], reference["final"]) and \
            metrics_without_time(workdir) == reference["metrics"]
    return {"family": FAMILIES[name], "experiment": name, "killed": killed, "during_save": in_save,
            "before_manifest": unverified, "latest_step_at_kill": steps[-1] if steps else None,
            "bit_identical": ok, "resume_rc": resumed.returncode,
            "resume_stderr": "" if ok else resumed.stderr[-2000:]}


def corrupt(step_dir: Path, how: str, rng: np.random.Generator) -> str:
    """Damage checkpoint directory `step_dir` in the way `how` (one of `CORRUPTIONS`); returns what was done."""
    data = sorted((p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d"),
                  key=lambda p: (-p.stat().st_size, p.as_posix()))
    # the largest data file (as a real disk error would most likely hit), a random one for deletions
    target = data[int(rng.integers(len(data)))] if how == "delete" else data[0]
    rel = target.relative_to(step_dir).as_posix()
    if how == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif how == "garbage":
        target.write_bytes(rng.integers(0, 256, target.stat().st_size, dtype=np.uint8).tobytes())
    elif how == "flip":
        raw = bytearray(target.read_bytes())
        i = int(rng.integers(len(raw)))
        raw[i] ^= 1 << int(rng.integers(8))
        target.write_bytes(bytes(raw))
        rel = f"{rel} byte {i}"
    elif how == "delete":
        target.unlink()
    elif how == "empty_dir":
        for p in list(step_dir.iterdir()):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        rel = "every file"
    elif how == "broken_metadata":
        (step_dir / "default" / "_METADATA").write_text("{broken")
        rel = "default/_METADATA"
    else:
        raise ValueError(f"unknown corruption {how!r}; valid: {CORRUPTIONS}")
    return f"{how}: {rel}"


def corruption_check(name: str, base: Path, how: str, rng: np.random.Generator, all_steps: bool = False,
                     compare_orbax: bool = False) -> dict:
    """Corrupt the newest step (or every step) of a copy of run `base`, then load and resume it; with
    `compare_orbax`, also count whether orbax alone (no manifest) would have returned wrong values."""
    from gm_jax import load
    from gm_jax.training.loop import train

    intact = stored_states(name, base)
    num_steps = json.loads((base / "config.json").read_text())["config"]["num_steps"]
    work = base.parent / f"{base.name}-{how}-{'all' if all_steps else 'latest'}-{int(rng.integers(1 << 30))}"
    shutil.copytree(base, work)
    steps = sorted(intact)
    what = [corrupt(work / "checkpoints" / str(s), how, rng) for s in (steps if all_steps else steps[-1:])]
    seen = raw_states(name, work) if compare_orbax and how == "flip" else {}  # orbax alone: flips can pass
    undetected_by_orbax = any(s in seen and not same(seen[s], intact[s]) for s in steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = load(work)
            loaded_step = model.step
            leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(model.params)]
            intact_params = [np.asarray(x) for x in jax.tree_util.tree_leaves(
                build_tiny(name).params_of(_unflatten_like(name, intact[loaded_step])))]
            silent_wrong = not same(leaves, intact_params)
            load_outcome = "fallback" if loaded_step < steps[-1] else "newest"
        except ValueError:
            loaded_step, silent_wrong, load_outcome = None, False, "error"
        try:
            train(build_tiny(name, num_steps=num_steps), work)
            final = stored_states(name, work)
            resume_outcome = "bit_identical" if same(final[max(final)], intact[steps[-1]]) else "differs"
        except ValueError:
            resume_outcome = "error"
    ok = (load_outcome == "error" and resume_outcome == "error") if all_steps else \
        (load_outcome == "fallback" and resume_outcome == "bit_identical")
    return {"experiment": name, "corruption": how, "all_steps": all_steps, "what": what, "load": load_outcome,
            "loaded_step": loaded_step, "silent_wrong_load": silent_wrong, "resume": resume_outcome,
            "orbax_alone_silently_wrong": undetected_by_orbax, "ok": ok}


def wrong_command_check(workdir: Path, other: str, override: str | None = None) -> dict:
    """Run experiment `other` (with `--config.<override>`) through its command line in `workdir`;
    passes when it exits non-zero with a message and the tree is byte-identical."""
    before = tree_digest(workdir)
    cmd = [sys.executable, "-m", f"experiments.{other}", f"--workdir={workdir}"] + \
        ([f"--config.{override}"] if override else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(),
                          cwd=ROOT)
    identical = tree_digest(workdir) == before
    return {"command": " ".join(cmd[1:]), "rc": proc.returncode, "message": proc.stderr.strip().splitlines()[-1:],
            "byte_identical": identical, "ok": proc.returncode != 0 and identical}


def concurrent_check(name: str, workdir: Path) -> dict:
    """Start a long child run, then a second one on the same workdir; the second must be refused at once."""
    first = subprocess.Popen(child_command(name, workdir) + ["--num-steps", "100000"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT)
    try:
        while first.poll() is None and not (workdir / "metrics.jsonl").exists():
            time.sleep(0.01)
        t0 = time.perf_counter()
        second = subprocess.run(child_command(name, workdir) + ["--num-steps", "100000"], capture_output=True,
                                text=True, timeout=120, env=_env(), cwd=ROOT)
        refused_s = time.perf_counter() - t0
    finally:
        first.kill()
        first.wait()
    message = second.stderr.strip().splitlines()[-1] if second.stderr.strip() else ""
    ok = second.returncode != 0 and f"pid {first.pid}" in message
    return {"experiment": name, "second_rc": second.returncode, "refused_after_s": round(refused_s, 2),
            "message": message, "ok": ok}


def nan_check(name: str, workdir: Path, poison_at: int) -> dict:
    """A child whose state turns NaN at step `poison_at`: it must stop, and every checkpoint be finite."""
    proc = run_child(name, workdir, poison_at=poison_at)
    raw = raw_states(name, workdir)
    non_finite = sum(1 for leaves in raw.values() for x in leaves
                     if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)))
    return {"experiment": name, "poison_at": poison_at, "rc": proc.returncode, "steps_on_disk": sorted(raw),
            "non_finite_leaves": non_finite, "stopped": proc.returncode != 0,
            "message": proc.stderr.strip().splitlines()[-1:] if proc.stderr.strip() else [],
            "ok": proc.returncode != 0 and non_finite == 0 and all(s < poison_at for s in raw)}


# -- driver ----------------------------------------------------------------------------
def soak(trials: int = 20, flips: int = 6, seed: int = 0, root: Path | None = None,
         families: tuple[str, ...] = tuple(FAMILIES), log=print) -> dict:
    """Run every check; returns the records and the counts (see the module docstring)."""
    from gm_jax.training.loop import train

    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # orbax's tasks on deliberately corrupted files
    rng = np.random.default_rng(seed)
    root = Path(root or tempfile.mkdtemp(prefix="gm_jax_faults_"))
    refs = {}
    for name in families:
        refs[name] = reference_run(name, root)
        log(f"reference {name}: {refs[name]['total_s']:.1f} s ({refs[name]['train_s']:.2f} s training)")
    kills = []
    for i in range(trials):
        name = families[i % len(families)]
        kills.append(kill_trial(name, refs[name], root / f"kill-{i}-{name}", rng))
        log(f"kill {i}: {kills[-1]['experiment']} killed={kills[-1]['killed']} "
            f"during_save={kills[-1]['during_save']} bit_identical={kills[-1]['bit_identical']}")
    corruptions = []
    for name in families:
        base = root / f"base-{name}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            train(build_tiny(name, num_steps=9), base)
        for how in CORRUPTIONS:
            for _ in range(flips if how == "flip" else 1):
                corruptions.append(corruption_check(name, base, how, rng, compare_orbax=True))
        corruptions.append(corruption_check(name, base, "garbage", rng, all_steps=True))
        log(f"corruptions {name}: {sum(c['ok'] for c in corruptions if c['experiment'] == name)} ok")
    wrong = [wrong_command_check(refs[families[0]]["workdir"], families[1]),
             wrong_command_check(refs[families[0]]["workdir"], families[0], "batch_size=3")]
    concurrent = [concurrent_check(families[0], root / "concurrent")]
    nans = [nan_check(name, root / f"nan-{name}", int(rng.integers(2, CHILD_OVERRIDES["num_steps"])))
            for name in families]
    counts = {
        "kill_trials": len(kills), "killed": sum(k["killed"] for k in kills),
        "kill_bit_identical": sum(k["bit_identical"] and k["killed"] for k in kills),
        "kills_during_save": sum(k["during_save"] for k in kills),
        "kills_before_manifest": sum(k["before_manifest"] for k in kills),
        "corruption_checks": len(corruptions), "corruption_ok": sum(c["ok"] for c in corruptions),
        "silent_wrong_loads": sum(c["silent_wrong_load"] for c in corruptions),
        "orbax_alone_silently_wrong": sum(c["orbax_alone_silently_wrong"] for c in corruptions),
        "wrong_command_ok": sum(w["ok"] for w in wrong), "wrong_command_checks": len(wrong),
        "concurrent_ok": sum(c["ok"] for c in concurrent), "concurrent_checks": len(concurrent),
        "nan_runs": len(nans), "nan_stopped": sum(n["stopped"] for n in nans),
        "non_finite_checkpoints": sum(n["non_finite_leaves"] > 0 for n in nans),
    }
    return {"counts": counts, "kills": kills, "corruptions": corruptions, "wrong_command": wrong,
            "concurrent": concurrent, "nan": nans, "root": str(root)}


def write_report(result: dict, out: Path, seconds: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "faults.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    c = result["counts"]
    lines = [
        "# Fault injection (`python -m benchmarks.faults`)", "",
        f"{jax.devices()[0].platform}, {os.cpu_count()} cores; {seconds:.0f} s. Families: "
        + ", ".join(f"{n} ({f})" for n, f in FAMILIES.items()) + ".", "",
        "| check | result |", "| --- | --- |",
        f"| kill -9 at a random moment, then resume: bit-identical final state and metrics | "
        f"{c['kill_bit_identical']}/{c['kill_trials']} ({c['killed']} killed before finishing, "
        f"{c['kills_during_save']} inside an orbax save, "
        f"{c['kills_before_manifest']} between a save and its manifest) |",
        f"| corrupted newest step (or all steps): fallback + bit-identical resume (or a clear error) | "
        f"{c['corruption_ok']}/{c['corruption_checks']} |",
        f"| silent wrong loads (gm_jax.load) | {c['silent_wrong_loads']} "
        f"(orbax alone, unverified: {c['orbax_alone_silently_wrong']}) |",
        f"| wrong command in a workdir: refused, tree byte-identical | "
        f"{c['wrong_command_ok']}/{c['wrong_command_checks']} |",
        f"| second process on a busy workdir refused | {c['concurrent_ok']}/{c['concurrent_checks']} |",
        f"| NaN injected: run stopped | {c['nan_stopped']}/{c['nan_runs']} |",
        f"| checkpoints holding non-finite values | {c['non_finite_checkpoints']} |", "",
        "| corruption | experiment | load | resume | ok |", "| --- | --- | --- | --- | --- |",
    ]
    for r in result["corruptions"]:
        lines.append(f"| {'; '.join(r['what'])}{' (every step)' if r['all_steps'] else ''} | {r['experiment']} | "
                     f"{r['load']} | {r['resume']} | {'yes' if r['ok'] else 'NO'} |")
    (out / "faults.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("child", help="train one tiny run (used by the checks)")
    child.add_argument("name")
    child.add_argument("workdir")
    child.add_argument("--poison-at", type=int, default=None)
    child.add_argument("--num-steps", type=int, default=None)
    parser.add_argument("--trials", type=int, default=20, help="kill -9 trials, spread over the families")
    parser.add_argument("--flips", type=int, default=6, help="flipped-byte corruptions per family")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    if args.command == "child":
        from gm_jax.training import checkpoint, rundir
        from gm_jax.training.loop import train

        extra = {"num_steps": args.num_steps} if args.num_steps else {}
        try:
            train(build_tiny(args.name, args.poison_at, **extra), args.workdir)
        except (rundir.WorkdirInUseError, rundir.WorkdirMismatchError, checkpoint.CorruptCheckpointError,
                FloatingPointError) as e:
            sys.exit(f"error: {e}")
        return None
    t0 = time.perf_counter()
    result = soak(args.trials, args.flips, args.seed)
    write_report(result, Path(args.out), time.perf_counter() - t0)
    print(json.dumps(result["counts"], indent=1))
    return result


if __name__ == "__main__":
    main()
