"""The training loop shared by every likelihood experiment.

`train(experiment, workdir)` resumes from the latest complete checkpoint in
`workdir` when there is one; the data order and per-step keys are functions of
`(seed, step)`, so a resumed run continues exactly as an uninterrupted one.

Keys: `init_key, train_key, eval_key = split(key(config.seed), 3)`; step `s`
uses `fold_in(train_key, s)`. A model trained in stages (`Experiment.update_stages`)
runs each step with the compiled train step of its stage.

Evaluation during training (`config.eval_every` = N > 0): at every step that is a
multiple of N, `Experiment.validate` (metrics on `config.num_validation_examples`
validation examples) and `Experiment.progress_samples` run on the plain parameters
of that step (one device, whatever `config.parallel`) with `fold_in(eval_key, step)`;
the metrics join that step's metrics.jsonl record (which then always holds the loss
too) with `eval_wall_s`, and the samples are written to `workdir/samples/step_{N}.*`
and TensorBoard (`evaluate_during_training`). It reads no training data and no
training key, so the parameters are the same with or without it; its time is left
out of `wall_s`.

Several processes (`gm_jax.training.distributed`, `parallel=sharded`): every
process runs this same loop on the same global batches, reading only its rows
of each (`TrainStep.process_rows`, `Experiment.train_batches`), and takes part in each
checkpoint save and restore; process 0 alone writes `config.json`, the data
setup, the lock, `metrics.jsonl`, TensorBoard, samples, `results.json` and the
artifacts, and shows the progress bar. Evaluation during training runs on
process 0 only; the final `evaluate` runs on every process, each on its local
copy of the parameters.
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

from gm_jax import cache
from gm_jax.experiment import Experiment
from gm_jax.training import checkpoint, rundir
from gm_jax.training.distributed import barrier, is_writer
from gm_jax.training.metrics import MetricWriter, read_metrics
from gm_jax.training.steps import TrainStep, all_finite, local_copy

CONFIG_FILE = rundir.CONFIG_FILE
RESULTS_FILE = "results.json"
SAMPLES_DIR = "samples"  # workdir/samples/step_{N}.{png,txt,wav}: the samples of evaluation during training


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
    anything), take the single-writer lock, then write `config.json` when it is new or changed. The
    run's data setup (`rundir.SETUP_FILE`) is written with a new run and used by a resumed one. With
    several processes, process 0 takes the lock and writes; the others check and wait for it.

    Raises:
      WorkdirMismatchError: the workdir holds another run (and `fresh` is False).
      WorkdirInUseError: another process holds the workdir's lock.
      ValueError: the run's data setup is unreadable or differs from the one `experiment` was built with.
    """
    allowed = rundir.resumable_keys(experiment)
    if not fresh:
        rundir.check_identity(workdir, experiment.name, experiment.config, allowed)  # reads only
    if is_writer():
        workdir.mkdir(parents=True, exist_ok=True)
        stack.enter_context(rundir.RunLock(workdir))
        if fresh and rundir.read_run_config(workdir) is not None:
            moved = rundir.move_run_aside(workdir)
            logging.warning("--fresh: the previous run in %s was moved to %s", workdir, moved)
    barrier("gm_jax_open_run_locked")
    saved = rundir.check_identity(workdir, experiment.name, experiment.config, allowed)  # again, under the lock
    if experiment.setup_arrays:  # the run keeps its data setup: a resumed run or `gm_jax.load` uses it
        stored = cache.read_arrays(workdir / rundir.SETUP_FILE)
        if stored is not None:
            experiment.use_data_setup(stored, f"{workdir / rundir.SETUP_FILE}")
        elif is_writer():
            cache.write_arrays(workdir / rundir.SETUP_FILE, experiment.data_setup)
    record = _run_record(experiment)
    if is_writer() and saved != json.loads(json.dumps(record)):
        write_json(workdir / CONFIG_FILE, record)
    barrier("gm_jax_open_run_written")


