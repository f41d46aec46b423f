"""A real multi-process run on one machine: 2 processes x 2 CPU devices, JAX's distributed runtime over
loopback (gloo collectives), against 1 process x 4 devices on the same global batches.

`_launch` is the launcher: it starts every process of a run with `sys.executable -m experiments.<name>`
(the command line users run), a free port on 127.0.0.1, and a timeout after which all processes are killed.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import gm_jax
from gm_jax import config as config_lib
from gm_jax.api import get_experiment_module
from gm_jax.training import TrainStep, checkpoint, distributed
from gm_jax.training.loop import train
from gm_jax.training.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 180  # per launch; every process is killed after it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flag_value(v) -> str:
    return f"({','.join(map(str, v))},)" if isinstance(v, tuple) else str(v)


def _launch(name: str, workdir: Path, config: dict, num_processes: int = 2, devices_per_process: int = 2,
            use_env: bool = False, kill_when=None) -> list[str]:
    """Run `python -m experiments.<name> --workdir workdir --config.k=v ...` as `num_processes` processes of
    one JAX distributed run on this machine. The layout goes by flags, or by JAX's environment variables with
    `use_env`. With `kill_when` (a function of nothing), every process is killed (SIGKILL) as soon as it
    returns True. Returns each process's output (from `workdir.parent/<workdir.name>.<i>.log`); fails the test
    when a process exits non-zero, or the run exceeds TIMEOUT_S (after killing every process)."""
    address = f"127.0.0.1:{_free_port()}"
    procs, logs = [], []
    try:
        for i in range(num_processes):
            env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}",
                   "JAX_PLATFORMS": "cpu"}
            args = [sys.executable, "-m", f"experiments.{name}", f"--workdir={workdir}", "--distributed_timeout_s=60",
                    *(f"--config.{k}={_flag_value(v)}" for k, v in config.items())]
            if use_env:
                env.update(JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES=str(num_processes),
                           JAX_PROCESS_ID=str(i))
            else:
                args += [f"--coordinator_address={address}", f"--num_processes={num_processes}", f"--process_id={i}"]
            logs.append(workdir.parent / f"{workdir.name}.{i}.log")
            with logs[-1].open("w") as log:
                procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + TIMEOUT_S
        while any(p.poll() is None for p in procs):
            if kill_when is not None and kill_when():
                break
            if time.monotonic() > deadline:
                pytest.fail(f"multi-process run of {name} exceeded {TIMEOUT_S} s:\n" +
                            "\n---\n".join(log.read_text()[-3000:] for log in logs))
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    outputs = [log.read_text() for log in logs]
    if kill_when is None:
        for i, (p, out) in enumerate(zip(procs, outputs)):
            assert p.returncode == 0, f"process {i} exited with {p.returncode}:\n{out[-4000:]}"
    return outputs


def test_two_processes_resumed_equal_one_process_of_four_devices(tmp_path):
    name = "vae_mnist"
    tiny = get_experiment_module(name).get_test_config()
    config = dict(data_dir="synthetic", hidden=tuple(tiny.hidden), latent_dim=tiny.latent_dim, iwae_k=tiny.iwae_k,
                  batch_size=tiny.batch_size, eval_batch_size=tiny.eval_batch_size, parallel="sharded",
                  checkpoint_every=1, log_every=1, progress_bar=False)
    assert tiny.batch_size % 4 == 0

    # 2 processes x 2 devices (layout by flags), killed once step 1's checkpoint is complete ...
    workdir = tmp_path / "two_processes"
    manifest = workdir / "checkpoints" / "1" / checkpoint.MANIFEST
    _launch(name, workdir, {**config, "num_steps": 1000}, kill_when=manifest.is_file)
    assert manifest.is_file()
    with checkpoint.Checkpointer(workdir, read_only=True) as ckpt:
        steps = ckpt.steps()  # the processes may have saved a step or two more before the kill
    final = steps[-1] + 1
    # ... then resumed by new processes (layout by JAX's environment variables) to one step more
    outputs = _launch(name, workdir, {**config, "num_steps": final}, use_env=True)
    assert all(f"'step': {final}" in out for out in outputs), outputs[0][-2000:]

    # 1 process x 4 devices (this one), the same global batches
    reference = tmp_path / "one_process"
    train(gm_jax.build(name, config=config_lib.apply_overrides(tiny, {**config, "num_steps": final}, name)), reference)

    got, want = gm_jax.load(workdir), gm_jax.load(reference)
    assert got.step == want.step == final
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                                                                   atol=1e-7), got.params, want.params)

    # only process 0 wrote: one record per step, one TensorBoard file per launch, one results file
    assert [r["step"] for r in read_metrics(workdir / "metrics.jsonl")] == list(range(1, final + 1))
    np.testing.assert_allclose([r["loss"] for r in read_metrics(workdir / "metrics.jsonl")],
                               [r["loss"] for r in read_metrics(reference / "metrics.jsonl")], rtol=1e-5)
    assert len(list((workdir / "tensorboard").iterdir())) == 2
    assert json.loads((workdir / "results.json").read_text())["step"] == final
    assert not list(workdir.glob("*.tmp*"))


def test_unreachable_coordinator_is_a_value_error_naming_address_and_timeout():
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.raises(ValueError, match=rf"coordinator at {address} could not be reached within 0.3 s"):
        distributed.initialize(address, num_processes=2, process_id=1, timeout_s=0.3)


def test_bad_layouts_fail_before_anything_is_written(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="divisible by the number of devices"):
        train(gm_jax.build("vae_mnist", config=get_experiment_module("vae_mnist").get_test_config(),
                           batch_size=6, parallel="sharded"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    for parallel in ("none", "pmap"):
        with pytest.raises(ValueError, match="use parallel=sharded"):
            TrainStep(lambda s, b, k, a: (s, {}), parallel)


def test_a_gan_two_player_step_across_two_processes_equals_one_process(tmp_path):
    """The GAN's own update (discriminator then generator, `gm_jax.recipes.adversarial`) under
    parallel=sharded over 2 processes x 2 devices gives the parameters of 1 process x 4 devices."""
    name = "gan_toy"
    module = get_experiment_module(name)
    tiny, default = module.get_test_config(), module.get_config()
    config = {k: tiny[k] for k in tiny.keys() if tiny[k] != default[k] and not isinstance(tiny[k], dict)}
    config.update(parallel="sharded", num_steps=2, checkpoint_every=1, log_every=1, progress_bar=False)
    assert tiny.batch_size % 4 == 0
    workdir = tmp_path / "two_processes"
    _launch(name, workdir, config)
    reference = tmp_path / "one_process"
    train(gm_jax.build(name, config=config_lib.apply_overrides(tiny, config, name)), reference)
    got, want = gm_jax.load(workdir), gm_jax.load(reference)
    assert got.step == want.step == 2
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                                                                   atol=1e-7), got.params, want.params)
    assert [r["step"] for r in read_metrics(workdir / "metrics.jsonl")] == [1, 2]
