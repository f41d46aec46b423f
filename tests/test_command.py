"""The `gm-jax` command (`gm_jax.command`): list, train, sample, eval and info, in-process through
`main([...])` on one tiny trained run (realnvp_toy's test config, 2 steps: the fastest to train, evaluate and
write artifacts), plus the installed script once; the other output forms on small arrays."""
import fcntl
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from gm_jax import command
from gm_jax.viz import samples
from gm_jax.api import experiment_names

# realnvp_toy.get_test_config() as flags, 2 steps, a checkpoint at each
TINY = ["--config.num_layers=2", "--config.hidden=8", "--config.mlp_layers=1", "--config.batch_size=16",
        "--config.eval_batch_size=64", "--config.init_batch_size=32", "--config.warmup_steps=1",
        "--config.grid_size=20", "--config.num_eval_points=64", "--config.num_steps=2", "--config.checkpoint_every=1",
        "--config.log_every=1", "--config.progress_bar=false"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A realnvp_toy run trained for 2 steps by `gm-jax train` (evaluated, artifacts written); read only.

    Under xdist it is trained once per session, in the workers' shared temporary root, by the
    first worker that needs it (the others wait on a lock file and reuse it)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # this session's root, shared by its workers
    workdir = root / "command_realnvp_toy"
    with open(root / "command_realnvp_toy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (workdir / "results.json").is_file():
            assert command.main(["train", "realnvp_toy", "--workdir", str(workdir), *TINY]) == 0
    return workdir


def test_list(capsys):
    assert command.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == experiment_names()
    gmm = next(line for line in lines if line.startswith("gmm_toy "))
    assert "Gaussian mixture model by EM on the 2-D ring" in gmm  # the module docstring's first line


def test_installed_script_lists_experiments():
    script = shutil.which("gm-jax", path=os.path.dirname(sys.executable)) or shutil.which("gm-jax")
    if script is None:
        pytest.fail("the gm-jax console script is not installed (pip install -e .)")
    proc = subprocess.run([script, "list"], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "vae_mnist" in proc.stdout and "wavenet_digits" in proc.stdout


def test_train_writes_a_run_and_refuses_another_config(run_dir, capsys):
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["experiment"] == "realnvp_toy" and saved["config"]["num_steps"] == 2
    assert json.loads((run_dir / "results.json").read_text())["step"] == 2
    # a second call in the same process (the absl flags of the first were undefined again): a changed config
    # is a user error, exit status 1 without a traceback, and nothing is written
    before = sorted(p.name for p in run_dir.iterdir())
    assert command.main(["train", "realnvp_toy", "--workdir", str(run_dir), *TINY, "--config.hidden=4"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "hidden: 8 -> 4" in err and "Traceback" not in err
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert command.main(["train", "no_such_experiment", "--workdir", str(run_dir)]) == 1
    assert "unknown experiment 'no_such_experiment'" in capsys.readouterr().err


def test_sample_writes_a_scatter_png_and_rejects_bad_requests(run_dir, tmp_path, capsys):
    out = tmp_path / "points.png"
    assert command.main(["sample", str(run_dir), "-n", "50", "--out", str(out), "--seed", "3", "--step", "1",
                         "--cond", "temperature=0.5"]) == 0
    assert Image.open(out).format == "PNG"
    assert f"wrote 50 samples of realnvp_toy (step 1, seed 3) to {out}" in capsys.readouterr().out

    wav = tmp_path / "points.wav"  # a suffix that does not fit the data kind
    assert command.main(["sample", str(run_dir), "--out", str(wav)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "float_points" in err and ".png" in err and not wav.exists()

    for not_a_run, why in ((tmp_path, "is not a gm_jax run directory"), (tmp_path / "missing", "does not exist")):
        assert command.main(["sample", str(not_a_run), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and why in err and "Traceback" not in err

    assert command.main(["sample", str(run_dir), "--out", str(out), "--cond", "labels=[1]"]) == 1
    assert "takes no conditioning ['labels']; valid: ['temperature']" in capsys.readouterr().err
    assert command.main(["sample", str(run_dir), "--out", str(out), "-n", "0"]) == 1  # argparse: status 1 too
    assert "error: argument -n/--num-samples: expected a positive integer, got 0" in capsys.readouterr().err


def test_eval_prints_and_writes_the_metrics(run_dir, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert command.main(["eval", str(run_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(out.read_text())
    results = json.loads((run_dir / "results.json").read_text())
    assert metrics["step"] == 2 and metrics["experiment"] == "realnvp_toy"
    assert metrics["test_nll_nats"] == pytest.approx(results["test_nll_nats"], rel=1e-6)  # the same eval key
    assert "test_nll_nats" in printed


def test_info_describes_the_run(run_dir, capsys):
    import jax

    import gm_jax

    assert command.main(["info", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "experiment   realnvp_toy: RealNVP (Dinh et al. 2017) on 2-D toy densities" in out
    assert "step         2 (newest intact checkpoint)" in out
    num_params = sum(p.size for p in jax.tree_util.tree_leaves(gm_jax.load(run_dir).params))
    assert f"parameters   {num_params:,}" in out
    assert "checkpoints  2 in" in out and "step 1 (" in out
    assert "num_steps: 4000 -> 2" in out and "hidden: 128 -> 8" in out
    assert "last metrics step 2: loss=" in out


def _stub(data_kind, **attrs):
    return SimpleNamespace(**{"name": "stub", "data_kind": data_kind, "config": {}, **attrs})


def test_write_samples_by_data_kind(tmp_path):
    """Every output form on small arrays: image grid, text, MIDI (one file per sample) or piano-roll PNG, WAV."""
    import pretty_midi
    import soundfile

    images = np.zeros((4, 5, 6, 1), np.uint8)
    images[:, 0, 0] = 255
    [png] = samples.write_samples(_stub("uint8", data_shape=(5, 6, 1), data_max=255), None, images,
                                  tmp_path / "grid.png")
    assert np.asarray(Image.open(png)).max() == 255

    vocab = SimpleNamespace(decode=lambda ids: "".join("ab"[i] for i in ids))
    [txt] = samples.write_samples(_stub("tokens", vocab=vocab), None, np.array([[0, 1, 1], [1, 0, 0]]),
                                  tmp_path / "s.txt")
    assert "abb" in txt.read_text() and "baa" in txt.read_text()

    rolls = np.zeros((3, 4, 88), np.uint8)
    rolls[:, :2, 39] = 1  # middle C for two frames
    music = _stub("binary", to_rolls=np.asarray, config={"step_seconds": 0.25})
    mids = samples.write_samples(music, None, rolls, tmp_path / "piece.mid")
    assert [p.name for p in mids] == ["piece_0.mid", "piece_1.mid", "piece_2.mid"]
    notes = pretty_midi.PrettyMIDI(str(mids[1])).instruments[0].notes
    assert [(n.pitch, n.end - n.start) for n in notes] == [(60, pytest.approx(0.5))]
    [roll_png] = samples.write_samples(music, None, rolls, tmp_path / "rolls.png")
    assert Image.open(roll_png).format == "PNG"

    wave = np.sin(np.linspace(0, 100, 800, dtype=np.float32))[None] * 0.5
    [wav] = samples.write_samples(_stub("audio"), None, wave, tmp_path / "clip.wav")
    data, rate = soundfile.read(wav)
    assert rate == 8000 and data.shape == (800,) and np.abs(data - wave[0]).max() < 1e-3

    with pytest.raises(ValueError, match=r"\.wav"):
        samples.write_samples(_stub("audio"), None, wave, tmp_path / "clip.png")


def test_parse_conditioning():
    assert command.parse_conditioning(["prompt=ROMEO:", "length=20", "labels=[1, 2]", "temperature=0.5"]) == {
        "prompt": "ROMEO:", "length": 20, "labels": [1, 2], "temperature": 0.5}
    with pytest.raises(command.UsageError, match="key=value"):
        command.parse_conditioning(["length"])
