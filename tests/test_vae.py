import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.models import vae


@pytest.fixture(scope="module", params=["mlp", "conv"])
def model_and_params(request):
    hidden = (32,) if request.param == "mlp" else (4, 8)
    model = vae.VAE(latent_dim=3, image_shape=(28, 28, 1), architecture=request.param, hidden=hidden)
    return model, vae.init_params(model, jax.random.key(0))


@pytest.fixture(scope="module")
def images():
    return jax.random.bernoulli(jax.random.key(42), 0.3, (6, 28, 28, 1)).astype(jnp.uint8)


def test_shapes_and_terms(model_and_params, images):
    model, params = model_and_params
    eps = jax.random.normal(jax.random.key(1), (6, 3))
    terms = vae.neg_elbo(model, params, images, eps)
    for v in terms.values():
        assert v.shape == (6,) and np.isfinite(v).all()
    np.testing.assert_allclose(terms["neg_elbo"], terms["recon"] + terms["kl"], rtol=1e-6)
    assert np.all(terms["kl"] >= 0)
    probs = vae.sample_probs(model, params, jax.random.key(2), 5)
    assert probs.shape == (5, 28, 28, 1) and probs.dtype == jnp.float32
    assert float(probs.min()) >= 0 and float(probs.max()) <= 1


def test_elbo_below_iwae_bound(model_and_params, images):
    """E[log-weight] (the ELBO) <= IWAE_k, estimated with many samples (Burda et al. 2016, Thm 1)."""
    model, params = model_and_params
    elbo = -jnp.mean(jnp.stack([
        vae.neg_elbo(model, params, images, jax.random.normal(jax.random.key(i), (6, 3)))["neg_elbo"]
        for i in range(200)]), axis=0)
    iwae = vae.iwae_log_prob(model, params, images, jax.random.key(7), num_samples=256, chunk_size=64)
    assert iwae.shape == (6,)
    assert np.all(np.asarray(elbo) <= np.asarray(iwae)), (elbo, iwae)


def test_iwae_masks_the_last_partial_chunk(model_and_params, images):
    """k that is not a multiple of the chunk gives the estimate of exactly k samples."""
    model, params = model_and_params
    key = jax.random.key(3)
    k, chunk = 7, 5
    got = vae.iwae_log_prob(model, params, images, key, num_samples=k, chunk_size=chunk)
    # Recompute by hand from the same draws: chunk i uses fold_in(key, i).
    x = jnp.asarray(images, jnp.float32)
    mean, log_var = model.apply({"params": params}, x, method=vae.VAE.encode)
    eps = jnp.concatenate([jax.random.normal(jax.random.fold_in(key, i), (chunk, *mean.shape)) for i in range(2)])[:k]
    z = mean + jnp.exp(0.5 * log_var) * eps
    logits = model.apply({"params": params}, z.reshape(-1, 3), method=vae.VAE.decode).reshape(k, *x.shape)
    from gm_jax import distributions as dist
    log_w = (dist.bernoulli_log_prob(logits, x[None]) + dist.standard_normal_log_prob(z)
             - dist.diag_gaussian_log_prob(z, mean, log_var))
    np.testing.assert_allclose(got, jax.nn.logsumexp(log_w, 0) - jnp.log(k), rtol=1e-5)


def test_unknown_architecture_is_a_value_error():
    model = vae.VAE(latent_dim=2, image_shape=(28, 28, 1), architecture="resnet")
    with pytest.raises(ValueError, match="unknown VAE architecture 'resnet'"):
        vae.init_params(model, jax.random.key(0))
