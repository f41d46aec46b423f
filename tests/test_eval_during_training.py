"""Evaluation during training (`config.eval_every`): validation metrics in metrics.jsonl, samples in
`workdir/samples/step_N.*` and in TensorBoard at exactly the stated steps; none with eval_every = 0; the
same parameters either way; a run may be resumed with another eval_every."""
from __future__ import annotations

import struct
from pathlib import Path

import jax
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

import gm_jax
from gm_jax import config as config_lib
from gm_jax.api import get_experiment_module
from gm_jax.training import rundir
from gm_jax.training.loop import train
from gm_jax.training.metrics import read_metrics


def _experiment(name: str, **overrides):
    base = {"num_steps": 4, "log_every": 3, "checkpoint_every": 4, "progress_bar": False}
    config = config_lib.apply_overrides(get_experiment_module(name).get_test_config(), {**base, **overrides}, name)
    return gm_jax.build(name, config=config)


def _events(workdir: Path) -> list:
    """Every event of the run's TensorBoard files (TFRecord framing: u64 length, u32 CRC, data, u32 CRC)."""
    events = []
    for path in sorted((workdir / "tensorboard").glob("events.out.tfevents.*")):
        data, i = path.read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            events.append(event_pb2.Event.FromString(data[i + 12:i + 12 + n]))
            i += 12 + n + 4
    return events


def _summaries(workdir: Path, kind: str) -> dict[str, list[int]]:
    """{tag: [steps]} of the summary values of `kind` ("image", "audio", "simple_value", "tensor")."""
    out: dict[str, list[int]] = {}
    for e in _events(workdir):
        for v in e.summary.value:
            if v.HasField(kind):
                out.setdefault(v.tag, []).append(int(e.step))
    return out


def test_image_run_writes_validation_metrics_and_sample_images_at_the_stated_steps(tmp_path):
    on, off = tmp_path / "eval", tmp_path / "plain"
    state = train(_experiment("vae_mnist", eval_every=2), on)
    plain = train(_experiment("vae_mnist", eval_every=0), off)

    records = {r["step"]: r for r in read_metrics(on / "metrics.jsonl")}
    assert sorted(records) == [2, 3, 4]  # eval steps 2, 4 (merged with the loss record), log step 3
    val = {"val_nll_nats", "val_bits_per_dim", "val_neg_elbo_nats", "val_kl_nats", "val_recon_nats", "eval_wall_s"}
    assert [s for s, r in records.items() if val <= set(r)] == [2, 4]
    assert not val & set(records[3])
    assert all({"loss", "wall_s"} <= set(r) for r in records.values())
    assert all(np.isfinite(records[s][k]) for s in (2, 4) for k in val)
    assert records[4]["val_bits_per_dim"] == pytest.approx(records[4]["val_nll_nats"] / (784 * np.log(2)))
    assert sorted(p.name for p in (on / "samples").iterdir()) == ["step_2.png", "step_4.png"]
    assert _summaries(on, "image") == {"samples": [2, 4]}
    assert _summaries(on, "simple_value")["val_nll_nats"] == [2, 4]

    # off: no validation metrics, samples or images; and evaluation never changes the training
    assert not any(k.startswith("val_") or k == "eval_wall_s" for r in read_metrics(off / "metrics.jsonl") for k in r)
    assert not (off / "samples").exists() and not _summaries(off, "image")
    jax.tree_util.tree_map(np.testing.assert_array_equal, state.params, plain.params)

    # eval_every and num_validation_examples only shape evaluation: a run may resume with others
    other = _experiment("vae_mnist", eval_every=3, num_validation_examples=7)
    rundir.check_identity(on, other.name, other.config, rundir.resumable_keys(other))


def test_text_run_writes_bits_per_char_and_text_samples(tmp_path):
    train(_experiment("ngram_shakespeare", eval_every=2, num_validation_examples=3), tmp_path)  # the cheapest
    records = {r["step"]: r for r in read_metrics(tmp_path / "metrics.jsonl")}
    assert [s for s, r in records.items() if "val_bits_per_char" in r] == [2, 4]
    r = records[4]
    assert r["val_bits_per_char"] == pytest.approx(r["val_nats_per_char"] / np.log(2))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_2.txt", "step_4.txt"]
    assert "ngram_shakespeare step 4" in (tmp_path / "samples" / "step_4.txt").read_text()
    assert _summaries(tmp_path, "tensor") == {"samples/text_summary": [2, 4]}


def test_eval_every_must_be_a_non_negative_int():
    with pytest.raises(ValueError, match="config.eval_every of vae_mnist must be an int >= 0"):
        _experiment("vae_mnist", eval_every=-1)
    with pytest.raises(ValueError, match="config.num_validation_examples of vae_mnist must be an int >= 1"):
        _experiment("vae_mnist", num_validation_examples=0)


def test_metric_writer_writes_images_audio_and_text_to_tensorboard(tmp_path):
    from gm_jax.training.metrics import MetricWriter

    writer = MetricWriter(tmp_path)
    writer.write_image("grid", np.zeros((4, 6, 4), np.uint8), 3)
    writer.write_image("gray", np.zeros((4, 6), np.uint8), 3)
    writer.write_audio("clip", np.linspace(-2.0, 2.0, 80), 8000, 5)  # clipped to [-1, 1]
    writer.write_text("text", "ROMEO:\n```", 7)
    with pytest.raises(ValueError, match=r"image must be uint8 \[H, W\] or \[H, W, C\]"):
        writer.write_image("bad", np.zeros((4, 6, 2), np.uint8), 3)
    with pytest.raises(ValueError, match=r"waveform must be float \[T\] \(mono\)"):
        writer.write_audio("bad", np.zeros((2, 80)), 8000, 5)
    writer.close()
    assert _summaries(tmp_path, "image") == {"grid": [3], "gray": [3]}
    audio = [v.audio for e in _events(tmp_path) for v in e.summary.value if v.HasField("audio")]
    assert len(audio) == 1 and audio[0].sample_rate == 8000 and audio[0].length_frames == 80
    assert _summaries(tmp_path, "tensor") == {"text/text_summary": [7]}
