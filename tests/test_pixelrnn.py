"""PixelRNN (Row LSTM, Diagonal BiLSTM): autoregressive property and the exact receptive field of each variant,
exact normalisation, cached step == full pass and cached sampler == naive sampler, bad inputs."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax.models import pixelcnn as pc
from gm_jax.models import pixelrnn as pr
from properties import assert_autoregressive, assert_cached_equals_naive, random_params

H, W = 5, 6  # non-square, so rows and columns cannot be confused


def _tiny(cls, shape=(H, W, 1), **kw):
    return cls(image_shape=shape, **{"features": 4, "num_layers": 2, "first_kernel": 3, "output_features": 8, **kw})


def _jacobian_support(fn, shape, num_inputs=3):
    """Boolean [D_out, D_in]: d out_i / d x_j != 0 for some of `num_inputs` random inputs (raster order)."""
    n, d = num_inputs, int(np.prod(shape))
    x = jax.random.uniform(jax.random.key(100), (n, *shape))
    jac = np.asarray(jax.jit(jax.jacfwd(lambda x: fn(x).reshape(n, -1)))(x)).reshape(n, -1, n, d)
    return (jac[np.arange(n), :, np.arange(n)] != 0).any(0)


# -- the expected receptive fields, composed from each layer's connections ---------------------------------

def _positions(h, w):
    return list(itertools.product(range(h), range(w)))


def _matrix(h, w, deps):
    """Boolean [HW, HW] from deps(r, c) -> iterable of (r', c') (clipped to the image)."""
    m = np.zeros((h * w, h * w), bool)
    for r, c in _positions(h, w):
        for rr, cc in deps(r, c):
            if 0 <= rr < h and 0 <= cc < w:
                m[r * w + c, rr * w + cc] = True
    return m


def _closure(h, w, own, *recur):
    """The dependency sets S(r, c) = own(r, c) | union of S at the offsets `recur` (a recurrence whose offsets
    point to earlier positions in the scan order), computed to a fixed point."""
    s = {(r, c): set(own(r, c)) for r, c in _positions(h, w)}
    changed = True
    while changed:
        changed = False
        for r, c in _positions(h, w):
            for dr, dc in recur:
                nb = (r + dr, c + dc)
                if nb in s and not s[nb] <= s[(r, c)]:
                    s[(r, c)] |= s[nb]
                    changed = True
    return s


def _first_layer(h, w, k):
    p = k // 2
    return _matrix(h, w, lambda r, c: [(r - a, c + b) for a in range(1, p + 1) for b in range(-p, p + 1)]
                   + [(r, c - b) for b in range(1, p + 1)])  # mask A


def _row_lstm_layer(h, w, k):
    q = k // 2
    states = _closure(h, w, lambda r, c: [(r, c - b) for b in range(q + 1)],  # 1 x k mask B input-to-state
                      *[(-1, d) for d in range(-q, q + 1)])  # width-k state-to-state over the previous row
    return _matrix(h, w, lambda r, c: states[(r, c)] | {(r, c)})  # | the residual connection


def _diagonal_bilstm_layer(h, w):
    l2r = _closure(h, w, lambda r, c: [(r, c)], (-1, 0), (0, -1))
    r2l = _closure(h, w, lambda r, c: [(r, c)], (-1, 0), (0, 1))
    return _matrix(h, w, lambda r, c: l2r[(r, c)] | r2l.get((r - 1, c), set()) | {(r, c)})  # r2l shifted down


def _compose(first, layer, num_layers):
    m = first
    for _ in range(num_layers):
        m = (layer.astype(int) @ m.astype(int)) > 0
    return m


def _support(model, params):
    return _jacobian_support(lambda x: model.apply({"params": params}, x)[..., 0, 0], model.image_shape)


def _raster(model, params):
    h, w, _ = model.image_shape
    return lambda x: model.apply({"params": params}, x.reshape(1, h, w, 1)).reshape(1, h * w, -1)


def test_row_lstm_autoregressive_with_triangular_field():
    """Causal, and it sees exactly its composed receptive field: the triangle above (widening by k // 2
    columns per row) plus the row so far; pixels far above-right are not seen after 2 layers."""
    model = _tiny(pr.RowLSTMPixelRNN)
    params = random_params(model, jnp.zeros((1, H, W, 1)))
    assert_autoregressive(_raster(model, params), jax.random.uniform(jax.random.key(1), (1, H * W)))
    support = _support(model, params)
    expected = _compose(_first_layer(H, W, 3), _row_lstm_layer(H, W, 3), 2)
    np.testing.assert_array_equal(support, expected)
    lower = np.tril(np.ones_like(support), -1)
    i = 4 * W + 0  # pixel (4, 0) sees the triangle above it ...
    assert support[i, 3 * W + 1] and support[i, 2 * W + 2] and support[i, 3 * W + 0]
    assert not support[i, 3 * W + 5] and not support[i, 2 * W + 5]  # ... but not the far right of the rows above
    assert (lower & ~support).any()


def test_diagonal_bilstm_autoregressive_with_full_field():
    """Causal, and it sees exactly every earlier pixel except, for c + first_kernel // 2 < W - 1, the last pixel
    of the row above (r - 1, W - 1): the hidden states of row r - 1 cannot see it (causality) and only the first
    layer's mask-A kernel reaches row r - 1 from row r. Also equal to the composed receptive field."""
    model = _tiny(pr.DiagonalBiLSTMPixelRNN)
    params = random_params(model, jnp.zeros((1, H, W, 1)))
    assert_autoregressive(_raster(model, params), jax.random.uniform(jax.random.key(1), (1, H * W)))
    support = _support(model, params)
    np.testing.assert_array_equal(support, _compose(_first_layer(H, W, 3), _diagonal_bilstm_layer(H, W), 2))
    expected = np.tril(np.ones((H * W, H * W), bool), -1)
    for r, c in _positions(H, W):
        if r > 0 and c + 1 < W - 1:
            expected[r * W + c, (r - 1) * W + W - 1] = False
    np.testing.assert_array_equal(support, expected)
    # with a first kernel wide enough to reach the end of the row above, the field is complete
    wide = _tiny(pr.DiagonalBiLSTMPixelRNN, num_layers=1, first_kernel=2 * W - 1)
    support = _support(wide, random_params(wide, jnp.zeros((1, H, W, 1))))
    np.testing.assert_array_equal(support, np.tril(np.ones((H * W, H * W), bool), -1))


