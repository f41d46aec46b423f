"""PixelCNN, Gated PixelCNN and PixelCNN++: autoregressive property (`assert_autoregressive`) and the
receptive field (blind spot or none), exact normalisation, samplers' range and bad inputs. Cached == naive
sampling: tests/test_sampling.py."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import pixelcnn as pc
from gm_jax.models import pixelcnn_pp as pp
from properties import assert_autoregressive, random_params


def _jacobian_support(fn, shape, num_inputs=3):
    """Boolean [D_out, D_in]: d out_i / d x_j != 0 for some of `num_inputs` random inputs (raster order)."""
    n, d = num_inputs, int(np.prod(shape))
    x = jax.random.uniform(jax.random.key(100), (n, *shape))
    jac = np.asarray(jax.jit(jax.jacfwd(lambda x: fn(x).reshape(n, -1)))(x)).reshape(n, -1, n, d)  # jitted: eager took ~20 s for PixelCNN++
    return (jac[np.arange(n), :, np.arange(n)] != 0).any(0)


def _raster(model, params, labels=None, scale=1.0, per_pixel=False):
    """The network as `assert_autoregressive` takes it: float inputs [1, L] (L = H * W * C sub-pixels in
    raster order, or [1, H * W, C] pixels with `per_pixel`) -> outputs [1, L, ...] in the same order."""
    h, w, c = model.image_shape

    def fn(x):
        out = model.apply({"params": params}, x.reshape(1, h, w, c) * scale, labels)
        return out.reshape(1, h * w if per_pixel else h * w * c, -1)

    return fn


def _sees_every_earlier_position(support):
    """No blind spot: every (i, j < i) entry of the Jacobian support is non-zero."""
    lower = np.tril(np.ones_like(support), -1)
    missing = lower & ~support
    assert not missing.any(), f"blind spot: {int(missing.sum())} (i, j < i) pairs the model should see are zero"


def _pixelcnn_visible(h, w, first_kernel, num_layers):
    """Inputs a stacked masked-conv PixelCNN sees (with its blind spot), by composing the masks."""
    p = first_kernel // 2
    offsets = {(dr, dc) for dr in range(-p, 0) for dc in range(-p, p + 1)} | {(0, dc) for dc in range(-p, 0)}
    b3 = {(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0)}
    for _ in range(num_layers):
        offsets = {(a + c, b + d) for (a, b) in offsets for (c, d) in b3}
    vis = np.zeros((h * w, h * w), bool)
    for r, c in itertools.product(range(h), range(w)):
        for dr, dc in offsets:
            if 0 <= r + dr < h and 0 <= c + dc < w:
                vis[r * w + c, (r + dr) * w + c + dc] = True
    return vis


def test_pixelcnn_autoregressive_with_its_blind_spot():
    """Causal (`assert_autoregressive`), and it sees exactly the composed receptive field of its masks:
    the blind spot that the gated model removes."""
    model = pc.PixelCNN(image_shape=(8, 8, 1), features=16, num_layers=2, first_kernel=5, output_features=16)
    params = random_params(model, jnp.zeros((1, 8, 8, 1)))
    x = jax.random.uniform(jax.random.key(100), (1, 64))
    assert_autoregressive(_raster(model, params), x)
    support = _jacobian_support(lambda x: model.apply({"params": params}, x)[..., 0], (8, 8, 1))
    visible = _pixelcnn_visible(8, 8, 5, 2)
    np.testing.assert_array_equal(support, visible)  # exactly the composed receptive field
    lower = np.tril(np.ones_like(visible), -1)
    assert (lower & ~visible).any()  # the blind spot that the gated model removes


def test_pixelcnn_per_channel_masks_rgb():
    """Sub-pixel order R, G, B within a pixel: the 256-way logits of channel k see channels < k only."""
    model = pc.PixelCNN(image_shape=(5, 5, 3), num_values=256, features=24, num_layers=2, first_kernel=3,
                        output_features=48)  # wide enough that no relu path is dead at every input
    params = random_params(model, jnp.zeros((1, 5, 5, 3)))
    assert_autoregressive(_raster(model, params), jax.random.uniform(jax.random.key(100), (1, 75)) * 255.0)
    support = _jacobian_support(lambda x: model.apply({"params": params}, x)[..., 3], (5, 5, 3))
    i = (2 * 5 + 2) * 3  # pixel (2, 2)
    assert support[i + 1, i] and support[i + 2, i] and support[i + 2, i + 1]  # G <- R, B <- R, G
    assert support[i, i - 3] and support[i, i - 1]  # R <- left pixel's R and B


def test_gated_pixelcnn_autoregressive_without_blind_spot():
    model = pc.GatedPixelCNN(image_shape=(8, 8, 1), features=8, num_layers=3, kernel_size=5, num_classes=3,
                             output_features=8)
    labels = jnp.array([1])
    params = random_params(model, jnp.zeros((1, 8, 8, 1)), labels)
    assert_autoregressive(_raster(model, params, labels), jax.random.uniform(jax.random.key(100), (1, 64)))
    support = _jacobian_support(lambda x: model.apply({"params": params}, x, labels)[..., 0, 0], (8, 8, 1))
    _sees_every_earlier_position(support)


@pytest.mark.parametrize("num_layers,kernel_size", [(1, 3), (2, 5)])
def test_gated_pixelcnn_rows_above(num_layers, kernel_size):
    """The last row's logits see exactly the `rows_above` rows above it (measured by the Jacobian support)."""
    h, w = 14, 3
    model = pc.GatedPixelCNN(image_shape=(h, w, 1), features=4, num_layers=num_layers, kernel_size=kernel_size,
                             output_features=4)
    params = random_params(model, jnp.zeros((1, h, w, 1)))
    support = _jacobian_support(lambda x: model.apply({"params": params}, x)[..., 0, 0], (h, w, 1))
    seen_rows = np.flatnonzero(support[(h - 1) * w:].any(0).reshape(h, w).any(1))
    assert model.rows_above < h - 1
    np.testing.assert_array_equal(seen_rows, np.arange(h - 1 - model.rows_above, h))


