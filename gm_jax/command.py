"""The `gm-jax` command: list the experiments, train one, and sample from, evaluate or describe a run.

    gm-jax list
    gm-jax train NAME --workdir DIR [--paper] [--fresh] [--config.key=value ...]
    gm-jax sample DIR --out FILE [-n N] [--seed S] [--step STEP] [--cond key=value ...]
    gm-jax eval DIR [--step STEP] [--seed S] [--out results.json]
    gm-jax info DIR [--full-config]

`train` is `python -m experiments.NAME` (`gm_jax.cli`: the same flags, resumption
and checks). `sample`, `eval` and `info` read a run directory written by
training (`config.json` and verified checkpoints, loaded with `gm_jax.load`).

`sample` writes the samples in the form of the experiment's data
(`gm_jax.viz.samples.write_samples`), chosen by the suffix of `--out`, which must match:

    images (binary / 8-bit)    .png   one grid (ceil(sqrt(N)) columns); gmm_mnist's PCA
                                      coordinates are decoded to images
    float points               .png   a scatter plot (the first two coordinates; 1-D: a histogram)
    text (characters, words)   .txt   one file, the samples separated by lines of '='
    music (JSB piano rolls)    .mid   MIDI files; or .png, one piano-roll plot of all samples
    audio (waveforms)          .wav   16-bit PCM WAV files at the data's sample rate

MIDI and WAV hold one sample per file: with `-n 1` the file is FILE itself,
otherwise `FILE_STEM_0.mid`, `FILE_STEM_1.mid`, ... beside it (indices
zero-padded to a common width). `--cond key=value` passes conditioning to
`Model.sample` (values are read as JSON where they parse, else as strings:
`--cond prompt=ROMEO: --cond length=200`, `--cond labels=[0,1,2,3]`,
`--cond digit=7 --cond speaker=jackson`; a string that would parse as JSON
is quoted: `--cond 'prompt="1599"'`).

Errors a user can fix (an unknown experiment or config key, a directory that is
not a run, a corrupt checkpoint, an `--out` suffix that does not fit the data,
bad conditioning) print `error: ...` on stderr and exit with status 1, without
a traceback.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

SAMPLE_DESCRIPTION = """Draw samples from the run in DIR and write them by their kind of data (--out's suffix must fit):

    images (binary / 8-bit)    .png   one grid (gmm_mnist's PCA coordinates decoded to images)
    float points               .png   a scatter plot (the first two coordinates; 1-D: a histogram)
    text (characters, words)   .txt   one file, the samples separated by lines of '='
    music (JSB piano rolls)    .mid   one MIDI file per sample; or .png, a piano-roll plot
    audio (waveforms)          .wav   one 16-bit PCM WAV file per sample

One file per sample: with -n 1 the file is --out itself, else OUT_0.mid, OUT_1.mid, ... beside it."""
# output form -> the default number of samples of `gm-jax sample`
DEFAULT_NUM_SAMPLES = {"image": 64, "points": 1000, "text": 4, "music": 4, "audio": 10}


class UsageError(ValueError):
    """A request the user can fix (printed as `error: ...`, exit status 1)."""


# -- helpers shared by the subcommands -------------------------------------------------------------
def experiment_description(name: str) -> str:
    """The first line of the docstring of `experiments.<name>`, read from its source (nothing imported).

    Raises:
      ValueError: `name` is not an experiment module.
    """
    spec = importlib.util.find_spec(f"experiments.{name}")
    if spec is None or spec.origin is None:
        raise ValueError(f"unknown experiment {name!r}")
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text()))
    return doc.strip().splitlines()[0] if doc else ""


def parse_conditioning(items: list[str] | None) -> dict:
    """`["key=value", ...]` as a dict; a value is read as JSON where it parses (numbers, lists,
    true/false/null, quoted strings), else kept as the string.

    Raises:
      UsageError: an item without `=` or with an empty key, or a key given twice.
    """
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise UsageError(f"--cond expects key=value (e.g. --cond temperature=0.8), got {item!r}")
        if key in out:
            raise UsageError(f"--cond {key} is given twice")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _plain(value):
    """A JSON-friendly value: NumPy / JAX scalars and arrays as Python numbers and lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    arr = np.asarray(value)
    if arr.dtype == bool:
        return arr.tolist()
    return arr.tolist() if arr.ndim else arr.item()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _is_run(workdir: Path) -> None:
    """Raise FileNotFoundError unless `workdir` holds a run's config.json (before anything slow is imported)."""
    from gm_jax.training import rundir

    if not workdir.is_dir():
        raise FileNotFoundError(f"{workdir} does not exist (expected a run directory written by `gm-jax train`)")
    if rundir.read_run_config(workdir) is None:
        raise FileNotFoundError(f"{workdir / rundir.CONFIG_FILE} not found: {workdir} is not a gm_jax run directory")


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


# -- subcommands ---------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from gm_jax.api import experiment_names

    names = experiment_names()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {experiment_description(name)}")
    return 0


def cmd_train(args, rest: list[str]) -> int:
    from absl import flags

    from gm_jax import cli
    from gm_jax.api import get_experiment_module

    get_experiment_module(args.name)  # ValueError listing the valid names, before absl
    before = set(flags.FLAGS)
    argv = [f"gm-jax train {args.name}", *rest]
    try:
        cli.main(args.name, argv)
    except SystemExit as e:  # absl's app.run always exits; cli exits with "error: ..." on user errors
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 1
        return int(e.code or 0)
    finally:  # cli.main defines its flags (--config.*, --workdir, ...) globally: undefine them again,
        for name in set(flags.FLAGS) - before:  # so `main` can be called again in the same process
            delattr(flags.FLAGS, name)
    return 0


def cmd_sample(args) -> int:
    import jax

    import gm_jax

    workdir = Path(args.workdir)
    _is_run(workdir)
    from gm_jax.viz.samples import check_out_path, output_form, write_samples

    conditioning = parse_conditioning(args.cond)
    model = gm_jax.load(workdir, step=args.step)
    out = check_out_path(model.experiment, args.out)  # before drawing anything
    n = args.num_samples or DEFAULT_NUM_SAMPLES[output_form(model.experiment)]
    x = model.sample(jax.random.key(args.seed), n, **conditioning)
    paths = write_samples(model.experiment, model.params, x, out,
                          title=f"{model.experiment.name} step {model.step}: {n} samples")
    shown = [str(p) for p in paths]
    print(f"wrote {n} samples of {model.experiment.name} (step {model.step}, seed {args.seed}) to "
          + (shown[0] if len(shown) == 1 else f"{shown[0]} ... {shown[-1]} ({len(shown)} files)"))
    return 0


def cmd_eval(args) -> int:
    import time

    import gm_jax
    from gm_jax.training.loop import run_keys, write_json

    workdir = Path(args.workdir)
    _is_run(workdir)
    model = gm_jax.load(workdir, step=args.step)
    seed = model.config.seed if args.seed is None else args.seed
    t0 = time.perf_counter()
    metrics = _plain(model.experiment.evaluate(model.params, run_keys(seed)["eval"]))
    metrics.update(experiment=model.experiment.name, step=model.step, eval_seed=seed,
                   eval_wall_s=time.perf_counter() - t0)
    width = max(len(k) for k in metrics)
    for k in sorted(metrics):
        print(f"{k:<{width}}  {_fmt(metrics[k])}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, metrics)
        print(f"wrote {out}")
    return 0


def cmd_info(args) -> int:
    import jax

    import gm_jax
    from gm_jax.api import get_config
    from gm_jax.training import checkpoint, rundir
    from gm_jax.training.metrics import read_metrics

    workdir = Path(args.workdir)
    _is_run(workdir)
    saved = rundir.read_run_config(workdir)
    name = saved["experiment"]
    print(f"run          {workdir}")
    print(f"experiment   {name}: {experiment_description(name)}")
    try:
        model = gm_jax.load(workdir)
    except FileNotFoundError:
        model = None
        print("step         - (no checkpoint yet)")
    if model is not None:
        exp = model.experiment
        dims = ", ".join("T" if d is None else str(d) for d in exp.data_shape)
        num_params = sum(int(np.size(p)) for p in jax.tree_util.tree_leaves(model.params))
        print(f"step         {model.step} (newest intact checkpoint)")
        print(f"data         {exp.data_kind} [N, {dims}]")
        print(f"parameters   {num_params:,}")
    ckpt_dir = workdir / "checkpoints"
    if ckpt_dir.is_dir():
        with checkpoint.Checkpointer(workdir, read_only=True) as ckpt:
            steps = ckpt.steps()
        sizes = ", ".join(f"{s} ({_human_bytes(_dir_bytes(ckpt.step_dir(s)))})" for s in steps)
        print(f"checkpoints  {len(steps)} in {ckpt_dir}: step {sizes}" if steps else f"checkpoints  none in {ckpt_dir}")
    else:
        print("checkpoints  none")

    run_config = rundir.flatten_config(saved["config"])
    default = rundir.flatten_config(get_config(name).to_dict())
    if args.full_config:
        print("config (* differs from the default)")
        for k in sorted(run_config):
            mark = "*" if k in default and default[k] != run_config[k] else " "
            print(f"  {mark} {k} = {run_config[k]!r}")
    else:
        diffs = [(k, default.get(k, "(not in the default)"), run_config[k]) for k in sorted(run_config)
                 if default.get(k, object()) != run_config[k]]
        print(f"config       {len(diffs)} difference(s) from {name}'s default config (--full-config for all)"
              + (":" if diffs else ""))
        for k, d, r in diffs:
            print(f"  {k}: {d!r} -> {r!r}")

    records = read_metrics(workdir / "metrics.jsonl")
    if records:
        last = records[-1]
        print(f"last metrics step {last['step']}: "
              + ", ".join(f"{k}={_fmt(v)}" for k, v in last.items() if k != "step"))
    else:
        print("last metrics (none)")
    results_path = workdir / "results.json"
    if results_path.is_file():
        try:
            results = json.loads(results_path.read_text())
        except json.JSONDecodeError:
            print(f"results      {results_path} is not valid JSON")
        else:
            scalars = {k: v for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            print(f"results      {results_path}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(scalars.items())))
    return 0


# -- the parser ----------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with the command's convention: a usage error prints the usage and `error: ...`, status 1."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(1, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gm-jax", description="Train, sample from, evaluate and inspect the gm_jax experiments.",
        epilog="Errors a user can fix print 'error: ...' and exit with status 1.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="the experiments, with one-line descriptions")

    p = sub.add_parser("train", help="train (or resume) an experiment: python -m experiments.NAME",
                       description="Train or resume experiment NAME in --workdir. Flags as `python -m "
                                   "experiments.NAME`: --workdir DIR (required), --paper, --fresh, "
                                   "--config.key=value ...")
    p.add_argument("name", metavar="NAME", help="an experiment (gm-jax list)")

    p = sub.add_parser("sample", help="draw samples from a run and write them (PNG, TXT, MIDI, WAV by data kind)",
                       description=SAMPLE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("workdir", metavar="DIR", help="a run directory")
    p.add_argument("-n", "--num-samples", type=_positive_int, default=None,
                   help="samples to draw (default: 64 images, 1000 points, 4 texts or pieces, 10 audio clips)")
    p.add_argument("--out", required=True, help="output file; its suffix must fit the data (.png .txt .mid .wav)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed of the samples (jax.random.key(seed); default 0)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest intact one)")
    p.add_argument("--cond", action="append", metavar="KEY=VALUE",
                   help="conditioning for Model.sample (repeatable; values read as JSON where they parse)")

    p = sub.add_parser("eval", help="evaluate a run (experiment.evaluate) and print its metrics")
    p.add_argument("workdir", metavar="DIR", help="a run directory")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest intact one)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the evaluation key run_keys(seed)['eval'] (default: the run's config.seed)")
    p.add_argument("--out", default=None, help="also write the metrics to this JSON file")

    p = sub.add_parser("info", help="a run's experiment, step, config changes, metrics, parameters, checkpoints")
    p.add_argument("workdir", metavar="DIR", help="a run directory")
    p.add_argument("--full-config", action="store_true", help="print every config key, not only the changes")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run `gm-jax` with `argv` (default `sys.argv[1:]`); returns the exit status: 0, or 1 after a
    user error (bad arguments included: the usage and `error: ...` on stderr); `--help` returns 0.

    `train` passes its flags after NAME to `gm_jax.cli.main` (absl).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if argv and argv[0] == "train":  # everything after NAME belongs to the experiment's absl flags
            if len(argv) < 2 or argv[1].startswith("-"):
                args, rest = parser.parse_args(argv[:2]), []  # usage error, or --help
            else:
                args, rest = parser.parse_args(argv[:2]), argv[2:]
        else:
            args, rest = parser.parse_args(argv), []
    except SystemExit as e:  # --help (0) or a usage error (1): a status, not an exception, for callers
        return e.code if isinstance(e.code, int) else 1
    handlers = {"list": cmd_list, "sample": cmd_sample, "eval": cmd_eval, "info": cmd_info}
    try:
        if args.command == "train":
            return cmd_train(args, rest)
        from absl import logging

        verbosity = logging.get_verbosity()
        logging.set_verbosity(logging.ERROR)  # orbax warns at every read-only restore
        try:
            return handlers[args.command](args)
        finally:
            logging.set_verbosity(verbosity)
    except (FileNotFoundError, ValueError, NotImplementedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `gm-jax info DIR | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
