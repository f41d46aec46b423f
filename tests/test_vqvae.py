"""VQ-VAE (gm_jax.models.vqvae) and its two-stage experiment (gm_jax.recipes.latent): the straight-through
gradient, the codebook and commitment losses, the EMA codebook, dead-code restarts, the bound against the exact
log-probability, cached == naive prior sampling, the stages' updates and bad input."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax.models import pixelcnn, vqvae
from properties import assert_cached_equals_naive, random_params


def test_straight_through_passes_the_decoder_gradient_to_the_encoder_unchanged():
    z_e = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
    z_q = jax.random.normal(jax.random.key(1), (2, 3, 3, 4))
    w = jax.random.normal(jax.random.key(2), (2, 3, 3, 4))
    decoder_loss = lambda z: jnp.sum(jnp.sin(z) * w)  # any function of the decoder's input
    st = vqvae.straight_through(z_e, z_q)
    np.testing.assert_allclose(np.asarray(st), np.asarray(z_q), atol=1e-6)  # the forward value is z_q (to round-off)
    # d loss / d z_e is exactly the decoder's gradient at its input
    np.testing.assert_array_equal(np.asarray(jax.grad(lambda z: decoder_loss(vqvae.straight_through(z, z_q)))(z_e)),
                                  np.asarray(jax.grad(decoder_loss)(st)))


def test_codebook_loss_moves_codes_toward_encoder_outputs_and_commitment_moves_only_the_encoder():
    codebook = jax.random.normal(jax.random.key(0), (5, 3)).at[3:].add(20.0)  # codes 3, 4: far from every z_e
    z_e = jax.random.normal(jax.random.key(1), (4, 2, 2, 3))

    def losses(cb, z):
        idx, z_q = vqvae.quantize(cb, z)
        return vqvae.vq_losses(z, z_q)

    idx = np.asarray(vqvae.quantize(codebook, z_e)[0]).reshape(-1)
    g_cb = jax.grad(lambda cb: losses(cb, z_e)["codebook"].sum())(codebook)
    moved = codebook - 0.05 * g_cb
    flat = np.asarray(z_e).reshape(-1, 3)
    for k in range(5):
        if (idx == k).any():  # each used code gets closer to its encoder outputs
            before = np.sum((flat[idx == k] - np.asarray(codebook)[k]) ** 2)
            after = np.sum((flat[idx == k] - np.asarray(moved)[k]) ** 2)
            assert after < before, (k, before, after)
        else:  # unused codes do not move
            np.testing.assert_array_equal(np.asarray(g_cb)[k], 0.0)
    assert set(idx) <= {0, 1, 2} and len(set(idx)) >= 2  # both kinds of code are checked
    # the codebook loss gives the encoder no gradient; the commitment loss gives the codebook none
    np.testing.assert_array_equal(np.asarray(jax.grad(lambda z: losses(codebook, z)["codebook"].sum())(z_e)), 0.0)
    np.testing.assert_array_equal(np.asarray(jax.grad(lambda cb: losses(cb, z_e)["commitment"].sum())(codebook)), 0.0)


def test_ema_with_decay_zero_puts_each_used_code_at_the_mean_of_its_encoder_outputs():
    z_e = jax.random.normal(jax.random.key(1), (6, 4))
    idx = jnp.array([0, 0, 2, 2, 2, 1])
    stats = {"cluster_size": jnp.zeros(4), "embed_sum": jnp.zeros((4, 4))}
    new, codebook = vqvae.ema_update(stats, z_e, idx, 4, decay=0.0, eps=1e-12)
    for k in range(3):
        np.testing.assert_allclose(np.asarray(codebook[k]), np.asarray(z_e[idx == k].mean(0)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(new["cluster_size"]), [2, 1, 3, 0])


def test_dead_codes_restart_at_encoder_outputs():
    codebook = jnp.zeros((4, 2))
    usage = jnp.array([0.5, 0.001, 0.499, 0.0])
    candidates = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    new, usage2, dead = vqvae.restart_dead_codes(codebook, usage, candidates, jax.random.key(0), threshold=0.1)
    np.testing.assert_array_equal(np.asarray(dead), [False, True, False, True])
    for k in (1, 3):
        assert any(np.array_equal(np.asarray(new[k]), np.asarray(c)) for c in candidates)
    np.testing.assert_array_equal(np.asarray(new)[[0, 2]], 0.0)
    np.testing.assert_allclose(np.asarray(usage2), [0.5, 0.25, 0.499, 0.25])


def _tiny_models(num_codes=3, image=(8, 8, 1)):
    """A tiny VQ-VAE and one-hot Gated PixelCNN prior with random parameters (a prior that is not uniform)."""
    model = vqvae.VQVAE(image_shape=image, hidden=4, num_residual=1, num_codes=num_codes, code_dim=2)
    h, w = model.grid_shape
    prior = pixelcnn.GatedPixelCNN(image_shape=(h, w, 1), num_values=num_codes, features=4, num_layers=2,
                                   kernel_size=3, output_features=8, input_encoding="one_hot")
    return (model, random_params(model, jnp.zeros((1, *image)), scale=0.1), prior,
            random_params(prior, jnp.zeros((1, h, w, 1), jnp.int32), seed=1))


def test_bound_is_below_the_exact_log_probability_of_prior_and_decoder():
    """log p(x) = log sum_z p(x | z) p(z) by enumerating all 3^4 code grids of a 2x2 grid; the bound of the
    deterministic posterior is one term of the sum, so it is <= log p(x); the prior sums to 1."""
    model, params, prior, prior_params = _tiny_models()
    x = jax.random.bernoulli(jax.random.key(3), 0.4, (3, 8, 8, 1)).astype(jnp.float32)
    grids = jnp.asarray(list(itertools.product(range(3), repeat=4)), jnp.int32).reshape(-1, 2, 2)  # [81, 2, 2]

    @jax.jit  # one program (eagerly every op compiles its own)
    def terms(params, prior_params, x):
        log_pz = vqvae.prior_log_prob(prior, prior_params, grids)
        logits = vqvae.decode_codes(model, params, grids)  # [81, 8, 8, 1]
        log_px_z = jax.vmap(lambda xi: jnp.sum(xi * jax.nn.log_sigmoid(logits) + (1 - xi) * jax.nn.log_sigmoid(-logits),
                                               axis=(1, 2, 3)))(x)  # [3, 81]
        return log_pz, log_px_z + log_pz[None], vqvae.log_prob_bound(model, params, prior, prior_params, x)

    log_pz, joint, bound = terms(params, prior_params, x)
    np.testing.assert_allclose(float(jax.nn.logsumexp(log_pz)), 0.0, atol=1e-5)
    exact = np.asarray(jax.nn.logsumexp(joint, axis=1))
    assert np.all(np.asarray(bound["bound"]) <= exact + 1e-4), (bound["bound"], exact)
    # and it is exactly the term of z_q(x)
    grid_index = np.asarray(bound["indices"]).reshape(3, -1) @ (3 ** np.arange(3, -1, -1))
    np.testing.assert_allclose(np.asarray(bound["bound"]), np.asarray(joint)[np.arange(3), grid_index], rtol=1e-5)
    assert np.all(np.asarray(bound["bound"]) < exact - 1e-3)  # strictly: the other 80 grids have mass too


def test_cached_prior_sampler_equals_the_naive_one():
    model, params, prior, prior_params = _tiny_models(num_codes=5, image=(16, 16, 1))
    samples = assert_cached_equals_naive(
        lambda key: vqvae.sample(model, params, prior, prior_params, key, 6, method="naive"),
        lambda key: vqvae.sample(model, params, prior, prior_params, key, 6, method="cached"), jax.random.key(4))
    assert samples.dtype == np.uint8 and set(np.unique(samples)) <= {0, 1}
    codes_naive = pixelcnn.sample_naive(prior, prior_params, jax.random.key(5), 6)
    assert len(np.unique(np.asarray(codes_naive))) > 1  # the codes vary, so equality is not trivial
    assert pixelcnn.sample_dtype(512) == jnp.int32  # codes beyond 256 values do not wrap in uint8


def _experiment(**overrides):
    from experiments import vqvae_mnist

    return gm_jax.build("vqvae_mnist", config=vqvae_mnist.get_test_config(), **overrides)


def test_each_stage_changes_only_its_own_parameters():
    experiment = _experiment(vqvae_steps=1, num_steps=3)
    state = experiment.jit_init_state(jax.random.key(0))
    batch = {"image": np.asarray(jax.random.bernoulli(jax.random.key(1), 0.3, (8, 28, 28, 1)), np.uint8)}
    update = jax.jit(experiment.update)
    changed = lambda a, b: not all(np.array_equal(np.asarray(u), np.asarray(v))
                                   for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    s1, m1 = update(state, batch, jax.random.split(jax.random.key(2), 8))
    assert float(m1["stage"]) == 1 and changed(s1.params["vqvae"], state.params["vqvae"])
    assert not changed(s1.params["prior"], state.params["prior"])
    s2, m2 = update(s1, batch, jax.random.split(jax.random.key(3), 8))
    assert float(m2["stage"]) == 2 and changed(s2.params["prior"], s1.params["prior"])
    assert not changed(s2.params["vqvae"], s1.params["vqvae"]) and not changed(s2.codebook_stats, s1.codebook_stats)
    assert int(s2.step) == 2


def test_bad_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match="num_codes"):
        _experiment(num_codes=1)
    with pytest.raises(ValueError, match="vqvae_steps"):
        _experiment(vqvae_steps=10, num_steps=10)
    with pytest.raises(ValueError, match="must be >= 2"):
        vqvae.VQVAE(num_codes=1).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    model = gm_jax.create("vqvae_mnist", config=_experiment(conditional=True).config)
    with pytest.raises(ValueError, match="0..9"):
        model.sample(jax.random.key(0), 2, labels=np.array([3, 10]))
    for bad in (np.zeros((2, 27, 28, 1), np.uint8), np.full((2, 28, 28, 1), 2, np.uint8),
                np.zeros((2, 28, 28, 1), np.float32) + 0.5):
        with pytest.raises(ValueError):
            model.log_prob(bad)


def test_the_loop_refuses_stages_that_do_not_start_at_zero_and_increase(tmp_path):
    from gm_jax.training.loop import stage_steps, train

    experiment = _experiment(vqvae_steps=3, num_steps=5)
    assert [first for first, _ in stage_steps(experiment)] == [0, 3]
    for bad in (((1, experiment.update_vqvae),), ((0, experiment.update_vqvae), (0, experiment.update_prior))):
        experiment.update_stages = lambda bad=bad: bad
        with pytest.raises(ValueError, match="must start at step 0 and increase"):
            train(experiment, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything is written
