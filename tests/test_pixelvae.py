import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
import gm_jax.distributions as dist
from gm_jax.models import pixelcnn, pixelvae
from properties import assert_autoregressive, assert_cached_equals_naive, random_params

SHAPE = (8, 8, 1)


@pytest.fixture(scope="module")
def tiny():
    model = pixelvae.PixelVAE(latent_dim=3, image_shape=SHAPE, encoder_channels=(4, 4), map_channels=(4, 4),
                              map_features=3, features=4, num_layers=2, kernel_size=3, output_features=8)
    params = random_params(model, jnp.zeros((1, *SHAPE)), jnp.zeros((1, 3)), scale=0.5)
    return model, params


@pytest.fixture(scope="module")
def images():
    return jax.random.bernoulli(jax.random.key(1), 0.4, (5, *SHAPE)).astype(jnp.uint8)


def test_decoder_is_autoregressive_in_x_and_sees_z_everywhere(tiny):
    """For a fixed z, pixel i's logit has zero gradient w.r.t. pixels i, i+1, ... and a non-zero one w.r.t. the
    pixels just before it; s(z) reaches every pixel (the latent map adds nothing from x)."""
    model, params = tiny
    cond_map = model.apply({"params": params}, jax.random.normal(jax.random.key(2), (1, 3)),
                           method=pixelvae.PixelVAE.latent_map)
    dec = pixelvae.decoder_pixelcnn(model)

    def logits_fn(x_flat):  # [1, 64] floats (the network reads pixels as floats) -> [1, 64]
        xin = x_flat.reshape(1, *SHAPE)
        return dec.apply({"params": params["pixelcnn"]}, xin, cond_map=cond_map)[..., 0, 0].reshape(1, -1)

    x = jax.random.bernoulli(jax.random.key(3), 0.5, (1, 64)).astype(jnp.float32)
    assert_autoregressive(logits_fn, x)
    grad = np.asarray(jax.grad(lambda v: logits_fn(v)[0, 27])(x))[0]  # pixel (3, 3)
    assert abs(grad[26]) > 0 and abs(grad[19]) > 0  # the pixel to its left, and the one above
    dz = np.asarray(jax.grad(lambda m: dec.apply({"params": params["pixelcnn"]}, x.reshape(1, *SHAPE),
                                                cond_map=m).sum())(cond_map))
    assert np.all(np.abs(dz).reshape(64, -1).max(-1) > 0)


def test_iwae_with_one_sample_is_the_log_weight_of_the_same_draw(tiny, images):
    """k = 1: log p(x | z) + log p(z) - log q(z | x) at the draw z of the ELBO's reconstruction term."""
    model, params = tiny
    key = jax.random.key(4)
    iwae = pixelvae.iwae_log_prob(model, params, images, key, num_samples=1, chunk_size=1)
    eps = jax.random.normal(jax.random.fold_in(key, 0), (1, images.shape[0], 3))[0]
    terms = pixelvae.neg_elbo(model, params, images, eps)
    mean, log_var = model.apply({"params": params}, images, method=pixelvae.PixelVAE.encode)
    z = mean + jnp.exp(0.5 * log_var) * eps
    log_w = -terms["recon"] + dist.standard_normal_log_prob(z) - dist.diag_gaussian_log_prob(z, mean, log_var)
    np.testing.assert_allclose(iwae, log_w, rtol=1e-5)
    np.testing.assert_allclose(terms["neg_elbo"], terms["recon"] + terms["kl"], rtol=1e-6)
    assert np.all(np.asarray(terms["kl"]) >= 0)


def test_elbo_below_the_iwae_bound(tiny, images):
    """E[ELBO] <= IWAE_k (Burda et al. 2016, Thm 1), both estimated with many samples."""
    model, params = tiny
    elbo = -jnp.mean(jax.vmap(lambda k: pixelvae.neg_elbo(model, params, images, jax.random.normal(
        k, (images.shape[0], 3)))["neg_elbo"])(jax.random.split(jax.random.key(8), 64)), axis=0)
    iwae = pixelvae.iwae_log_prob(model, params, images, jax.random.key(7), num_samples=64, chunk_size=16)
    assert np.all(np.asarray(elbo) <= np.asarray(iwae)), (elbo, iwae)


def test_cached_sampler_equals_the_naive_one(tiny):
    model, _ = tiny
    params = random_params(model, jnp.zeros((1, *SHAPE)), jnp.zeros((1, 3)), scale=0.5, shrink=("pixelcnn",))
    samples = assert_cached_equals_naive(
        jax.jit(lambda key: pixelvae.sample(model, params, key, 6, "naive")),
        jax.jit(lambda key: pixelvae.sample(model, params, key, 6, "cached")), jax.random.key(5))
    assert samples.dtype == np.uint8 and samples.shape == (6, *SHAPE)
    assert 0.05 < samples.mean() < 0.95  # mixed pixels, so equality is not trivial
    with pytest.raises(ValueError, match="unknown sampler"):
        pixelvae.sample(model, params, jax.random.key(5), 2, "fast")


def test_map_conditioning_needs_a_map_of_the_image_size():
    model = pixelcnn.GatedPixelCNN(image_shape=SHAPE, features=4, num_layers=1, kernel_size=3, map_conditioning=True)
    x = jnp.zeros((2, *SHAPE), jnp.int32)
    with pytest.raises(ValueError, match="cond_map"):
        model.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match=r"cond_map float \[2, 8, 8, D\]"):
        model.init(jax.random.key(0), x, cond_map=jnp.zeros((2, 4, 4, 3)))
    plain = pixelcnn.GatedPixelCNN(image_shape=SHAPE, features=4, num_layers=1, kernel_size=3)
    with pytest.raises(ValueError, match="takes no cond_map"):
        plain.init(jax.random.key(0), x, cond_map=jnp.zeros((2, 8, 8, 3)))


def _experiment(**overrides):
    from experiments import pixelvae_mnist

    return gm_jax.build("pixelvae_mnist", config=pixelvae_mnist.get_test_config(), **overrides)


def test_kl_warmup_weights_the_kl_linearly():
    experiment = _experiment(kl_warmup_steps=4)
    state = experiment.jit_init_state(jax.random.key(0))
    batch = {"image": np.asarray(jax.random.bernoulli(jax.random.key(1), 0.3, (8, 28, 28, 1)), np.uint8)}
    keys = jax.random.split(jax.random.key(2), 8)
    update = jax.jit(experiment.update)
    weights = []
    for _ in range(5):
        new_state, metrics = update(state, batch, keys)
        weights.append(float(metrics["kl_weight"]))
        np.testing.assert_allclose(metrics["loss"], metrics["recon"] + weights[-1] * metrics["kl"], rtol=1e-5)
        state = new_state
    np.testing.assert_allclose(weights, [0, 0.25, 0.5, 0.75, 1])
    assert float(metrics["kl"]) > 0


def test_bad_config_and_input_are_clear_value_errors():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        _experiment(kernel_size=4)
    with pytest.raises(ValueError, match="two entries"):
        _experiment(map_channels=(4, 4, 4))
    experiment = _experiment()
    for bad, match in ((np.zeros((2, 27, 28, 1), np.uint8), "shape"), (np.full((2, 28, 28, 1), 2, np.uint8), "1")):
        with pytest.raises(ValueError, match=match):  # what Model.log_prob and Model.sample's callers pass through
            experiment.check_data(bad)
