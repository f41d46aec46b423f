"""Mixed precision (`config.compute_dtype`): bfloat16 matmuls with float32 parameters and likelihood terms
train the VAE and the Transformer to the float32 loss (within 2% after 200 steps, issue 19)."""
import jax
import numpy as np
import pytest

import gm_jax
from gm_jax.training.loop import run_keys
from gm_jax.training.steps import TrainStep

CASES = {
    "vae_mnist": dict(data_dir="synthetic", hidden=(64,), latent_dim=8, batch_size=32),
    "transformer_shakespeare": dict(data_dir="synthetic", dim=32, num_layers=1, num_heads=2, block_size=32,
                                    batch_size=8, warmup_steps=20),
}


def _train(name: str, dtype: str, steps: int = 200):
    experiment = gm_jax.build(name, compute_dtype=dtype, **CASES[name])
    step = TrainStep(experiment.update, "none")
    keys = run_keys(0)
    state = step.put_state(experiment.jit_init_state(keys["init"]))
    losses = []
    for i, batch in zip(range(steps), experiment.train_batches(0)):
        state, metrics = step(state, batch, jax.random.fold_in(keys["train"], i))
        losses.append(float(metrics["loss"]))
    return experiment, step.get_state(state), np.mean(losses[-20:])


@pytest.mark.parametrize("name", sorted(CASES))
def test_bfloat16_trains_to_the_float32_loss(name):
    _, _, fp32 = _train(name, "float32")
    experiment, state, bf16 = _train(name, "bfloat16")
    assert abs(bf16 / fp32 - 1) < 0.02, (fp32, bf16)
    # parameters and optimizer state stay float32; the matmuls run in bfloat16
    assert {x.dtype for x in jax.tree_util.tree_leaves(state.params)} == {np.dtype("float32")}
    batch = next(experiment.train_batches(0))
    keys = jax.random.split(jax.random.key(0), len(jax.tree_util.tree_leaves(batch)[0]))
    jaxpr = str(jax.make_jaxpr(experiment.loss_fn)(state.params, batch, keys))
    assert "dot_general" in jaxpr and "bf16" in jaxpr


def test_compute_dtype_is_checked_at_build():
    with pytest.raises(ValueError, match="compute_dtype='float16'"):
        gm_jax.build("vae_mnist", compute_dtype="float16")
    with pytest.raises(ValueError, match=r"pixelcnn_mnist implements \['float32'\]"):
        gm_jax.build("pixelcnn_mnist", compute_dtype="bfloat16")
