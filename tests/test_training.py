"""Train steps (jit / pmap / sharded), checkpoints, resume, and the loop on real MNIST."""
import json
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax.training import TrainStep, checkpoint
from gm_jax.training.loop import run_keys, train
from gm_jax.training.metrics import read_metrics

TINY = dict(hidden=(32,), latent_dim=4, batch_size=20, iwae_k=8, progress_bar=False, log_every=5)


def _close(a, b, **tol):
    jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tol), a, b)


def test_four_cpu_devices_are_available():
    assert jax.local_device_count() == 4, "tests/conftest.py should force 4 CPU devices"


def test_jit_pmap_and_sharded_updates_agree(binarized_mnist_dir):
    experiment = gm_jax.build("vae_mnist", **TINY)
    init = experiment.jit_init_state(jax.random.key(0))
    batches = [b for _, b in zip(range(3), experiment.train_batches(0))]
    final = {}
    for parallel in ("none", "pmap", "sharded"):
        step = TrainStep(experiment.update, parallel)
        state = step.put_state(jax.tree_util.tree_map(jnp.array, init))
        for i, batch in enumerate(batches):
            state, metrics = step(state, batch, jax.random.fold_in(jax.random.key(1), i))
        final[parallel] = (step.get_state(state), {k: float(v) for k, v in metrics.items()})
    ref_state, ref_metrics = final["none"]
    assert int(ref_state.step) == 3
    moved = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: float(jnp.abs(a - b).max()),
                                                             ref_state.params, init.params))
    assert max(moved) > 1e-4  # the updates did something
    for parallel in ("pmap", "sharded"):
        state, metrics = final[parallel]
        assert int(state.step) == 3
        _close(state.params, ref_state.params, rtol=1e-4, atol=1e-5)
        for k in ref_metrics:
            np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-5)


def _while_bodies(hlo: str) -> dict[str, str]:
    """The text of every computation of an HLO module that a `while` runs as its body, by name."""
    names = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    blocks = re.split(r"\n(?=\S)", hlo)  # computations start at column 0
    return {m.group(1): b for b in blocks if (m := re.match(r"%?([\w.\-]+) ", b)) and m.group(1) in names}


