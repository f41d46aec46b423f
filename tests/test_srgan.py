"""SRGAN (Ledig et al. 2017): the players' shapes, the pixel shuffle, the low-resolution operator, `sample`'s checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import srgan_mnist
from gm_jax.models import srgan


def test_pixel_shuffle_is_pytorch_order_and_inverts_space_to_depth():
    r, c = 2, 3
    x = jax.random.normal(jax.random.key(0), (2, 3, 4, c * r * r))
    y = np.asarray(srgan.pixel_shuffle(x, r))
    assert y.shape == (2, 6, 8, c)
    xn = np.asarray(x)
    # PyTorch nn.PixelShuffle, carried to NHWC: out[b, h r + i, w r + j, ch] = x[b, h, w, ch r^2 + i r + j]
    for h, w, i, j, ch in [(0, 0, 0, 1, 0), (1, 2, 1, 0, 2), (2, 3, 1, 1, 1)]:
        assert y[1, h * r + i, w * r + j, ch] == xn[1, h, w, ch * r * r + i * r + j]
    np.testing.assert_array_equal(np.asarray(srgan.space_to_depth(srgan.pixel_shuffle(x, r), r)), xn)
    z = jax.random.normal(jax.random.key(1), (2, 6, 8, c))
    np.testing.assert_array_equal(np.asarray(srgan.pixel_shuffle(srgan.space_to_depth(z, r), r)), np.asarray(z))
    with pytest.raises(ValueError, match="C \\* r\\^2"):
        srgan.pixel_shuffle(jnp.zeros((1, 2, 2, 3)), 2)


def test_area_average_operator_on_a_hand_example():
    exp = srgan_mnist.Experiment(srgan_mnist.get_test_config())
    x = np.zeros((1, 28, 28, 1), np.uint8)
    x[0, 0:4, 0:4, 0] = np.arange(16).reshape(4, 4)  # mean 7.5 -> 8 (half to even)
    x[0, 0:4, 4:8, 0] = 255  # mean 255
    x[0, 24:28, 24:28, 0] = [[10, 0, 0, 0]] * 4  # mean 2.5 -> 2 (half to even)
    x[0, 4:8, 0:4, 0] = [[1, 2, 0, 0]] * 4  # mean 0.75 -> 1
    y = exp.make_input(x)
    expected = np.zeros((1, 7, 7, 1), np.uint8)
    expected[0, 0, 0, 0], expected[0, 0, 1, 0], expected[0, 6, 6, 0], expected[0, 1, 0, 0] = 8, 255, 2, 1
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, expected)
    bicubic = exp.reference_outputs(x, y)["bicubic"]
    assert bicubic.shape == (1, 28, 28, 1) and bicubic.dtype == np.uint8
    with pytest.raises(ValueError, match="28, 28, 1"):
        exp.make_input(np.zeros((1, 14, 14, 1), np.uint8))


def test_players_and_sample_shapes_and_bad_inputs():
    # shapes by abstract evaluation (no compilation); the contract test runs the players for real
    exp = srgan_mnist.Experiment(srgan_mnist.get_test_config())
    key = jax.random.key(0)
    lowres = np.full((2, 7, 7, 1), 128, np.uint8)
    for generator in ("adversarial", "baseline"):
        out = jax.eval_shape(lambda k: exp.sample(exp.init_params(k), k, 2, inputs=lowres, generator=generator), key)
        assert out.shape == (2, 28, 28, 1) and out.dtype == jnp.uint8
    d = exp.gan.discriminator
    logits = jax.eval_shape(lambda k, x: d.apply(d.init(k, x, None, train=False), x, None, train=False), key,
                            jnp.zeros((3, 28, 28, 1)))
    assert logits.shape == (3,)
    params = jax.eval_shape(exp.init_params, key)  # `sample` checks its inputs before it reads the parameters
    for bad in (np.zeros((2, 14, 14, 1), np.uint8), np.full((2, 7, 7, 1), 300, np.int32),
                np.zeros((2, 7, 7, 1), np.float32) - 0.5, np.zeros((2, 7, 7), np.uint8)):
        with pytest.raises(ValueError, match="\\[2, 7, 7, 1\\]"):
            exp.sample(params, key, 2, inputs=bad)
    with pytest.raises(ValueError, match="low-resolution image"):
        jax.eval_shape(lambda k: exp.gan.generator.init(k, jnp.zeros((3, 0)), jnp.zeros((3, 7, 7)), train=False), key)
