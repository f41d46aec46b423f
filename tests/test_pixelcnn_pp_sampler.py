"""The cached PixelCNN++ sampler (`pixelcnn_pp.init_cache` / `step` / `sample_cached`, Ramachandran et al.
2017): the step's mixture parameters equal the full network's at every pixel, its samples equal
`sample_naive`'s for the same key, and bad inputs raise."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import pixelcnn_pp as pp
from properties import assert_cached_equals_naive, random_params


@functools.partial(jax.jit, static_argnums=0)
def _step_outputs(model, params, x):
    """The cached step's output at every pixel i of x [N, H, W, C] (all given): [N, H * W, P]."""
    n, h, w, c = x.shape
    flat = x.reshape(n, h * w, c)

    def body(cache, i):
        out, cache = pp.step(model, params, cache, flat, i)
        return cache, out

    _, outs = jax.lax.scan(body, pp.init_cache(model, n), jnp.arange(h * w))
    return jnp.swapaxes(outs, 0, 1)


# (image_shape, num_levels, num_resnet): strided levels (8 -> 4 -> 2), two blocks per level, colour, one level
CONFIGS = [((8, 8, 1), 3, 1), ((8, 8, 3), 2, 2), ((4, 6, 1), 1, 1)]


@pytest.mark.parametrize("shape,levels,blocks", CONFIGS)
def test_step_equals_full_network_at_every_pixel(shape, levels, blocks):
    model = pp.PixelCNNPP(image_shape=shape, features=6, num_resnet=blocks, num_mixtures=2, num_levels=levels)
    params = random_params(model, jnp.zeros((1, *shape), jnp.int32), scale=0.1)  # 0.3: activations in the 1000s
    x = jax.random.randint(jax.random.key(1), (2, *shape), 0, 256)
    full = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x))(params, x))
    cached = np.asarray(_step_outputs(model, params, x)).reshape(full.shape)
    assert np.abs(full).max() > 0.1  # not trivially zero
    np.testing.assert_allclose(cached, full, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape,levels", [((8, 8, 1), 3), ((4, 4, 3), 2)])
def test_cached_samples_equal_naive(shape, levels):
    model = pp.PixelCNNPP(image_shape=shape, features=6, num_resnet=1, num_mixtures=3, num_levels=levels)
    params = random_params(model, jnp.zeros((1, *shape), jnp.int32), scale=0.1)  # 0.3: activations in the 1000s
    naive = jax.jit(pp.sample_naive, static_argnums=(0, 3))
    cached = jax.jit(pp.sample_cached, static_argnums=(0, 3))
    x = assert_cached_equals_naive(naive, cached, model, params, jax.random.key(7), 3)
    assert x.dtype == np.uint8 and x.shape == (3, *shape)
    assert len(np.unique(x)) > 10 and 0 < x.mean() < 255  # mixed values, not saturated


def test_sample_cached_bad_inputs_raise():
    model = pp.PixelCNNPP(image_shape=(4, 4, 1), features=4, num_resnet=1, num_mixtures=2, num_levels=2)
    params = random_params(model, jnp.zeros((1, 4, 4, 1), jnp.int32))
    with pytest.raises(ValueError, match="labels"):
        pp.sample_cached(model, params, jax.random.key(0), 2, labels=jnp.zeros(2, jnp.int32))
    for bad in (0, -1, 2.0, True, None):
        with pytest.raises(ValueError, match="num_samples"):
            pp.sample_cached(model, params, jax.random.key(0), bad)
    with pytest.raises(ValueError, match="divisible"):
        pp.init_cache(pp.PixelCNNPP(image_shape=(6, 6, 1), num_levels=3), 1)
