"""The sentence VAE (gm_jax.models.sentence_vae, experiments/sentence_vae_shakespeare): annealing, character
dropout, an autoregressive decoder given z, the bounds, out-of-vocabulary lines and the sampler.

Tiny LSTMs and whole functions jitted (op-by-op dispatch is slow on XLA:CPU)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.api import Model
from gm_jax.data import lines as lines_data
from gm_jax.models import sentence_vae as svae

V, EOL, L = 12, 0, 16
MODEL = svae.SentenceVAE(vocab_size=V, hidden=8, latent_dim=3, embed_dim=4)


def _random_params(model, seed=0):
    """Parameters of `model` drawn in NumPy (normal, sd 0.5) on the shapes of its init: `init_params`'s
    orthogonal LSTM initialiser compiles for seconds on XLA:CPU, and these tests need no particular init."""
    shapes = jax.eval_shape(functools.partial(svae.init_params, model), jax.random.key(0))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(0, 0.5, s.shape), s.dtype), shapes)


@pytest.fixture(scope="module")
def params():
    return _random_params(MODEL)


def _lines(n, seed=0):
    """n random lines of ids 1..V-1, lengths 3..L-1, each ended by EOL and EOL-padded: int32 [n, L]."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, V, (n, L)).astype(np.int32)
    for row, length in zip(x, rng.integers(3, L, n)):
        row[length:] = EOL
    return jnp.asarray(x)


# -- KL annealing ---------------------------------------------------------------------------------------------
def test_kl_weight_schedules():
    steps = jnp.array([0, 25, 50, 75, 100, 150])
    lin = np.asarray(jax.vmap(lambda s: svae.kl_weight(s, "linear", 100))(steps))
    np.testing.assert_allclose(lin, [0, 0.25, 0.5, 0.75, 1, 1], atol=1e-6)
    sig = np.asarray(jax.vmap(lambda s: svae.kl_weight(s, "sigmoid", 100))(steps))
    np.testing.assert_allclose(sig[[0, 2, 4, 5]], [0, 0.5, 1, 1], atol=1e-6)
    assert 0 < sig[1] < 0.25 and 0.75 < sig[3] < 1  # logistic: slow start, slow finish
    assert float(svae.kl_weight(0, "none", 100)) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        svae.kl_weight(0, "cosine", 100)


def test_experiment_update_uses_the_configured_schedule(monkeypatch):
    """The train step weighs the KL by `kl_weight(state.step)` with the config's schedule and length (the
    loss is replaced by one that reports the weight it was given, so no LSTM is compiled)."""
    import gm_jax
    from flax.training.train_state import TrainState

    experiment = gm_jax.build("sentence_vae_shakespeare", config=_tiny_config(kl_anneal_steps=40))
    monkeypatch.setattr(experiment, "_loss", lambda p, b, k, beta=1.0: (p["w"].sum() * beta, {"beta": beta}))
    state = TrainState.create(apply_fn=None, params={"w": jnp.ones(3)}, tx=experiment.optimizer())
    batch = {"x": jnp.zeros((4, experiment.config.max_len), jnp.int32)}
    keys = jax.random.split(jax.random.key(1), 4)
    update = jax.jit(lambda state, step: experiment.update(state.replace(step=step), batch, keys)[1])
    for step, want in [(0, 0.0), (20, 0.5), (40, 1.0), (80, 1.0)]:
        metrics = update(state, jnp.int32(step))
        assert abs(float(metrics["beta"]) - want) < 1e-6 and float(metrics["kl_weight"]) == float(metrics["beta"])


def _tiny_config(**overrides):
    from experiments import sentence_vae_shakespeare as module

    c = module.get_test_config()
    c.update(progress_bar=False, **overrides)
    return c


# -- character dropout ---------------------------------------------------------------------------------------
def test_word_dropout_rate_and_positions():
    drop = np.asarray(jax.jit(lambda k: svae.word_dropout_mask(k, (4000, L), 0.3))(jax.random.key(2)))
    assert not drop[:, 0].any()  # BOS is always read
    assert abs(drop[:, 1:].mean() - 0.3) < 0.01  # 60,000 Bernoulli(0.3) draws: sd 0.0019
    assert not np.asarray(jax.jit(lambda k: svae.word_dropout_mask(k, (64, L), 0.0))(jax.random.key(2))).any()


def test_word_dropout_replaces_inputs_never_targets(params):
    x = _lines(8)
    drop = svae.word_dropout_mask(jax.random.key(3), x.shape, 0.5)
    inputs = svae.decoder_inputs(MODEL, x)
    dropped = svae.apply_word_dropout(MODEL, inputs, drop)
    np.testing.assert_array_equal(np.where(drop, MODEL.unk, inputs), dropped)
    assert (np.asarray(dropped[:, 0]) == MODEL.bos).all()
    z = jax.random.normal(jax.random.key(4), (8, 3))
    mask = svae.line_mask(x, EOL)

    @jax.jit
    def both(params):  # the loss's reconstruction term vs. the dropped inputs scored against the untouched x
        logits = svae.decoder_logits(MODEL, params, z, dropped)
        manual = (jax.nn.log_softmax(logits)[jnp.arange(8)[:, None], jnp.arange(L)[None], x] * mask).sum(-1)
        return svae.recon_log_prob(MODEL, params, z, x, mask, drop), manual, logits.shape

    got, manual, shape = both(params)
    np.testing.assert_allclose(got, manual, rtol=1e-5)
    assert shape[-1] == V  # UNK and BOS are inputs only: no target can be one