def test_diagonal_lstm_directions_batched_equal_one_at_a_time():
    """The Diagonal BiLSTM runs its two directions in one scan (a leading direction axis, one batched matmul per
    column): values and gradients equal to each direction's own scan."""
    keys = jax.random.split(jax.random.key(0), 2)
    pre = jax.random.normal(keys[0], (2, 3, 5, 4, 4 * 3))  # [D, N, H, W, 4h]
    kernel = 0.3 * jax.random.normal(keys[1], (2, 2 * 3, 4 * 3))
    weights = jax.random.normal(jax.random.key(1), (2, 3, 5, 4, 3))
    loss = lambda lstm: lambda p, k: jnp.sum(weights * lstm(p, k))  # noqa: E731
    one_at_a_time = lambda p, k: jnp.concatenate([pr.diagonal_lstm(p[i:i + 1], k[i:i + 1]) for i in range(2)])  # noqa: E731
    np.testing.assert_allclose(pr.diagonal_lstm(pre, kernel), one_at_a_time(pre, kernel), rtol=1e-6, atol=1e-6)
    batched = jax.grad(loss(pr.diagonal_lstm), argnums=(0, 1))(pre, kernel)
    separate = jax.grad(loss(one_at_a_time), argnums=(0, 1))(pre, kernel)
    for a, b in zip(batched, separate):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(batched[1][0] - batched[1][1]).max()) > 1e-3  # each kernel gets its own gradient


