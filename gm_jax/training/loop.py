"""The training loop shared by every likelihood experiment.

`train(experiment, workdir)` resumes from the latest complete checkpoint in
`workdir` when there is one; the data order and per-step keys are functions of
`(seed, step)`, so a resumed run continues exactly as an uninterrupted one.

Keys: `init_key, train_key, eval_key = split(key(config.seed), 3)`; step `s`
uses `fold_in(train_key, s)`.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import jax
import numpy as np
from absl import logging
from tqdm.auto import tqdm

from gm_jax.experiment import Experiment
from gm_jax.training import checkpoint, rundir
from gm_jax.training.metrics import MetricWriter, read_metrics
from gm_jax.training.steps import TrainStep, all_finite

CONFIG_FILE = rundir.CONFIG_FILE
RESULTS_FILE = "results.json"


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The keys of a run with `seed`: `init`, `train` (fold in the step) and `eval`."""
    init, train, evaluation = jax.random.split(jax.random.key(seed), 3)
    return {"init": init, "train": train, "eval": evaluation}


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    rundir.write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _run_record(experiment: Experiment) -> dict:
    return {"experiment": experiment.name, "config": experiment.config.to_dict()}


def open_run(experiment: Experiment, workdir: Path, stack: contextlib.ExitStack, fresh: bool = False) -> None:
    """Claim `workdir` for `experiment` inside `stack`: check the run's identity (before writing
    anything), take the single-writer lock, then write `config.json` when it is new or changed.

    Raises:
      WorkdirMismatchError: the workdir holds another run (and `fresh` is False).
      WorkdirInUseError: another process holds the workdir's lock.
    """
    allowed = rundir.resumable_keys(experiment)
    if not fresh:
        rundir.check_identity(workdir, experiment.name, experiment.config, allowed)  # reads only
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        stack.enter_context(rundir.RunLock(workdir))
    if fresh and rundir.read_run_config(workdir) is not None:
        moved = rundir.move_run_aside(workdir)
        logging.warning("--fresh: the previous run in %s was moved to %s", workdir, moved)
    saved = rundir.check_identity(workdir, experiment.name, experiment.config, allowed)  # again, under the lock
    record = _run_record(experiment)
    if saved != json.loads(json.dumps(record)):
        write_json(workdir / CONFIG_FILE, record)


def train(experiment: Experiment, workdir: str | os.PathLike, fresh: bool = False):
    """Train `experiment` to `config.num_steps`, checkpointing into `workdir`.

    Writes `workdir/config.json` (experiment name and config, read by
    `gm_jax.load`), `workdir/checkpoints/` (verified, see
    `gm_jax.training.checkpoint`), `workdir/metrics.jsonl` (records with `step`,
    the loss terms in nats and `wall_s`, the cumulative training time in
    seconds) and TensorBoard events in `workdir/tensorboard/`.

    A workdir that holds a run is resumed from its newest intact checkpoint;
    newer steps that fail verification are moved to
    `workdir/corrupt_checkpoints/`. The workdir must hold the same experiment
    and config (up to `rundir.resumable_keys`), else nothing is written;
    `fresh=True` moves the old run aside (`rundir.move_run_aside`) and starts
    over. One process at a time may train in a workdir (`rundir.RunLock`).

    Returns:
      The final TrainState (plain, single copy on the first local device, whatever
      `config.parallel`, so evaluation and sampling run as on one device).

    Raises:
      FloatingPointError: the loss or the parameters became non-finite; no
        checkpoint is written from that point, so the last good one is kept.
      WorkdirMismatchError, WorkdirInUseError (ValueErrors): see `open_run`.
      ValueError: checkpoints exist but none is intact (never a silent restart).
    """
    config = experiment.config
    workdir = Path(workdir)
    keys = run_keys(config.seed)
    with contextlib.ExitStack() as stack:
        open_run(experiment, workdir, stack, fresh)
        ckpt = stack.enter_context(
            checkpoint.Checkpointer(workdir, config.checkpoint_every, config.keep_checkpoints))
        if ckpt.steps():  # resume: restore into the state's shapes, without running the (eager, data-dependent) init
            state = ckpt.restore(jax.eval_shape(experiment.init_state, keys["init"]))
            for bad in sorted(ckpt.skipped):
                moved = ckpt.quarantine(bad, workdir / "corrupt_checkpoints")
                logging.warning("checkpoint step %d failed verification and was moved to %s", bad, moved)
        else:
            state = experiment.init_state(keys["init"])
        start = int(state.step)
        if start >= config.num_steps:
            return jax.device_put(state, jax.local_devices()[0])
        return _train_steps(experiment, workdir, ckpt, state, start, keys)


