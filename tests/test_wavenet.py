"""WaveNet: autoregressive property and receptive field, the cached step against the full stack, exact
density. Cached == naive sampling: tests/test_sampling.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import wavenet
from properties import assert_autoregressive



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


def test_dilated_causal_conv_equals_dense_on_shifted_input():
    """The whole-sequence form (one matmul with [W_0 | W_1], the W_0 half shifted by d) equals the kernel-2
    dilated convolution written as a Dense layer on [h[t - d]; h[t]] with zeros before the start and at
    masked positions: values and gradients (parameters and input)."""
    h = jax.random.normal(jax.random.key(3), (2, 11, 3))
    mask = (jax.random.uniform(jax.random.key(4), (2, 11, 1)) > 0.3).astype(jnp.float32)
    conv = wavenet.DilatedCausalConv(4, dilation=3)
    params = conv.init(jax.random.key(5), h)["params"]
    assert jax.tree_util.tree_map(jnp.shape, params) == {"kernel": (6, 4), "bias": (4,)}

    def reference(params, h):
        past = jnp.pad(h * mask, ((0, 0), (3, 0), (0, 0)))[:, :11]
        return jnp.concatenate([past, h], -1) @ params["kernel"] + params["bias"]

    def fast(params, h):
        return conv.apply({"params": params}, h, mask=mask)

    np.testing.assert_allclose(fast(params, h), reference(params, h), rtol=1e-5, atol=1e-6)
    w = jax.random.normal(jax.random.key(6), (2, 11, 4))
    grads = [jax.grad(lambda p, x, f=f: (f(p, x) * w).sum(), argnums=(0, 1))(params, h) for f in (fast, reference)]
    for a, b in zip(jax.tree_util.tree_leaves(grads[0]), jax.tree_util.tree_leaves(grads[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    one = conv.apply({"params": params}, h[:, 7], h_prev=h[:, 4] * mask[:, 4])  # one position: t = 7, t - d = 4
    np.testing.assert_allclose(one, reference(params, h)[:, 7], rtol=1e-5, atol=1e-6)


def test_autoregressive_and_receptive_field(tiny):
    """logits_t depend on x_<t only (`assert_autoregressive`, on one-hot samples), and on every one of
    x_{t-R} .. x_{t-1} (d logits_t / d x_s non-zero exactly for s in [t - R, t - 1])."""
    model, params = tiny
    r = wavenet.receptive_field(model.dilation_seq)
    length = 40
    x = jax.nn.one_hot(jax.random.randint(jax.random.key(1), (1, length), 0, 256), 256)
    lab = jnp.array([3]), jnp.array([2])
    start = jax.nn.one_hot(jnp.full((1, 1), wavenet.START_CLASS), 256)

    def logits_of_samples(x):  # network inputs: position t holds x_{t-1} (position 0 the start class)
        return model.apply({"params": params}, jnp.concatenate([start, x[:, :-1]], axis=1), *lab)

    assert_autoregressive(logits_of_samples, x)
    for t in (5, 20, 39):
        grad = jax.grad(lambda v: logits_of_samples(v)[0, t].sum())(x)
        support = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1) > 0)[0]
        np.testing.assert_array_equal(support, np.arange(max(t - r, 0), t))


def test_step_matches_full_stack(tiny):
    """Teacher-forced cached steps (queues) give the logits of the full convolutional pass."""
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


def test_log_probs_normalised(tiny):
    """exp(log p(x | c)) sums to 1 over all 256^2 sequences of length 2."""
    model, params = tiny
    x = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1).reshape(-1, 2)
    lab = jnp.full((len(x),), 4, jnp.int32)
    lp = wavenet.log_probs(model, params, jnp.asarray(x), lab, lab % 6).sum(-1)
    np.testing.assert_allclose(float(jax.scipy.special.logsumexp(lp)), 0.0, atol=1e-4)