def test_pixelcnn_pp_autoregressive_without_blind_spot():
    """The mixture parameters of pixel i see pixels < i only (with C = 3 the channels of a pixel couple inside
    the mixture, so causality is pixel-level), and every earlier pixel. One random input suffices for the
    second half: concat_elu and the gates are smooth, so no path is dead."""
    for c, f in ((1, 8), (3, 6)):
        model = pp.PixelCNNPP(image_shape=(4, 4, c), features=f, num_resnet=1, num_mixtures=2)  # 4 -> 2 -> 1
        params = random_params(model, jnp.zeros((1, 4, 4, c)))
        fn = _raster(model, params, scale=255.0, per_pixel=True)
        x = jax.random.uniform(jax.random.key(100), (1, 16, c))
        assert_autoregressive(fn, x)
        jac = np.asarray(jax.jit(jax.jacfwd(lambda x: fn(x).sum(-1)))(x))  # [1, 16, 1, 16, C]
        _sees_every_earlier_position((jac[0, :, 0] != 0).any(-1))


@pytest.mark.parametrize("kind", ["pixelcnn", "gated"])
def test_binary_log_prob_is_normalised(kind):
    """sum over all 2^9 binary 3x3 images of p(x) = 1 (exact likelihood)."""
    if kind == "pixelcnn":
        model, labels = pc.PixelCNN(image_shape=(3, 3, 1), features=4, num_layers=1, first_kernel=3,
                                    output_features=4), None
    else:
        model, labels = pc.GatedPixelCNN(image_shape=(3, 3, 1), features=4, num_layers=2, kernel_size=3,
                                         num_classes=2, output_features=4), jnp.ones((512,), jnp.int32)
    x = jnp.array(list(itertools.product([0, 1], repeat=9)), jnp.int32).reshape(512, 3, 3, 1)
    params = random_params(model, x[:1], None if labels is None else labels[:1])
    lp = pc.log_prob(model, params, x, labels)
    np.testing.assert_allclose(float(jnp.exp(lp).sum()), 1.0, rtol=1e-5)


def test_pixelcnn_pp_sampler_in_range_and_deterministic():
    model = pp.PixelCNNPP(image_shape=(4, 4, 3), features=4, num_resnet=1, num_mixtures=2)
    params = random_params(model, jnp.zeros((1, 4, 4, 3), jnp.int32))
    f = jax.jit(lambda k: pp.sample_naive(model, params, k, 2))
    a, b = f(jax.random.key(3)), f(jax.random.key(3))
    assert a.dtype == jnp.uint8 and a.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(np.asarray(pp.log_prob(model, params, a))).all()


def test_model_level_bad_pixels_raise():
    model = pc.GatedPixelCNN(image_shape=(4, 4, 1), features=4, num_layers=1, kernel_size=3, output_features=4)
    params = random_params(model, jnp.zeros((1, 4, 4, 1), jnp.int32))
    for bad in (np.full((1, 4, 4, 1), 2), np.full((1, 4, 4, 1), -1), np.full((1, 4, 4, 1), 0.5)):
        with pytest.raises(ValueError, match="pixel"):
            pc.log_prob(model, params, bad)
    mpp = pp.PixelCNNPP(image_shape=(4, 4, 1), features=4, num_resnet=1, num_mixtures=2)
    ppp = random_params(mpp, jnp.zeros((1, 4, 4, 1), jnp.int32))
    for bad in (np.full((1, 4, 4, 1), 256), np.full((1, 4, 4, 1), -1)):
        with pytest.raises(ValueError, match="pixel"):
            pp.log_prob(mpp, ppp, bad)
    with pytest.raises(ValueError, match="labels"):
        cond = pc.GatedPixelCNN(image_shape=(4, 4, 1), features=4, num_layers=1, kernel_size=3, num_classes=2)
        pc.sample_cached(cond, random_params(cond, jnp.zeros((1, 4, 4, 1)), jnp.zeros(1, jnp.int32)),
                         jax.random.key(0), 2)
