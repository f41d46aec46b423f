"""What the VAE is for (issue 22): learning with missing data, completion of arbitrary masks by pseudo-Gibbs,
paths in latent space, the 2-D manifold figure."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax import config as config_lib
from gm_jax.models import vae
from gm_jax.viz import latent as viz_latent


@pytest.fixture(scope="module")
def model_and_params():
    model = vae.VAE(latent_dim=3, image_shape=(6, 6, 1), hidden=(16,))
    return model, vae.init_params(model, jax.random.key(0))


@pytest.fixture(scope="module")
def images():
    return np.asarray(jax.random.bernoulli(jax.random.key(42), 0.4, (4, 6, 6, 1)), np.uint8)


def _bottom_half_mask():
    mask = np.ones((6, 6, 1), bool)
    mask[3:] = False
    return mask


def test_interpolate_paths():
    z0, z1 = jnp.array([[3.0, 0.0], [1.0, 1.0]]), jnp.array([[0.0, 3.0], [2.0, 2.0]])
    for method in vae.INTERPOLATIONS:
        path = vae.interpolate(z0, z1, 5, method)
        assert path.shape == (2, 5, 2)
        np.testing.assert_allclose(path[:, 0], z0, atol=1e-5)
        np.testing.assert_allclose(path[:, -1], z1, atol=1e-5)
    linear = vae.interpolate(z0, z1, 5, "linear")
    np.testing.assert_allclose(linear[0, 2], [1.5, 1.5], atol=1e-6)
    slerp = vae.interpolate(z0, z1, 5, "spherical")
    # orthogonal codes of equal norm: the great circle keeps the norm (the line dips to 3 / sqrt 2 midway)
    np.testing.assert_allclose(jnp.linalg.norm(slerp[0], axis=-1), 3.0, rtol=1e-5)
    np.testing.assert_allclose(slerp[0, 2], [3 / np.sqrt(2), 3 / np.sqrt(2)], rtol=1e-5)
    # parallel codes (angle 0): the linear path, not a division by sin(0)
    np.testing.assert_allclose(slerp[1], linear[1], atol=1e-5)
    with pytest.raises(ValueError, match="method"):
        vae.interpolate(z0, z1, 5, "cubic")
    with pytest.raises(ValueError, match="same shape"):
        vae.interpolate(z0, z1[:1], 5)
    with pytest.raises(ValueError, match="num_points"):
        vae.interpolate(z0, z1, 1)


def test_observed_elbo_ignores_missing_pixels(model_and_params, images):
    model, params = model_and_params
    eps = jax.random.normal(jax.random.key(1), (4, 3))
    full = vae.neg_elbo(model, params, images, eps)
    ones = vae.neg_elbo(model, params, images, eps, observed=np.ones(images.shape, np.uint8))
    for k in full:  # every pixel observed: the plain ELBO
        np.testing.assert_allclose(ones[k], full[k], rtol=1e-6)
    observed = np.broadcast_to(_bottom_half_mask(), images.shape).astype(np.uint8)
    flipped = np.where(observed, images, 1 - images)  # other values at the missing pixels
    a = vae.neg_elbo(model, params, images, eps, observed=observed)
    b = vae.neg_elbo(model, params, flipped, eps, observed=observed)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6)
    assert np.all(np.asarray(a["recon"]) < np.asarray(full["recon"]))  # fewer pixels, fewer nats


def test_complete_keeps_observed_pixels_and_is_deterministic(model_and_params, images):
    model, params = model_and_params
    mask = _bottom_half_mask()
    out = vae.complete(model, params, jax.random.key(3), images, mask, 5)
    assert out.shape == images.shape and out.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(out)[:, :3], images[:, :3])
    assert set(np.unique(np.asarray(out))) <= {0, 1}
    jitted = jax.jit(lambda k, m: vae.complete(model, params, k, images, m, 5))  # one compile per mask shape
    np.testing.assert_array_equal(out, jitted(jax.random.key(3), mask))
    other = np.asarray(jitted(jax.random.key(4), mask))
    assert not np.array_equal(other, np.asarray(out))  # 72 missing pixels near p = 1/2: another key, another draw
    per_image = np.broadcast_to(mask, images.shape).astype(np.float32)  # a mask per image, 0/1 floats
    np.testing.assert_array_equal(out, vae.complete(model, params, jax.random.key(3), images, per_image, 5))


@pytest.mark.parametrize("mask, match", [
    (np.ones((6, 5), bool), "shape"),
    (np.ones((4, 6, 6, 2), bool), "shape"),
    (np.full((6, 6, 1), "a"), "dtype"),
    (np.full((6, 6, 1), 2, np.int32), "only 0 / 1"),
    (np.zeros((6, 6, 1), bool), "no observed pixel"),
    (np.ones((6, 6, 1), bool), "every pixel observed"),
])
def test_complete_rejects_bad_masks(model_and_params, images, mask, match):
    model, params = model_and_params
    with pytest.raises(ValueError, match=match):
        vae.complete(model, params, jax.random.key(0), images, mask, 2)


def test_complete_rejects_zero_steps(model_and_params, images):
    model, params = model_and_params
    with pytest.raises(ValueError, match="num_steps"):
        vae.complete(model, params, jax.random.key(0), images, _bottom_half_mask(), 0)


def test_vae_mnist_missing_data_training(tmp_path):
    """missing_fraction: batches carry a fixed mask per training image, the loss reads it; 0 adds nothing."""
    from experiments import vae_mnist

    plain = gm_jax.build("vae_mnist", config=vae_mnist.get_test_config())
    assert "observed" not in next(plain.train_batches(0))
    config = config_lib.apply_overrides(vae_mnist.get_test_config(), {"missing_fraction": 0.5}, "vae_mnist")
    exp = gm_jax.build("vae_mnist", config=config)
    batch = next(exp.train_batches(0))
    assert batch["observed"].shape == batch["image"].shape and 0.4 < batch["observed"].mean() < 0.6
    np.testing.assert_array_equal(exp.missing_mask((5, 28, 28, 1), 0.5, 1), exp.missing_mask((5, 28, 28, 1), 0.5, 1))
    params = exp.init_params(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), len(batch["image"]))
    loss_fn = jax.jit(exp.loss_fn)
    loss, _ = loss_fn(params, batch, keys)
    loss_full, _ = loss_fn(params, {"image": batch["image"]}, keys)
    assert np.isfinite(loss) and loss < loss_full  # the observed half's nats only
    report = exp.imputation_report(params, np.asarray(batch["image"]), 0.5)
    assert 0 <= report["test_imputation_error_rate"] <= 1 and report["test_imputation_nats_per_pixel"] > 0
    with pytest.raises(ValueError, match="missing_fraction"):
        gm_jax.build("vae_mnist", config=config_lib.apply_overrides(vae_mnist.get_test_config(),
                                                                    {"missing_fraction": 1.0}, "vae_mnist"))
    x = np.asarray(batch["image"][:2])
    with pytest.raises(ValueError, match="mask must have"):
        exp.complete(params, jax.random.key(0), x, np.ones((27, 28), bool))
    viz_latent.save_manifold(tmp_path / "m.png", np.zeros((9, 28, 28, 1)), [-1.0, 0.0, 1.0])
    assert (tmp_path / "m.png").stat().st_size > 0
    with pytest.raises(ValueError, match="save_manifold"):
        viz_latent.save_manifold(tmp_path / "m.png", np.zeros((8, 28, 28, 1)), [-1.0, 0.0, 1.0])