# -- the decoder is autoregressive given z --------------------------------------------------------------------
def test_decoder_is_autoregressive_given_z(params):
    x = _lines(4, seed=1)
    z = jax.random.normal(jax.random.key(5), (4, 3))
    s = 6  # change x_s: the logits predicting x_0..x_s must not move, those of x_{s+1} must
    x2 = x.at[:, s].set((x[:, s] % (V - 1)) + 1)
    f = jax.jit(lambda x: svae.decoder_logits(MODEL, params, z, svae.decoder_inputs(MODEL, x)))
    a, b = np.asarray(f(x)), np.asarray(f(x2))
    np.testing.assert_array_equal(a[:, : s + 1], b[:, : s + 1])
    assert np.abs(a[:, s + 1] - b[:, s + 1]).max() > 1e-6


def test_encoder_reads_the_line_up_to_its_first_eol(params):
    """q(z | x) is the encoder state after the line's first EOL (`lstm_scan` over every position, read at
    that one): equal to stepping the encoder through the line alone, and blind to what follows the EOL."""
    x = _lines(4, seed=2)
    mean, log_var = jax.jit(lambda x: svae.encode(MODEL, params, x, eol=EOL))(x)
    lengths = np.asarray(svae.line_mask(x, EOL).sum(1)).astype(int)
    for n, length in enumerate(lengths):
        carry = svae.zero_carry(MODEL, 1)
        for t in range(length):
            carry, _ = MODEL.apply({"params": params}, carry, x[n:n + 1, t], method=svae.SentenceVAE.encode_step)
        m, lv = MODEL.apply({"params": params}, carry[0][1], method=svae.SentenceVAE.posterior)
        np.testing.assert_allclose(mean[n], m[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(log_var[n], lv[0], rtol=1e-5, atol=1e-6)
    after = jnp.asarray(np.where(np.asarray(svae.line_mask(x, EOL)) > 0, x, (np.asarray(x) % (V - 1)) + 1))
    np.testing.assert_allclose(svae.encode(MODEL, params, after, eol=EOL)[0], mean, rtol=1e-5, atol=1e-6)


def test_sampler_follows_the_teacher_forced_decoder(params):
    """Greedy decoding from z gives, at every position up to EOL, the argmax of the teacher-forced logits."""
    z = jax.random.normal(jax.random.key(6), (6, 3))

    @jax.jit
    def run(params):
        x = svae.decode(MODEL, params, z, jax.random.key(0), L, EOL, greedy=True)
        return x, svae.decoder_logits(MODEL, params, z, svae.decoder_inputs(MODEL, x)).argmax(-1)

    x, best = map(np.asarray, run(params))
    mask = np.asarray(svae.line_mask(x, EOL)) > 0
    np.testing.assert_array_equal(x[mask], best[mask])


# -- the bounds --------------------------------------------------------------------------------------------
def test_bound_terms_and_iwae_tightens(params):
    x = _lines(512, seed=2)
    eps = jax.random.normal(jax.random.key(7), (512, 3))

    @jax.jit
    def run(params):  # the ELBO with one z and the IWAE bound with 20, per line
        return (svae.neg_elbo(MODEL, params, x, eps, EOL, beta=0.3),
                svae.iwae_log_prob(MODEL, params, x, jax.random.key(8), 20, EOL, chunk_size=20))

    out, iw20 = run(params)
    np.testing.assert_allclose(out["neg_elbo"], out["recon"] + out["kl"], rtol=1e-6)
    np.testing.assert_allclose(out["loss"], out["recon"] + 0.3 * out["kl"], rtol=1e-6)
    assert (np.asarray(out["kl"]) >= 0).all()
    np.testing.assert_array_equal(out["chars"], np.asarray(svae.line_mask(x, EOL)).sum(-1))
    assert float(iw20.mean()) > -float(out["neg_elbo"].mean())  # E[IWAE_20] >= E[IWAE_1] = E[ELBO]


def test_baseline_bound_is_exact():
    """latent=False: the same decoder with z = 0 and no encoder, an exact language model of lines."""
    lm = svae.SentenceVAE(vocab_size=V, hidden=8, latent_dim=3, embed_dim=4, latent=False)
    x = _lines(8, seed=3)

    p = _random_params(lm)
    assert "encoder" not in p

    @jax.jit
    def run(p):
        return svae.iwae_log_prob(lm, p, x, jax.random.key(0), 5, EOL), svae.neg_elbo(lm, p, x, None, EOL)

    lp, out = run(p)
    np.testing.assert_allclose(lp, -out["neg_elbo"], rtol=1e-6)
    assert (np.asarray(out["kl"]) == 0).all()


# -- input checks and the sampler of the experiment ------------------------------------------------------
def test_out_of_vocabulary_line_raises():
    import gm_jax

    experiment = gm_jax.build("sentence_vae_shakespeare", config=_tiny_config())
    x = experiment.check_data(["the king", "good sir"])
    assert x.shape == (2, experiment.config.max_len) and int(x[0, 8]) == experiment.eol
    model = Model(experiment, params=None)
    with pytest.raises(ValueError, match="'§'"):
        model.log_prob(["the king§ speaks"], key=jax.random.key(0))
    with pytest.raises(ValueError, match="§"):
        lines_data.encode_lines(experiment.vocab, ["ok", "bad §"], 16)
    with pytest.raises(ValueError, match="at most"):
        experiment.check_data(["x" * experiment.config.max_len])


def test_sampler_is_deterministic_per_key(params):
    f = jax.jit(lambda key: svae.sample(MODEL, params, key, 8, L, EOL))
    a, b, c = (np.asarray(f(jax.random.key(k))) for k in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert ((a >= 0) & (a < V)).all()
    mask = np.asarray(svae.line_mask(a, EOL)) > 0
    assert (a[~mask] == EOL).all()  # EOL padding after each line's end
