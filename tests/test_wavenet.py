"""WaveNet: causality, receptive field, naive == fast sampling, exact density, the experiment's checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax.data import audio
from gm_jax.models import wavenet

TINY = {"layers_per_block": 3, "num_blocks": 2, "residual_channels": 8, "skip_channels": 8, "cond_dim": 4}


@pytest.fixture(scope="module")
def tiny():
    model = wavenet.WaveNet(dilation_seq=wavenet.dilations(3, 2), residual_channels=8, skip_channels=8, cond_dim=4)
    return model, wavenet.init_params(model, jax.random.key(0))


def test_dilations_and_receptive_field_formula():
    assert wavenet.dilations(3, 2) == (1, 2, 4, 1, 2, 4)
    assert wavenet.receptive_field(wavenet.dilations(3, 2)) == 15
    assert wavenet.receptive_field(wavenet.dilations(9, 2)) == 1023  # the default config: 128 ms at 8 kHz
    assert wavenet.receptive_field(wavenet.dilations(10, 3)) == 3070
    with pytest.raises(ValueError):
        wavenet.dilations(0, 2)


def test_causal_and_receptive_field_by_gradients(tiny):
    """d logits_t / d x_s is non-zero exactly for s in [t - R, t - 1] (inputs: position s + 1 holds x_s)."""
    model, params = tiny
    r = wavenet.receptive_field(model.dilation_seq)
    length = 40
    onehot = jax.nn.one_hot(jax.random.randint(jax.random.key(1), (1, length), 0, 256), 256)
    lab = jnp.array([3]), jnp.array([2])
    for t in (5, 20, 39):
        grad = jax.grad(lambda v: model.apply({"params": params}, v, *lab)[0, t].sum())(onehot)
        support = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1) > 0)[0] - 1  # input position -> sample index
        expected = np.arange(max(t - r, -1), t)  # -1: the start symbol at position 0
        np.testing.assert_array_equal(support, expected)


def test_step_matches_full_stack(tiny):
    """Teacher-forced fast steps (queues) give the logits of the full convolutional pass."""
    model, params = tiny
    x = jax.random.randint(jax.random.key(2), (2, 30), 0, 256)
    digit, speaker = jnp.array([1, 9]), jnp.array([0, 5])
    inputs = wavenet.shift_inputs(x)
    full = model.apply({"params": params}, inputs, digit, speaker)
    cond = model.apply({"params": params}, digit, speaker, method=wavenet.WaveNet.cond_projections)
    queues = tuple(jnp.zeros((2, d, 8)) for d in model.dilation_seq)
    steps = []
    for t in range(30):
        logits, queues = model.apply({"params": params}, inputs[:, t], cond, queues, t, method=wavenet.WaveNet.step)
        steps.append(logits)
    np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-5)
    # the conditioning is used: another digit changes the logits
    other = model.apply({"params": params}, inputs, jnp.array([2, 9]), speaker)
    assert np.abs(np.asarray(other[0] - full[0])).max() > 1e-4


def test_naive_equals_fast_sampler(tiny):
    model, params = tiny
    digit, speaker = jnp.array([0, 7, 7]), jnp.array([1, 1, 4])
    naive = jax.jit(wavenet.sample_naive, static_argnums=(0, 5))
    fast = jax.jit(wavenet.sample_fast, static_argnums=(0, 5))
    a = np.asarray(naive(model, params, jax.random.key(3), digit, speaker, 50))
    b = np.asarray(fast(model, params, jax.random.key(3), digit, speaker, 50))
    assert a.shape == (3, 50) and a.dtype == np.int32
    np.testing.assert_array_equal(a, b)
    c = np.asarray(fast(model, params, jax.random.key(4), digit, speaker, 50))
    assert (c != b).mean() > 0.5  # another key gives other samples
    # sample t depends only on keys/samples before it: a longer run extends a shorter one
    np.testing.assert_array_equal(np.asarray(fast(model, params, jax.random.key(3), digit, speaker, 20)), b[:, :20])


def test_log_probs_normalised(tiny):
    """exp(log p(x | c)) sums to 1 over all 256^2 sequences of length 2."""
    model, params = tiny
    x = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1).reshape(-1, 2)
    lab = jnp.full((len(x),), 4, jnp.int32)
    lp = wavenet.log_probs(model, params, jnp.asarray(x), lab, lab % 6).sum(-1)
    np.testing.assert_allclose(float(jax.scipy.special.logsumexp(lp)), 0.0, atol=1e-4)