@pytest.mark.parametrize("cls", [pr.RowLSTMPixelRNN, pr.DiagonalBiLSTMPixelRNN])
def test_binary_log_prob_is_normalised(cls):
    """sum over all 2^9 binary 3x3 images of p(x) = 1 (exact likelihood)."""
    model = _tiny(cls, shape=(3, 3, 1))
    x = jnp.array(list(itertools.product([0, 1], repeat=9)), jnp.int32).reshape(512, 3, 3, 1)
    params = random_params(model, x[:1])
    lp = pc.log_prob(model, params, x)
    np.testing.assert_allclose(float(jnp.exp(lp).sum()), 1.0, rtol=1e-5)
    per_pixel = pc.log_prob_per_pixel(model, params, x)
    np.testing.assert_allclose(np.asarray(per_pixel.sum((1, 2, 3))), np.asarray(lp), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_values", [2, 256])
@pytest.mark.parametrize("cls", [pr.RowLSTMPixelRNN, pr.DiagonalBiLSTMPixelRNN])
def test_cached_step_equals_full_pass(cls, num_values):
    """The cached `step`, run over every pixel of given images, gives the full pass's logits of every pixel."""
    model = _tiny(cls, num_values=num_values)
    x = jax.random.randint(jax.random.key(2), (2, H, W, 1), 0, num_values)
    params = random_params(model, x[:1])

    def steps(x):
        cache = model.apply({"params": params}, 2, method=cls.init_cache)

        def body(cache, i):
            logits, cache = model.apply({"params": params}, cache, x.reshape(2, -1), i, method=cls.step)
            return cache, logits

        return jnp.moveaxis(jax.lax.scan(body, cache, jnp.arange(H * W))[1], 0, 1)  # [N, HW, ...]

    full = model.apply({"params": params}, x).reshape(2, H * W, -1)
    full = full[..., 0] if num_values == 2 else full
    np.testing.assert_allclose(np.asarray(jax.jit(steps)(x)), np.asarray(full), atol=1e-5)


@pytest.mark.parametrize("cls", [pr.RowLSTMPixelRNN, pr.DiagonalBiLSTMPixelRNN])
def test_cached_sampler_equals_naive(cls):
    model = _tiny(cls)
    params = random_params(model, jnp.zeros((1, H, W, 1), jnp.int32))
    naive = jax.jit(lambda k: pr.sample_naive(model, params, k, 4))
    cached = jax.jit(lambda k: pr.sample_cached(model, params, k, 4))
    x = assert_cached_equals_naive(naive, cached, jax.random.key(5))
    assert x.dtype == np.uint8 and x.shape == (4, H, W, 1)
    assert 0.1 < x.mean() < 0.9  # mixed 0s and 1s: the equality is not trivial
    assert not (np.asarray(cached(jax.random.key(6))) == x).all()


def test_bad_inputs_raise():
    model = _tiny(pr.DiagonalBiLSTMPixelRNN, shape=(4, 4, 1))
    params = random_params(model, jnp.zeros((1, 4, 4, 1), jnp.int32))
    for bad in (np.full((1, 4, 4, 1), 2), np.full((1, 4, 4, 1), -1), np.full((1, 4, 4, 1), 0.5),
                np.zeros((1, 4, 5, 1), np.int32), np.zeros((4, 4, 1), np.int32)):
        with pytest.raises(ValueError, match="pixel"):
            pc.log_prob(model, params, bad)
    with pytest.raises(ValueError, match="labels"):
        pr.sample_cached(model, params, jax.random.key(0), 2, labels=jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match="grey"):
        _tiny(pr.RowLSTMPixelRNN, shape=(4, 4, 3)).init(jax.random.key(0), jnp.zeros((1, 4, 4, 3), jnp.int32))
    with pytest.raises(ValueError, match="odd"):
        _tiny(pr.RowLSTMPixelRNN, kernel_size=2).init(jax.random.key(0), jnp.zeros((1, H, W, 1), jnp.int32))
    with pytest.raises(TypeError):
        pr.sample_cached(pc.PixelCNN(image_shape=(4, 4, 1)), None, jax.random.key(0), 2)


@pytest.mark.parametrize("name", ["pixelrnn_row_mnist", "pixelrnn_diag_mnist"])
def test_experiment_uses_pixelrnn_samplers_and_checks_data(name):
    experiment = gm_jax.build(name, data_dir="synthetic", features=4, num_layers=1, first_kernel=3,
                              output_features=4)
    assert experiment.samplers() == {"naive": pr.sample_naive, "cached": pr.sample_cached}
    for bad in (np.full((1, 28, 28, 1), 2), np.full((1, 28, 28, 1), 0.5), np.zeros((1, 27, 28, 1), np.int32)):
        with pytest.raises(ValueError):
            experiment.check_data(bad)
