"""Experiment-level tests of the sequence (text, music, audio) family (the handle, configs, short real-data runs)."""
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax.data import audio

TINY_TEXT = {"transformer_shakespeare": dict(dim=16, num_layers=1, num_heads=2, block_size=16, batch_size=4),
             "charrnn_shakespeare": dict(hidden=16, embed_dim=8, window=16, batch_size=4)}
TINY = {"layers_per_block": 3, "num_blocks": 2, "residual_channels": 8, "skip_channels": 8, "cond_dim": 4}


@pytest.mark.parametrize("name", sorted(TINY_TEXT))
def test_text_model_sample_and_log_prob(shakespeare_dir, name):
    model = gm_jax.create(name, data_dir=str(shakespeare_dir), **TINY_TEXT[name])
    vocab = model.experiment.vocab
    x = model.sample(jax.random.key(0), 3, prompt="ROMEO:", length=20, temperature=0.9, top_k=10, top_p=0.95)
    assert x.shape == (3, 26) and x.dtype == jnp.int32
    assert all(vocab.decode(row).startswith("ROMEO:") for row in np.asarray(x))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(model.sample(jax.random.key(0), 3, prompt="ROMEO:",
                                                                         length=20, temperature=0.9, top_k=10,
                                                                         top_p=0.95)))
    lp = model.log_prob(x[:, :17])
    e = model.experiment
    np.testing.assert_allclose(lp, e.token_log_probs(model.params, x[:, :16], x[:, 1:17]).sum(-1), rtol=1e-5)
    assert lp.shape == (3,) and bool(jnp.all(lp < 0))
    # bad input
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.sample(jax.random.key(0), 2, prompt="ROMEO: \u00e9\u4e2d")
    with pytest.raises(ValueError, match="at least one character"):
        model.sample(jax.random.key(0), 2, prompt="")
    with pytest.raises(ValueError, match="length"):
        model.sample(jax.random.key(0), 2, length=0)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(jax.random.key(0), 2, temperature=0.0)
    with pytest.raises(ValueError, match="takes no conditioning"):
        model.sample(jax.random.key(0), 2, labels=[1, 2])
    with pytest.raises(ValueError, match=rf"integer ids in \[0, {vocab.size}\)"):
        model.log_prob(np.full((2, 8), vocab.size))
    with pytest.raises(ValueError, match="got dtype float32"):
        model.log_prob(np.zeros((2, 8), np.float32))
    with pytest.raises(ValueError, match="T >= 2"):
        model.log_prob(np.zeros((2, 1), np.int32))


@pytest.mark.parametrize("name", ["transformer_shakespeare", "charrnn_shakespeare", "ngram_shakespeare"])
def test_text_evaluation_scores_every_character_once(name):
    """Issue 15: the final partial window was left unscored; now every character after the first of a split
    is scored exactly once: test_chars == len(test text) - 1."""
    module = importlib.import_module(f"experiments.{name}")
    config = module.get_test_config()
    if name == "transformer_shakespeare":
        config.eval_stride = 5  # sliding windows whose grid leaves a tail
    exp = module.Experiment(config)
    params = exp.params_of(exp.jit_init_state(jax.random.key(0)))
    text = exp._text("test")
    assert (len(text) - 1 - exp.window) % (exp.eval_stride or exp.window) != 0  # the split leaves a partial window
    out = exp.split_nll(params, "test")
    assert out["chars"] == len(text) - 1 and np.isfinite(out["nats_per_char"])



def test_experiment_sample_and_log_prob_api():
    model = gm_jax.create("wavenet_digits", **TINY)
    key = jax.random.key(5)
    x = model.sample(key, 2, digit=3, speaker="theo", seconds=0.005)
    assert x.shape == (2, 40) and x.dtype == jnp.float32 and float(jnp.abs(x).max()) <= 1.0
    np.testing.assert_array_equal(np.asarray(x), np.asarray(model.sample(key, 2, digit=[3, 3], speaker=[4, 4],
                                                                         seconds=0.005)))
    exp = model.experiment
    cond = exp.check_conditioning(2, digit=[1, 2], speaker="lucas", seconds=0.004)
    naive = exp.codes(model.params, key, 2, cond["digit"], cond["speaker"], cond["seconds"], sampler="naive")
    cached = exp.codes(model.params, key, 2, cond["digit"], cond["speaker"], cond["seconds"], sampler="cached")
    np.testing.assert_array_equal(np.asarray(naive), np.asarray(cached))
    # the marginal density over the 60 label pairs is normalised: sum over the 256 one-sample waveforms is 1
    levels = audio.mu_law_decode(np.arange(256))[:, None]
    lp = model.log_prob(levels)
    assert lp.shape == (256,)
    np.testing.assert_allclose(float(jax.scipy.special.logsumexp(lp)), 0.0, atol=1e-4)


def test_bad_conditioning_and_data():
    model = gm_jax.create("wavenet_digits", **TINY)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match=r"valid: \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\]"):
        model.sample(key, 1, digit=10)
    with pytest.raises(ValueError, match="0..9"):
        model.sample(key, 2, digit=[1, -1])
    with pytest.raises(ValueError, match="valid speakers: 0=george, 1=jackson"):
        model.sample(key, 1, speaker="alice")
    with pytest.raises(ValueError, match="valid speakers"):
        model.sample(key, 1, speaker=6)
    with pytest.raises(ValueError, match="num_samples = 3"):
        model.sample(key, 3, digit=[1, 2])
    with pytest.raises(ValueError, match="seconds"):
        model.sample(key, 1, seconds=0)
    with pytest.raises(ValueError, match="takes no conditioning"):
        model.sample(key, 1, labels=[1])
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        model.log_prob(np.full((1, 10), 1.5, np.float32))
    with pytest.raises(ValueError, match="float amplitudes"):
        model.log_prob(np.zeros((1, 10), np.int32))


def test_training_on_real_crops_lowers_the_loss(fsdd_dir):
    from gm_jax.training.loop import run_keys
    from gm_jax.training.steps import TrainStep

    exp = gm_jax.build("wavenet_digits", data_dir=str(fsdd_dir), crop_length=256, batch_size=4, num_steps=40,
                       learning_rate=1e-2, warmup_steps=1, **TINY)
    batch = exp.crops(0)
    assert batch["x"].shape == (4, 256) and batch["x"].dtype == np.int32 and batch["mask"].min() == 1
    # crops lie in the voiced part: few near-silent ones (measured over 50 batches)
    share = exp.silent_crop_share(50)
    assert share["silent_crop_share"] < 0.1 and share["silent_crops_checked"] == 200
    step = TrainStep(exp.update, "none")
    state = step.put_state(exp.init_state(run_keys(0)["init"]))
    held_out = exp.crops(10_000)
    before = float(exp.loss_fn(step.get_state(state).params, held_out, None)[0])
    for i in range(40):
        state, _ = step(state, exp.crops(i), jax.random.key(i))
    after = float(exp.loss_fn(step.get_state(state).params, held_out, None)[0])
    assert after < before - 0.3 * 256, (before, after)  # at least 0.3 nats per sample better
