"""Command line of every experiment module:

    python -m experiments.<name> --workdir DIR [--paper] [--fresh] [--config.key=value ...]

`--paper` starts from the module's `get_paper_config()` (the paper's
hyperparameters) instead of `get_config()`; `--config.*` overrides apply on top.

A workdir that holds a run is resumed; a command for another experiment or
config is refused before anything is written (`gm_jax.training.rundir`), unless
`--fresh`, which moves the old run into `DIR/replaced-<time>/` and starts over.
Errors a user can fix (bad config values, a workdir of another run or in use,
no intact checkpoint) exit with `error: ...` and status 1, without a traceback.

Multi-process runs (every process runs the same command; see README, "Running on many
devices and hosts"): `--coordinator_address=HOST:PORT --num_processes=N --process_id=I`,
else `$JAX_COORDINATOR_ADDRESS`, `$JAX_NUM_PROCESSES`, `$JAX_PROCESS_ID`, else JAX's
cluster auto-detection (Slurm, Open MPI, TPU); `--distributed_timeout_s` bounds the wait
for the coordinator and the other processes (`gm_jax.training.distributed.initialize`).

Config overrides are parsed by `ml_collections.config_flags` (absl). Unknown
`--config.*` keys are rejected before parsing, with the list of valid keys.
"""
from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from gm_jax import config as config_lib


def _check_config_args(argv: list[str], config, name: str) -> None:
    valid = config_lib.flat_keys(config)
    for arg in argv[1:]:
        if arg.startswith("--config."):
            key = arg[len("--config."):].split("=", 1)[0]
            if key not in valid:
                sys.exit(f"error: unknown config key {key!r} for {name}; valid keys: {', '.join(valid)}")


def main(name: str, argv: list[str] | None = None) -> None:
    """Train and evaluate experiment `name` from the command line (see module docstring)."""
    from gm_jax.api import get_experiment_module

    module = get_experiment_module(name)
    argv = list(sys.argv if argv is None else argv)
    paper = "--paper" in argv
    argv = [a for a in argv if a != "--paper"]
    default = module.get_paper_config() if paper else module.get_config()
    _check_config_args(argv, default, name)
    config_flag = config_flags.DEFINE_config_dict("config", default, f"config of {name}", sys_argv=argv)
    flags.DEFINE_boolean("paper", paper, "start from the paper's config (get_paper_config())")
    workdir_flag = flags.DEFINE_string("workdir", None, "run directory (created; resumed if it holds a run)",
                                       required=True)
    fresh_flag = flags.DEFINE_boolean("fresh", False, "start a new run in --workdir; the old run's files are "
                                      "moved to <workdir>/replaced-<time>/")
    from gm_jax.training import distributed

    coordinator_flag = flags.DEFINE_string("coordinator_address", None, "multi-process run: HOST:PORT of process 0's "
                                           f"coordinator (default ${distributed.ENV_COORDINATOR})")
    num_processes_flag = flags.DEFINE_integer("num_processes", None, "multi-process run: number of processes "
                                              f"(default ${distributed.ENV_NUM_PROCESSES})")
    process_id_flag = flags.DEFINE_integer("process_id", None, "multi-process run: this process's index, 0.."
                                           f"num_processes-1 (default ${distributed.ENV_PROCESS_ID})")
    timeout_flag = flags.DEFINE_float("distributed_timeout_s", distributed.DEFAULT_TIMEOUT_S,
                                      "multi-process run: seconds to wait for the coordinator and the other processes")

    def _run(_):
        logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
        from gm_jax import cache
        from gm_jax.training import checkpoint, rundir
        from gm_jax.training.loop import train_and_evaluate

        cache.enable_compilation_cache()
        try:  # before anything starts JAX's backend
            distributed.initialize(coordinator_flag.value, num_processes_flag.value, process_id_flag.value,
                                   timeout_flag.value)
            saved = None if fresh_flag.value else rundir.read_run_config(Path(workdir_flag.value))
            setup = None  # a resumed run continues with its own data setup (vocabulary, clusters, ...)
            if saved is not None and saved.get("experiment") == name:
                setup = cache.read_arrays(Path(workdir_flag.value) / rundir.SETUP_FILE)
            experiment = module.Experiment.with_data_setup(config_lib.apply_overrides(config_flag.value, {}, name),
                                                           setup)
            from gm_jax.training import TrainStep  # parallel mode and batch size fit the processes and devices

            TrainStep(experiment.update, experiment.config.parallel).check_batch_size(experiment.config.batch_size)
        except ValueError as e:
            sys.exit(f"error: {e}")
        try:
            results = train_and_evaluate(experiment, workdir_flag.value, fresh=fresh_flag.value)
        except (rundir.WorkdirMismatchError, rundir.WorkdirInUseError, checkpoint.CorruptCheckpointError,
                FloatingPointError) as e:
            sys.exit(f"error: {e}")
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in results.items()})

    app.run(_run, argv=argv)