def _train_steps(experiment: Experiment, workdir: Path, ckpt: checkpoint.Checkpointer, state, start: int, keys):
    config = experiment.config
    writer = MetricWriter(workdir, resume_step=start)
    wall_before = writer.last.get("wall_s", 0.0)
    last_saved = start or None
    step_fn = TrainStep(experiment.update, config.parallel)
    state = step_fn.put_state(state)
    batches = experiment.train_batches(start)
    t0 = time.perf_counter()
    bar = tqdm(total=config.num_steps, initial=start, desc=experiment.name, unit="step",
               disable=not config.progress_bar, dynamic_ncols=True)
    try:
        for step in range(start + 1, config.num_steps + 1):
            state, metrics = step_fn(state, next(batches), jax.random.fold_in(keys["train"], step - 1))
            bar.update(1)
            is_save = step % config.checkpoint_every == 0 or step == config.num_steps
            if step % config.log_every == 0 or is_save:
                values = {k: float(v) for k, v in metrics.items()}
                if not np.all(np.isfinite(list(values.values()))):
                    kept = (f"the last good checkpoint (step {last_saved}) is kept" if last_saved
                            else "no checkpoint had been written yet")
                    raise FloatingPointError(f"non-finite metrics at step {step}: {values}; {kept}")
                values["wall_s"] = wall_before + time.perf_counter() - t0
                writer.write(step, values)
                bar.set_postfix(loss=f"{values['loss']:.3f}")
            if is_save:
                plain = jax.tree_util.tree_map(lambda x: np.array(x, copy=True), step_fn.get_state(state))
                if not all_finite(plain):
                    raise FloatingPointError(f"non-finite train state at step {step}; checkpoint not written")
                if ckpt.save(step, plain, force=True):
                    last_saved = step
    finally:
        bar.close()
        writer.close()
    return jax.device_put(step_fn.get_state(state), jax.local_devices()[0])


def train_and_evaluate(experiment: Experiment, workdir: str | os.PathLike, fresh: bool = False) -> dict:
    """Train (or resume), evaluate on the test split and write the run's outputs.

    Writes, besides what `train` writes, `workdir/results.json` (the metrics of
    `experiment.evaluate`, names carrying their units, plus `step`,
    `train_wall_s` (cumulative training seconds) and `eval_wall_s`) and the
    experiment's artifacts (figures).

    Returns:
      The results dict.
    """
    workdir = Path(workdir)
    with contextlib.ExitStack() as stack:
        open_run(experiment, workdir, stack, fresh)  # held through evaluation and artifacts
        state = train(experiment, workdir)
        records = [r for r in read_metrics(workdir / "metrics.jsonl") if r["step"] <= int(state.step)]
        keys = run_keys(experiment.config.seed)
        t0 = time.perf_counter()
        results = {k: (float(v) if isinstance(v, (np.floating, jax.Array)) else v)
                   for k, v in experiment.evaluate(experiment.params_of(state), keys["eval"]).items()}
        results["eval_wall_s"] = time.perf_counter() - t0
        results["step"] = int(state.step)
        results["train_wall_s"] = records[-1]["wall_s"] if records else 0.0
        results["experiment"] = experiment.name
        experiment.write_artifacts(experiment.params_of(state), keys["eval"], workdir)
        write_json(workdir / RESULTS_FILE, results)
    return results