def train(experiment: Experiment, workdir: str | os.PathLike, fresh: bool = False):
    """Train `experiment` to `config.num_steps`, checkpointing into `workdir`.

    Writes `workdir/config.json` (experiment name and config, read by
    `gm_jax.load`), `workdir/checkpoints/` (verified, see
    `gm_jax.training.checkpoint`), `workdir/metrics.jsonl` (records with `step`,
    the loss terms in nats and `wall_s`, the cumulative training time in
    seconds, evaluation during training excluded) and TensorBoard events in
    `workdir/tensorboard/`; with `config.eval_every` > 0 also validation metrics
    and samples every `eval_every` steps (`evaluate_during_training`).

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
      ValueError: checkpoints exist but none is intact (never a silent restart); `config.parallel` does
        not run with this many processes, or `config.batch_size` is not divisible by the number of devices
        (both before anything is written).
    """
    config = experiment.config
    workdir = Path(workdir)
    keys = run_keys(config.seed)
    step_fns = stage_steps(experiment)
    step_fns[0][1].check_batch_size(experiment.global_batch_size())
    with contextlib.ExitStack() as stack:
        open_run(experiment, workdir, stack, fresh)
        ckpt = stack.enter_context(
            checkpoint.Checkpointer(workdir, config.checkpoint_every, config.keep_checkpoints))
        if ckpt.steps():  # resume: restore into the state's shapes, without running the (eager, data-dependent) init
            state = ckpt.restore(experiment.abstract_state())
            for bad in sorted(ckpt.skipped):
                moved = ckpt.quarantine(bad, workdir / "corrupt_checkpoints")
                logging.warning("checkpoint step %d failed verification and was moved to %s", bad, moved)
        else:
            state = experiment.jit_init_state(keys["init"])
        start = int(state.step)
        if start >= config.num_steps:
            return jax.device_put(state, jax.local_devices()[0])
        return _train_steps(experiment, workdir, ckpt, step_fns, state, start, keys)


def stage_steps(experiment: Experiment) -> list[tuple[int, TrainStep]]:
    """One `TrainStep` per training stage (`Experiment.update_stages`): [(first step, step), ...].

    Raises:
      ValueError: first steps that do not start at 0 and increase; what `TrainStep` raises.
    """
    stages = experiment.update_stages()
    starts = [s for s, _ in stages]
    if not starts or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])):
        raise ValueError(f"{experiment.name}.update_stages() must start at step 0 and increase, got {starts}")
    return [(s, TrainStep(fn, experiment.config.parallel, compiler_options=experiment.compiler_options))
            for s, fn in stages]


def _train_steps(experiment: Experiment, workdir: Path, ckpt: checkpoint.Checkpointer,
                 step_fns: list[tuple[int, TrainStep]], state, start: int, keys):
    config = experiment.config
    step_fn = step_fns[0][1]  # placement (put/get state, process rows) is the same for every stage
    writer = MetricWriter(workdir, resume_step=start) if is_writer() else None  # None: another process writes
    wall_before = writer.last.get("wall_s", 0.0) if writer else 0.0
    last_saved = start or None
    state = step_fn.put_state(state)
    batches = experiment.train_batches(start, rows=step_fn.process_rows(experiment.global_batch_size()))
    t0 = time.perf_counter()
    eval_s = 0.0  # seconds spent in evaluation during training, left out of wall_s
    bar = tqdm(total=config.num_steps, initial=start, desc=experiment.name, unit="step",
               disable=not (config.progress_bar and is_writer()), dynamic_ncols=True)
    try:
        for step in range(start + 1, config.num_steps + 1):
            stage_fn = next(fn for first, fn in reversed(step_fns) if step - 1 >= first)
            state, metrics = stage_fn(state, next(batches), jax.random.fold_in(keys["train"], step - 1))
            bar.update(1)
            is_save = step % config.checkpoint_every == 0 or step == config.num_steps
            is_eval = config.eval_every > 0 and step % config.eval_every == 0
            if step % config.log_every == 0 or is_save or is_eval:
                values = {k: float(v) for k, v in local_copy(metrics).items()}
                if not np.all(np.isfinite(list(values.values()))):
                    kept = (f"the last good checkpoint (step {last_saved}) is kept" if last_saved
                            else "no checkpoint had been written yet")
                    raise FloatingPointError(f"non-finite metrics at step {step}: {values}; {kept}")
                values["wall_s"] = wall_before + time.perf_counter() - t0 - eval_s
                if is_eval and writer:  # one record per step: the validation metrics join the loss terms
                    params = jax.device_put(experiment.params_of(step_fn.get_state(state)), jax.local_devices()[0])
                    evaluated = evaluate_during_training(experiment, params, step,
                                                         jax.random.fold_in(keys["eval"], step), workdir, writer)
                    eval_s += evaluated["eval_wall_s"]
                    values.update(evaluated)
                if writer:
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
        if writer:
            writer.close()
    return jax.device_put(step_fn.get_state(state), jax.local_devices()[0])