def test_sharded_step_all_reduces_a_scans_gradient_once_per_step():
    """The sharded step runs the update per device (shard_map), so a recurrent weight's gradient is summed
    over devices once, after the backward loop, and not at every time step inside it (as XLA's sharding
    propagation placed it); and it updates as the one-device step does."""
    import optax
    from flax.training.train_state import TrainState
    from gm_jax.training import loss_update

    def loss_fn(params, batch, keys):
        def cell(h, x_t):
            h = jnp.tanh(h @ params["w"] + x_t)
            return h, h
        _, hs = jax.lax.scan(cell, jnp.zeros(batch["x"].shape[::2]), jnp.swapaxes(batch["x"], 0, 1))
        loss = jnp.mean(jnp.sum(hs ** 2, axis=(0, 2)))
        return loss, {}

    init = TrainState.create(apply_fn=None, params={"w": 0.3 * jax.random.normal(jax.random.key(0), (8, 8))},
                             tx=optax.sgd(0.1))
    batch = {"x": np.asarray(jax.random.normal(jax.random.key(1), (8, 12, 8)))}  # [B, T, D]
    final = {}
    for parallel in ("none", "sharded"):
        step = TrainStep(loss_update(loss_fn), parallel)
        state = step.put_state(jax.tree_util.tree_map(jnp.array, init))  # the step donates its state
        if parallel == "sharded":
            hlo = step.lower(state, batch, jax.random.key(2)).compile().as_text()
            bodies = _while_bodies(hlo)
            assert bodies, "the scan compiled to no while loop"
            inside = [name for name, text in bodies.items() if "all-reduce" in text]
            assert not inside, f"all-reduce inside the loop bodies {inside}"
            assert "all-reduce" in hlo  # the one reduction, after the loop
        state, metrics = step(state, batch, jax.random.key(2))
        final[parallel] = (step.get_state(state).params, float(metrics["loss"]))
    _close(final["sharded"][0], final["none"][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final["sharded"][1], final["none"][1], rtol=1e-5)


def test_batch_not_divisible_by_devices_is_a_value_error():
    step = TrainStep(lambda s, b, k, a: (s, {}), "pmap")
    with pytest.raises(ValueError, match="divisible by the number of devices"):
        step.put_batch({"image": np.zeros((6, 2))})
    with pytest.raises(ValueError, match="valid choices"):
        TrainStep(lambda s, b, k, a: (s, {}), "tpu")


def test_checkpoint_save_restore_roundtrip(tmp_path):
    experiment = gm_jax.build("vae_mnist", **TINY)
    state = experiment.jit_init_state(jax.random.key(3)).replace(step=jnp.asarray(7, jnp.int32))
    with checkpoint.Checkpointer(tmp_path) as ckpt:
        assert ckpt.save(7, state, force=True)
    assert (tmp_path / "checkpoints" / "7" / checkpoint.MANIFEST).is_file()
    fresh = experiment.jit_init_state(jax.random.key(4))
    with checkpoint.Checkpointer(tmp_path, read_only=True) as ckpt:
        restored = ckpt.restore(fresh)
    assert int(restored.step) == 7
    jax.tree_util.tree_map(np.testing.assert_array_equal, restored.params, state.params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, restored.opt_state, state.opt_state)


class _Interrupted(Exception):
    pass


def _interrupting(experiment, after: int):
    """Make `experiment.train_batches` raise after `after` batches, as a killed run would stop."""
    original = experiment.train_batches

    def batches(start_step=0, rows=None):
        for i, b in enumerate(original(start_step, rows)):
            if i == after:
                raise _Interrupted
            yield b

    experiment.train_batches = batches
    return experiment


def test_resume_after_interruption_continues_from_saved_step(tmp_path, binarized_mnist_dir):
    cfg = dict(TINY, num_steps=30, checkpoint_every=10)
    straight = train(gm_jax.build("vae_mnist", **cfg), tmp_path / "straight")

    run_dir = tmp_path / "interrupted"
    with pytest.raises(_Interrupted):
        train(_interrupting(gm_jax.build("vae_mnist", **cfg), after=15), run_dir)
    assert checkpoint.Checkpointer(run_dir, read_only=True).latest_step() == 10
    resumed = train(gm_jax.build("vae_mnist", **cfg), run_dir)
    assert int(resumed.step) == 30
    jax.tree_util.tree_map(np.testing.assert_array_equal, resumed.params, straight.params)
    steps = [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")]
    assert steps == [5, 10, 15, 20, 25, 30]  # the records of steps 11-15 before the crash were replaced
    # A finished run is not retrained: calling again just restores it.
    again = train(gm_jax.build("vae_mnist", **cfg), run_dir)
    jax.tree_util.tree_map(np.testing.assert_array_equal, again.params, straight.params)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, binarized_mnist_dir):
    experiment = gm_jax.build("vae_mnist", **dict(TINY, num_steps=20, checkpoint_every=5))
    original_loss, original_batches = experiment.loss_fn, experiment.train_batches

    def poisoned_batches(start_step=0, rows=None):
        for i, b in enumerate(original_batches(start_step, rows), start=start_step):
            yield dict(b, poison=np.full(len(b["image"]), np.nan if i >= 12 else 0.0, np.float32))

    def loss_fn(params, batch, keys):
        loss, metrics = original_loss(params, batch, keys)
        return loss + batch["poison"].mean(), metrics

    experiment.loss_fn, experiment.train_batches = loss_fn, poisoned_batches
    with pytest.raises(FloatingPointError, match="non-finite"):
        train(experiment, tmp_path)
    with checkpoint.Checkpointer(tmp_path, read_only=True) as ckpt:
        assert ckpt.latest_step() == 10
        good = ckpt.restore(experiment.jit_init_state(jax.random.key(0)))
    assert gm_jax.training.all_finite(good.params)


def test_load_restores_trained_model_and_rejects_bad_dirs(tmp_path, binarized_mnist_dir):
    cfg = dict(TINY, num_steps=10, checkpoint_every=5)
    state = train(gm_jax.build("vae_mnist", **cfg), tmp_path / "run")
    model = gm_jax.load(tmp_path / "run")
    assert model.step == 10 and model.config.hidden == (32,) and model.config.num_steps == 10
    jax.tree_util.tree_map(np.testing.assert_array_equal, model.params, state.params)
    assert model.sample(jax.random.key(0), 4).shape == (4, 28, 28, 1)
    assert gm_jax.load(tmp_path / "run", step=5).step == 5

    with pytest.raises(FileNotFoundError, match="not a gm_jax run directory"):
        gm_jax.load(tmp_path / "nowhere")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tmp_path / "run", corrupt)
    for f in (corrupt / "checkpoints" / "10").rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and "metadata" not in f.name:
            f.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="unusable"):
        gm_jax.load(corrupt, step=10)
    with pytest.warns(checkpoint.CheckpointWarning, match="skipping checkpoint .*10"):
        assert gm_jax.load(corrupt).step == 5  # falls back to the newest intact step
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid gm_jax run config"):
        gm_jax.load(corrupt)


@pytest.mark.parametrize("dataset", ["binarized_mnist", "mnist"])
def test_few_hundred_steps_on_real_mnist_lower_the_loss(tmp_path, dataset, binarized_mnist_dir, mnist_dir):
    cfg = dict(TINY, dataset=dataset, num_steps=300, batch_size=50, log_every=25, checkpoint_every=300)
    train(gm_jax.build("vae_mnist", **cfg), tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records][-1] == 300
    first, last = records[0]["loss"], np.mean([r["loss"] for r in records[-3:]])
    assert last < first - 40, (first, last)  # from ~250 nats after 25 steps to below ~200
    assert np.isfinite([r["loss"] for r in records]).all()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["experiment"] == "vae_mnist" and saved["config"]["dataset"] == dataset
    assert list((tmp_path / "tensorboard").iterdir())  # event files written


def test_run_keys_are_a_function_of_the_seed():
    a, b = run_keys(0), run_keys(0)
    for k in a:
        np.testing.assert_array_equal(jax.random.key_data(a[k]), jax.random.key_data(b[k]))
    assert not np.array_equal(jax.random.key_data(a["train"]), jax.random.key_data(run_keys(1)["train"]))
