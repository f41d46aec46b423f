"""The training loop shared by every likelihood experiment.

`train(experiment, workdir)` resumes from the latest complete checkpoint in
`workdir` when there is one; the data order and per-step keys are functions of
`(seed, step)`, so a resumed run continues exactly as an uninterrupted one.

Keys: `init_key, train_key, eval_key = split(key(config.seed), 3)`; step `s`
uses `fold_in(train_key, s)`.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from gm_jax.experiment import Experiment
from gm_jax.training import checkpoint
from gm_jax.training.metrics import MetricWriter, read_metrics
from gm_jax.training.steps import TrainStep, all_finite

CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"


def run_keys(seed: int) -> dict[str, jax.Array]:
    """The keys of a run with `seed`: `init`, `train` (fold in the step) and `eval`."""
    init, train, evaluation = jax.random.split(jax.random.key(seed), 3)
    return {"init": init, "train": train, "eval": evaluation}


def write_json(path: Path, obj) -> None:
    """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def train(experiment: Experiment, workdir: str | os.PathLike):
    """Train `experiment` to `config.num_steps`, checkpointing into `workdir`.

    Writes `workdir/config.json` (experiment name and config, read by
    `gm_jax.load`), `workdir/checkpoints/`, `workdir/metrics.jsonl` (records
    with `step`, the loss terms in nats and `wall_s`, the cumulative training
    time in seconds) and TensorBoard events in `workdir/tensorboard/`.

    Returns:
      The final TrainState (plain, single copy on the first local device, whatever
      `config.parallel`, so evaluation and sampling run as on one device).

    Raises:
      FloatingPointError: the loss or the parameters became non-finite; no
        checkpoint is written from that point, so the last good one is kept.
    """
    config = experiment.config
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_json(workdir / CONFIG_FILE, {"experiment": experiment.name, "config": config.to_dict()})
    keys = run_keys(config.seed)

    manager = checkpoint.checkpoint_manager(workdir, config.checkpoint_every, config.keep_checkpoints)
    start = manager.latest_step() or 0
    if start:  # resume: restore into the state's shapes, without running the (eager, data-dependent) init
        state = checkpoint.restore(manager, jax.eval_shape(experiment.init_state, keys["init"]), start)
    else:
        state = experiment.init_state(keys["init"])
    if start >= config.num_steps:
        manager.close()
        return jax.device_put(state, jax.local_devices()[0])

    writer = MetricWriter(workdir, resume_step=start)
    wall_before = writer.last.get("wall_s", 0.0)
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
                    raise FloatingPointError(
                        f"non-finite metrics at step {step}: {values}; the last good checkpoint "
                        f"(step {manager.latest_step()}) is kept"
                    )
                values["wall_s"] = wall_before + time.perf_counter() - t0
                writer.write(step, values)
                bar.set_postfix(loss=f"{values['loss']:.3f}")
            if is_save:
                plain = jax.tree_util.tree_map(lambda x: np.array(x, copy=True), step_fn.get_state(state))
                if not all_finite(plain):
                    raise FloatingPointError(f"non-finite train state at step {step}; checkpoint not written")
                checkpoint.save(manager, step, plain, force=True)
    finally:
        bar.close()
        writer.close()
        manager.wait_until_finished()
        manager.close()
    return jax.device_put(step_fn.get_state(state), jax.local_devices()[0])


def train_and_evaluate(experiment: Experiment, workdir: str | os.PathLike) -> dict:
    """Train (or resume), evaluate on the test split and write the run's outputs.

    Writes, besides what `train` writes, `workdir/results.json` (the metrics of
    `experiment.evaluate`, names carrying their units, plus `step`,
    `train_wall_s` (cumulative training seconds) and `eval_wall_s`) and the
    experiment's artifacts (figures).

    Returns:
      The results dict.
    """
    workdir = Path(workdir)
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