def evaluate_during_training(experiment: Experiment, params, step: int, key: jax.Array, workdir: str | os.PathLike,
                             writer: MetricWriter) -> dict[str, float]:
    """One evaluation during training: validation metrics and samples of `params` (training step `step`).

    Runs `experiment.validate` (key `split(key)[0]`) and `experiment.progress_samples` (`split(key)[1]`);
    writes the samples by their kind of data (`gm_jax.viz.samples.write_samples`) to
    `workdir/samples/step_{step}.png` (images; toy points as a scatter plot; JSB music as a piano roll),
    `.txt` (text) or `step_{step}_{i}.wav` (audio, one file per sample), and the same files to
    TensorBoard under the tag `samples` (`samples/{i}` for several files) at `step`.

    Args:
      params: plain parameters on one device (`experiment.params_of` of the train state).
      key: the evaluation key of this step (the loop passes `fold_in(run_keys(seed)["eval"], step)`).
      writer: the run's `MetricWriter` (the caller writes the returned metrics with the step's record).

    Returns:
      The validation metrics (floats, `val_*`) and `eval_wall_s`, the seconds this evaluation took.
    """
    from gm_jax.viz.samples import OUTPUT_FORMS, output_form, write_samples  # (matplotlib only when used)

    t0 = time.perf_counter()
    val_key, sample_key = jax.random.split(key)
    metrics = {k: float(v) for k, v in experiment.validate(params, val_key).items()}
    samples = np.asarray(experiment.progress_samples(params, sample_key))
    form = output_form(experiment)
    suffix = ".png" if form == "music" else OUTPUT_FORMS[form][0][0]  # music: one piano-roll image
    paths = write_samples(experiment, params, samples, Path(workdir) / SAMPLES_DIR / f"step_{step}{suffix}",
                          title=f"{experiment.name} step {step}: {len(samples)} samples")
    for i, path in enumerate(paths):
        tag = "samples" if len(paths) == 1 else f"samples/{i}"
        if path.suffix == ".png":
            from PIL import Image

            with Image.open(path) as image:
                writer.write_image(tag, np.asarray(image if image.mode in ("L", "RGB", "RGBA") else
                                                   image.convert("RGBA")), step)
        elif path.suffix == ".wav":
            import soundfile

            wave, rate = soundfile.read(path, dtype="float32")
            writer.write_audio(tag, wave, rate, step)
        else:
            writer.write_text(tag, path.read_text(), step)
    metrics["eval_wall_s"] = time.perf_counter() - t0
    return metrics


def train_and_evaluate(experiment: Experiment, workdir: str | os.PathLike, fresh: bool = False) -> dict:
    """Train (or resume), evaluate on the test split and write the run's outputs.

    Writes, besides what `train` writes, `workdir/results.json` (the metrics of
    `experiment.evaluate`, names carrying their units, plus `step`,
    `train_wall_s` (cumulative training seconds) and `eval_wall_s`) and the
    experiment's artifacts (figures); with several processes every process
    evaluates its local copy of the parameters and process 0 writes.

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
        if is_writer():
            experiment.write_artifacts(experiment.params_of(state), keys["eval"], workdir)
            write_json(workdir / RESULTS_FILE, results)
    return results

