"""Sequence models: samplers (temperature / top-k / top-p), the GPT (causal masking, cached == uncached
sampling, exact log_prob), the RNN/LSTM (log_prob = sum of per-step conditionals, carried state), and
the text experiments' input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax import sampling
from gm_jax.models import rnn, transformer

V = 11


# -- generic sampling ----------------------------------------------------------------------------
def test_filter_logits_top_k_top_p_temperature():
    logits = jnp.log(jnp.array([[0.05, 0.4, 0.1, 0.3, 0.15]]))
    kept = lambda x: np.isfinite(np.asarray(x))[0]  # noqa: E731
    np.testing.assert_array_equal(kept(sampling.filter_logits(logits, top_k=2)), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(kept(sampling.filter_logits(logits, top_k=0)), [1, 1, 1, 1, 1])
    # nucleus: 0.4 + 0.3 = 0.7 < 0.75, so 0.15 is needed too
    np.testing.assert_array_equal(kept(sampling.filter_logits(logits, top_p=0.75)), [0, 1, 0, 1, 1])
    np.testing.assert_array_equal(kept(sampling.filter_logits(logits, top_p=0.7)), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(kept(sampling.filter_logits(logits, top_p=0.01)), [0, 1, 0, 0, 0])
    np.testing.assert_allclose(sampling.filter_logits(logits, temperature=0.5), logits * 2, rtol=1e-6)
    # traced arguments under jit
    f = jax.jit(sampling.filter_logits)
    np.testing.assert_array_equal(kept(f(logits, 1.0, 3, 1.0)), [0, 1, 0, 1, 1])
    draws = jax.vmap(lambda k: sampling.sample_logits(k, logits[0], top_k=1))(jax.random.split(jax.random.key(0), 50))
    assert set(np.asarray(draws).tolist()) == {1}


def test_sample_logits_frequencies():
    p = np.array([0.1, 0.6, 0.3])
    draws = sampling.sample_logits(jax.random.key(1), jnp.log(jnp.broadcast_to(p, (20000, 3))))
    np.testing.assert_allclose(np.bincount(np.asarray(draws), minlength=3) / 20000, p, atol=0.015)


@pytest.mark.parametrize("bad", [dict(length=0), dict(length=-3), dict(temperature=0.0), dict(temperature=-1.0),
                                 dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5), dict(length=2.5)])
def test_check_sampling_args(bad):
    args = {"length": 4, "temperature": 1.0, "top_k": 0, "top_p": 1.0, **bad}
    with pytest.raises(ValueError):
        sampling.check_sampling_args(**args)


# -- GPT -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["learned", "sinusoidal"])
def gpt(request):
    model = transformer.GPT(vocab_size=V, block_size=16, dim=32, num_layers=2, num_heads=4,
                            positions=request.param)
    return model, transformer.init_params(model, jax.random.key(0))


def test_gpt_causal_masking(gpt):
    model, params = gpt
    x = jax.random.randint(jax.random.key(1), (3, 16), 0, V)
    base = transformer.logits_fn(model, params, x)
    for t in (0, 5, 15):
        changed = transformer.logits_fn(model, params, x.at[:, t].set((x[:, t] + 1) % V))
        np.testing.assert_array_equal(np.asarray(changed[:, :t]), np.asarray(base[:, :t]))
        assert float(jnp.abs(changed[:, t:] - base[:, t:]).max()) > 1e-4  # and token t does matter from t on


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


@pytest.mark.parametrize("length,kw", [(10, {}), (40, dict(temperature=0.8, top_k=5)), (30, dict(top_p=0.9))])
def test_gpt_cached_equals_uncached(gpt, length, kw):
    # length 40 from a 3-token prompt exceeds block_size 16: the context restarts, in both samplers alike
    model, params = gpt
    prompt = jnp.array([[1, 2, 3], [4, 5, 6]], jnp.int32)
    key = jax.random.key(7)
    cached = transformer.sample_cached(model, params, key, prompt, length, **kw)
    uncached = transformer.sample_uncached(model, params, key, prompt, length, **kw)
    assert cached.shape == (2, 3 + length)
    np.testing.assert_array_equal(np.asarray(cached[:, :3]), np.asarray(prompt))
    np.testing.assert_array_equal(np.asarray(cached), np.asarray(uncached))
    other = transformer.sample_cached(model, params, jax.random.key(8), prompt, length, **kw)
    assert not np.array_equal(np.asarray(other), np.asarray(cached))


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
    a = rnn.sample_tokens(model, params, jax.random.key(5), prompt, 6)
    b = jax.jit(rnn.sample_tokens, static_argnums=(0, 4))(model, params, jax.random.key(5), prompt, 6)
    assert a.shape == (3, 10)
    np.testing.assert_array_equal(np.asarray(a[:, :4]), np.asarray(prompt))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_rnn_bernoulli_log_probs():
    model = rnn.RNN(out_dim=5, hidden=8, cell="lstm")
    params = rnn.init_params(model, jax.random.key(0), input_dim=5)
    v = jax.random.bernoulli(jax.random.key(1), 0.3, (2, 6, 5)).astype(jnp.float32)
    lp = rnn.bernoulli_log_probs(model, params, v[:, :-1], v[:, 1:])
    logits, _ = rnn.run(model, params, v[:, :-1])
    p = jax.nn.sigmoid(logits)
    expect = jnp.sum(v[:, 1:] * jnp.log(p) + (1 - v[:, 1:]) * jnp.log1p(-p), -1)
    np.testing.assert_allclose(lp, expect, rtol=1e-5, atol=1e-5)
    frames = rnn.sample_bernoulli(model, params, jax.random.key(2), v[:, :2], 4)
    assert frames.shape == (2, 6, 5) and frames.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(frames[:, :2]), np.asarray(v[:, :2], np.uint8))




