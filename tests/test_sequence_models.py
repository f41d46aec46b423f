"""Sequence models: the GPT (autoregressive, exact log_prob through the KV-cached decode step) and the
RNN/LSTM (log_prob = sum of per-step conditionals, the carried-state sampler). The samplers' core and
cached == naive sampling: tests/test_sampling.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import rnn, transformer
from properties import assert_autoregressive

V = 11


# -- GPT -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["learned", "sinusoidal"])
def gpt(request):
    model = transformer.GPT(vocab_size=V, block_size=16, dim=32, num_layers=2, num_heads=4,
                            positions=request.param, query_block=5)  # blocks of 5, 5, 5 and 1 queries
    return model, transformer.init_params(model, jax.random.key(0))


def test_gpt_autoregressive(gpt):
    """p(x_t | .) (the logits of position t - 1) depends on tokens before t only (by the Jacobian, on one-hot
    inputs), and token t does matter from t on."""
    model, params = gpt
    x = jax.nn.one_hot(jax.random.randint(jax.random.key(1), (1, 16), 0, V), V)

    def next_token_logits(x):  # output t = logits of x_t (position 0: nothing is predicted)
        logits = model.apply({"params": params}, x)[0]
        return jnp.concatenate([jnp.zeros_like(logits[:, :1]), logits[:, :-1]], axis=1)

    assert_autoregressive(next_token_logits, x)
    tokens = jnp.argmax(x, -1)
    base = transformer.logits_fn(model, params, tokens)
    for t in (0, 5, 15):
        changed = transformer.logits_fn(model, params, tokens.at[:, t].set((tokens[:, t] + 1) % V))
        assert float(jnp.abs(changed[:, t:] - base[:, t:]).max()) > 1e-4


@pytest.mark.parametrize("t, query_block", [(13, 4), (8, 8), (8, 32), (1, 3)])
def test_causal_attention_in_query_blocks_equals_the_masked_form(t, query_block):
    """causal_attention (query blocks that skip the masked key blocks) = attention with the full causal
    mask, in values and in the gradients with respect to q, k and v (float32 rounding)."""
    q, k, v, g = (jax.random.normal(kk, (2, t, 3, 4)) for kk in jax.random.split(jax.random.key(3), 4))
    mask = jnp.tril(jnp.ones((t, t), bool))[None, None]

    def blocked(q, k, v):
        return transformer.causal_attention(q, k, v, query_block=query_block)

    def masked(q, k, v):
        return transformer.attention(q, k, v, mask)

    out_b, vjp_b = jax.vjp(blocked, q, k, v)
    out_m, vjp_m = jax.vjp(masked, q, k, v)
    np.testing.assert_allclose(out_b, out_m, rtol=1e-5, atol=1e-6)
    for gb, gm in zip(vjp_b(g), vjp_m(g)):
        np.testing.assert_allclose(gb, gm, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="query_block"):
        transformer.causal_attention(q, k, v, query_block=0)


def test_gpt_log_prob_is_sum_of_conditionals(gpt):
    """log_prob (one causal pass) = sum_t log p(x_t | x_<t), each conditional from the KV-cached decode
    step, which sees only the prefix; the decode logits also match the full forward pass."""
    model, params = gpt
    x = jax.random.randint(jax.random.key(2), (2, 16), 0, V)
    total = transformer.log_prob(model, params, x)
    full = transformer.logits_fn(model, params, x)
    decode = jax.jit(lambda tok, cache, t: model.apply({"params": params}, tok, cache, t,
                                                       method=transformer.GPT.decode))
    _, cache = model.apply({"params": params}, jnp.zeros((2, 16), jnp.int32))
    acc = jnp.zeros(2)
    for t in range(15):
        logits, cache = decode(x[:, t:t + 1], cache, t)
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-4, atol=1e-4)
        acc = acc + jax.nn.log_softmax(logits)[jnp.arange(2), x[:, t + 1]]
    np.testing.assert_allclose(total, acc, rtol=1e-5, atol=1e-4)


# -- RNN / LSTM --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_rnn_log_prob_is_sum_of_stepwise_conditionals(cell):
    model = rnn.RNN(out_dim=V, hidden=16, num_layers=2, cell=cell, vocab_size=V, embed_dim=8)
    params = rnn.init_params(model, jax.random.key(0))
    x = jax.random.randint(jax.random.key(1), (3, 9), 0, V)
    total = rnn.log_prob(model, params, x)
    carry, acc = rnn.init_carry(model, 3), jnp.zeros(3)
    step = jax.jit(lambda c, tok: model.apply({"params": params}, c, tok))
    for t in range(8):  # carry the state one step at a time
        carry, logits = step(carry, x[:, t])
        acc = acc + jax.nn.log_softmax(logits)[jnp.arange(3), x[:, t + 1]]
    np.testing.assert_allclose(total, acc, rtol=1e-5, atol=1e-5)
    # sampling reads the prompt through the state and keeps it; same key, same tokens
    prompt = x[:, :4]
    a = rnn.sample_cached(model, params, jax.random.key(5), prompt, 6)
    b = jax.jit(rnn.sample_cached, static_argnums=(0, 4))(model, params, jax.random.key(5), prompt, 6)
    assert a.shape == (3, 10)
    np.testing.assert_array_equal(np.asarray(a[:, :4]), np.asarray(prompt))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_rnn_run_refuses_a_carry_of_another_depth():
    model = rnn.RNN(out_dim=V, hidden=8, num_layers=2, vocab_size=V, embed_dim=4)
    params = rnn.init_params(model, jax.random.key(0))
    with pytest.raises(ValueError, match="num_layers=2"):
        rnn.run(model, params, jnp.zeros((2, 3), jnp.int32), rnn.init_carry(model, 2)[:1])


def test_rnn_bernoulli_log_probs():
    model = rnn.RNN(out_dim=5, hidden=8, cell="lstm")
    params = rnn.init_params(model, jax.random.key(0), input_dim=5)
    v = jax.random.bernoulli(jax.random.key(1), 0.3, (2, 6, 5)).astype(jnp.float32)
    lp = rnn.bernoulli_log_probs(model, params, v[:, :-1], v[:, 1:])
    logits, _ = rnn.run(model, params, v[:, :-1])
    p = jax.nn.sigmoid(logits)
    expect = jnp.sum(v[:, 1:] * jnp.log(p) + (1 - v[:, 1:]) * jnp.log1p(-p), -1)
    np.testing.assert_allclose(lp, expect, rtol=1e-5, atol=1e-5)
    frames = rnn.sample_cached(model, params, jax.random.key(2), v[:, :2], 4, event="bernoulli")
    assert frames.shape == (2, 6, 5) and frames.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(frames[:, :2]), np.asarray(v[:, :2], np.uint8))


def test_rnn_runs_in_float64():
    """Under `jax.enable_x64` with float64 parameters the carried state follows them (`init_carry` was float32,
    so `lax.scan` refused the float64 state the cells return): `lstm_jsb`'s log_prob, loss gradient and sampler
    and a token LSTM's log-probabilities run in float64 and agree with float32."""
    from experiments import lstm_jsb

    def random_params(init, *args):  # the parameters' shapes without compiling the init (test time)
        rng = np.random.default_rng(0)
        return jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.3, s.shape), s.dtype), jax.eval_shape(init, *args))

    exp = lstm_jsb.Experiment(lstm_jsb.get_test_config())
    params = random_params(exp.init_params, jax.random.key(0))
    tokens = rnn.RNN(out_dim=V, hidden=8, cell="lstm", vocab_size=V, embed_dim=4)
    tparams = random_params(functools.partial(rnn.init_params, tokens), jax.random.key(1))
    rolls = jax.random.bernoulli(jax.random.key(2), 0.2, (2, 5, 88)).astype(jnp.uint8)
    x = jax.random.randint(jax.random.key(3), (2, 6), 0, V)

    def loss(params):
        return exp.loss_fn(params, {"x": rolls, "mask": jnp.ones((2, 5))}, None)[0]

    def scores(params, tparams):
        return (exp.log_prob(params, rolls), jax.grad(loss)(params), exp.sample(params, jax.random.key(4), 2, 3),
                rnn.log_prob(tokens, tparams, x))

    ref = jax.jit(exp.log_prob)(params, rolls)
    with jax.enable_x64(True):
        to64 = functools.partial(jax.tree.map, lambda a: a.astype(jnp.float64))
        assert rnn.compute_dtype(to64(params)) == jnp.float64 and rnn.compute_dtype(params) == jnp.float32
        lp, grads, sample, token_lp = jax.jit(scores)(to64(params), to64(tparams))
    assert lp.dtype == token_lp.dtype == jnp.float64 and np.all(np.isfinite(token_lp))
    np.testing.assert_allclose(lp, ref, rtol=1e-5)
    assert all(g.dtype == jnp.float64 for g in jax.tree.leaves(grads))
    assert sample.shape == (2, 3, 88) and sample.dtype == jnp.uint8
