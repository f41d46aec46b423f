"""pix2pix: the U-Net keeps its input's shape, the PatchGAN's logits each see exactly the stated patch, the
dropout masks come from the per-example noise z (deterministic per key, different across keys), and the
experiment's sampler refuses an input image of the wrong shape."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import pix2pix as p2p


def _init(module, *args):
    return jax.jit(lambda *a: module.init(jax.random.key(0), *a, train=False))(*args)


@pytest.mark.parametrize("shape, channels, out_channels", [((28, 28, 1), (4, 4, 4, 4, 4), 1),
                                                          ((12, 20, 2), (4, 4), 3)])
def test_unet_output_shape_equals_input_shape(shape, channels, out_channels):
    g = p2p.UNetGenerator(channels, image_shape=shape, out_channels=out_channels, dropout_layers=1)
    y = jax.random.uniform(jax.random.key(1), (2, *shape), minval=-1, maxval=1)
    z = jax.vmap(g.noise)(jax.random.split(jax.random.key(2), 2))
    variables = _init(g, z, y)
    # the skip connections carry the input pixels near an output pixel to it (U-Net, not only a bottleneck)
    x, grad = jax.jit(lambda y: (g.apply(variables, z, y, train=False),
                                 jax.grad(lambda y: g.apply(variables, z, y, train=False)[0, 5, 7].sum())(y)))(y)
    assert x.shape == (2, *shape[:2], out_channels)
    assert float(jnp.abs(x).max()) <= 1.0
    assert np.count_nonzero(np.asarray(grad[0])) > 0 and np.count_nonzero(np.asarray(grad[1])) == 0
    with pytest.raises(ValueError, match="expects input images"):
        g.apply(variables, z, y[:, :-1], train=False)


def test_receptive_field_of_the_paper_patchgan_is_70():
    d = p2p.PatchGANDiscriminator(p2p.PAPER["d_channels"], p2p.PAPER["d_strides"])
    assert d.receptive_field()[0] == p2p.PAPER["receptive_field"] == 70
    assert p2p.receptive_field([3, 3], [1, 1], [1, 1]) == (5, 1, -2)


def _logit_support(d, variables, shape, i, j):
    """Boolean [H, W]: the input pixels (of x or y) that logit (i, j) depends on, over two random inputs."""
    keys = jax.random.split(jax.random.key(5), 2)
    x, y = (jax.random.normal(k, (2, *shape)) for k in keys)
    gx, gy = jax.jit(jax.grad(lambda x, y: d.apply(variables, x, y, train=False)[:, i, j].sum(), argnums=(0, 1)))(x, y)
    return (np.asarray(gx) != 0).any((0, 3)) | (np.asarray(gy) != 0).any((0, 3))


@pytest.mark.parametrize("channels, strides, size, hw", [((2, 3), (2, 1), 16, 28),
                                                         ((2, 2, 2, 2), (2, 2, 2, 1), 70, 96)])
def test_patchgan_one_logit_per_patch_of_the_receptive_field(channels, strides, size, hw):
    d = p2p.PatchGANDiscriminator(channels, strides)
    shape = (hw, hw, 1)
    variables = _init(d, jnp.zeros((1, *shape)), jnp.zeros((1, *shape)))
    logits = d.apply(variables, jnp.zeros((2, *shape)), jnp.zeros((2, *shape)), train=False)
    rf, jump, start = d.receptive_field()
    assert rf == size
    n_out = logits.shape[1]
    assert logits.shape == (2, n_out, n_out) and n_out > 1
    for i, j in [(0, 0), (n_out // 2, n_out // 2 - 1), (n_out - 1, 1)]:
        expected = np.zeros((hw, hw), bool)
        r0, c0 = start + jump * i, start + jump * j
        expected[max(r0, 0):r0 + rf, max(c0, 0):c0 + rf] = True
        np.testing.assert_array_equal(_logit_support(d, variables, shape, i, j), expected)
    # an interior logit sees a whole rf x rf patch
    assert _logit_support(d, variables, shape, n_out // 2, n_out // 2).sum() == rf * rf


def test_dropout_masks_come_from_z():
    g = p2p.UNetGenerator((4, 8, 8), dropout_layers=2)  # 28 -> padded 32 -> 16 -> 8 -> 4; decoder 8x8x8, 16x16x4
    assert g.noise_dim == sum(h * w * c for h, w, c in g.dropout_shapes()) == 8 * 8 * 8 + 16 * 16 * 4
    z1, z1_again, z2 = (g.noise(jax.random.key(k)) for k in (1, 1, 2))
    np.testing.assert_array_equal(z1, z1_again)
    m1, m2 = g.dropout_masks(z1[None]), g.dropout_masks(z2[None])
    assert [m.shape for m in m1] == [(1, 8, 8, 8), (1, 16, 16, 4)]
    assert set(np.unique(np.concatenate([np.ravel(m) for m in m1]))) == {0.0, 2.0}  # dropped, kept / keep_prob
    assert any(not np.array_equal(a, b) for a, b in zip(m1, m2))
    # the generator's output depends on z at sampling time (eval-mode batch norm) too: dropout is its noise
    y = jax.random.uniform(jax.random.key(3), (1, 28, 28, 1), minval=-1, maxval=1)
    variables = _init(g, z1[None], y)
    apply = jax.jit(lambda z: g.apply(variables, z[None], y, train=False))
    out = [np.asarray(apply(z)) for z in (z1, z1_again, z2)]
    np.testing.assert_array_equal(out[0], out[1])
    assert np.abs(out[0] - out[2]).max() > 1e-4
    with pytest.raises(ValueError, match="noise_dim"):
        g.apply(variables, z1[None, :-1], y, train=False)


def test_sample_refuses_an_edge_map_of_the_wrong_shape():
    from experiments import pix2pix_mnist

    experiment = pix2pix_mnist.Experiment(pix2pix_mnist.get_test_config())
    images = np.zeros((2, 28, 28, 1), np.uint8)
    images[:, 8:20, 10:18] = 255
    edges = experiment.make_input(images)
    assert edges.shape == (2, 28, 28, 1) and set(np.unique(edges)) == {0, 255}
    params = experiment.params_of(experiment.jit_init_state(jax.random.key(0)))
    key = jax.random.key(1)
    out = experiment.jit_sample(params, key, 2, inputs=edges)
    assert out.shape == (2, 28, 28, 1) and out.dtype == jnp.uint8
    np.testing.assert_array_equal(out, experiment.jit_sample(params, key, 2, inputs=edges))
    for bad in (edges[:, :14], edges[..., 0], edges[:1]):
        with pytest.raises(ValueError, match=r"\[2, 28, 28, 1\]"):
            experiment.sample(params, key, 2, inputs=bad)
