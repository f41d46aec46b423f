"""Fault injection on run directories (issue 17): kill -9 and resume, corrupted checkpoints, wrong
commands, two writers, NaN. The machinery is `benchmarks.faults`, whose soak command
(`python -m benchmarks.faults`) runs many more trials than these."""
import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gm_jax
from benchmarks import faults
from gm_jax.training import checkpoint, rundir
from gm_jax.training.loop import train
from gm_jax.training.metrics import read_metrics

NAME = "realnvp_toy"  # the cheapest experiment to start; the soak covers a likelihood model and a GAN too


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A finished tiny run with checkpoints at steps 6 and 9 (and its intact states)."""
    workdir = tmp_path_factory.mktemp("faults") / "base"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(faults.build_tiny(NAME, num_steps=9), workdir)
    return workdir


def test_kill_9_at_a_random_moment_then_resume_is_bit_identical(tmp_path):
    # one trial here (the suite's time budget); `python -m benchmarks.faults` runs 20 over three families
    reference = faults.reference_run(NAME, tmp_path)
    trial = faults.kill_trial(NAME, reference, tmp_path / "kill", np.random.default_rng(1))
    assert trial["killed"] and trial["resume_rc"] == 0, trial
    assert trial["bit_identical"], trial


@pytest.mark.parametrize("how", faults.CORRUPTIONS)
def test_corrupt_newest_step_falls_back_to_the_previous_intact_step(base_run, how):
    result = faults.corruption_check(NAME, base_run, how, np.random.default_rng(len(how)))
    assert result["load"] == "fallback" and result["loaded_step"] == 6, result
    assert not result["silent_wrong_load"], result
    assert result["resume"] == "bit_identical", result


def test_every_step_corrupt_is_a_clear_error_never_a_silent_restart(base_run):
    result = faults.corruption_check(NAME, base_run, "garbage", np.random.default_rng(0), all_steps=True)
    assert result["load"] == "error" and result["resume"] == "error", result


def test_flipped_byte_is_detected_by_the_manifest(base_run, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(base_run, work)
    faults.corrupt(work / "checkpoints" / "9", "flip", np.random.default_rng(3))
    with pytest.raises(checkpoint.CorruptCheckpointError, match="SHA-256"):
        checkpoint.verify_manifest(work / "checkpoints" / "9")
    with pytest.raises(ValueError, match="unusable"):
        gm_jax.load(work, step=9)
    assert checkpoint.verify_manifest(work / "checkpoints" / "6")


def test_wrong_command_is_refused_and_leaves_the_workdir_byte_identical(base_run):
    before = faults.tree_digest(base_run)
    with pytest.raises(rundir.WorkdirMismatchError, match="holds a run of 'realnvp_toy', not 'gan_toy'"):
        train(faults.build_tiny("gan_toy", num_steps=9), base_run)
    with pytest.raises(rundir.WorkdirMismatchError, match=r"hidden: 8 -> 16"):
        train(faults.build_tiny(NAME, num_steps=9, hidden=16), base_run)
    assert faults.tree_digest(base_run) == before
    # keys a resumed run may change are allowed (and nothing is retrained for a finished run)
    state = train(faults.build_tiny(NAME, num_steps=9, log_every=2, progress_bar=True), base_run)
    assert int(state.step) == 9


def test_fresh_moves_the_old_run_aside(base_run, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(base_run, work)
    old = faults.tree_digest(work)
    train(faults.build_tiny("gan_toy", num_steps=2), work, fresh=True)
    assert json.loads((work / "config.json").read_text())["experiment"] == "gan_toy"
    (aside,) = [p for p in work.iterdir() if p.name.startswith("replaced-")]
    moved = faults.tree_digest(aside)
    assert {k: v for k, v in old.items() if k != ".lock"} == moved  # every old file, unchanged


def test_second_writer_is_refused_with_the_holders_pid_and_stale_locks_do_not_block(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'pid {os.getpid()} on host test'.encode()); "
         "print('locked', flush=True); time.sleep(120)", str(tmp_path / rundir.LOCK_FILE)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(rundir.WorkdirInUseError, match=f"pid {holder.pid} on host test"):
            train(faults.build_tiny(NAME, num_steps=2), tmp_path)
        assert not (tmp_path / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert int(train(faults.build_tiny(NAME, num_steps=2), tmp_path).step) == 2  # the dead holder's lock is gone


@pytest.mark.parametrize("poison_at", [4, 6])  # NaN first seen by the metrics check / by the checkpoint check
def test_nan_injection_stops_the_run_and_no_checkpoint_is_non_finite(tmp_path, poison_at):
    experiment = faults.build_tiny(NAME, poison_at=poison_at, num_steps=12, log_every=4)
    with pytest.raises(FloatingPointError, match="non-finite"):
        train(experiment, tmp_path)
    raw = faults.raw_states(NAME, tmp_path)
    assert raw and max(raw) < poison_at
    assert all(np.isfinite(x).all() for leaves in raw.values() for x in leaves if np.issubdtype(x.dtype, np.inexact))


def test_nan_before_the_first_checkpoint_says_none_was_written(tmp_path):
    with pytest.raises(FloatingPointError, match="no checkpoint had been written yet"):
        train(faults.build_tiny(NAME, poison_at=1, num_steps=9), tmp_path)


def test_load_with_a_config_that_disagrees_with_the_checkpoint_is_a_value_error(base_run, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(base_run, work)
    saved = json.loads((work / "config.json").read_text())
    saved["config"]["hidden"] = 16
    (work / "config.json").write_text(json.dumps(saved))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="no intact checkpoint"):
            gm_jax.load(work)


def test_resume_removes_stale_temporary_checkpoint_dirs_and_partial_metric_lines(base_run, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(base_run, work)
    stale = work / "checkpoints" / "12.orbax-checkpoint-tmp-1234"
    stale.mkdir()
    with (work / "metrics.jsonl").open("a") as f:
        f.write('{"step": 10, "lo')  # a run killed mid-append
    assert [r["step"] for r in read_metrics(work / "metrics.jsonl")][-1] == 9
    train(faults.build_tiny(NAME, num_steps=12), work)
    assert not stale.exists()
    assert [r["step"] for r in read_metrics(work / "metrics.jsonl")][-3:] == [10, 11, 12]
