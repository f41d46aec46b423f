"""EBGAN (Zhao et al. 2017): the margin loss, the pulling-away term, the objective, the autoencoder
discriminator, one adversarial step per player, bad config values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from experiments import ebgan_mnist
from gm_jax.models import ebgan
from properties import D_FIELDS, G_FIELDS, assert_updates_only


# -- losses -------------------------------------------------------------------------------------
def test_margin_loss_against_hand_computed_values():
    real, fake = np.array([0.1, 0.3], np.float32), np.array([0.5, 2.0, 0.9], np.float32)
    # mean D(x) = 0.2; [1 - D(G(z))]^+ = 0.5, 0, 0.1 -> mean 0.2
    np.testing.assert_allclose(ebgan.margin_loss(jnp.asarray(real), jnp.asarray(fake), 1.0), 0.4, rtol=1e-6)
    # the hinge: fakes above the margin get no gradient, the others -1/B'; every real +1/B
    g_real, g_fake = jax.grad(ebgan.margin_loss, argnums=(0, 1))(jnp.asarray(real), jnp.asarray(fake), 1.0)
    np.testing.assert_allclose(g_real, [0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(g_fake, [-1 / 3, 0.0, -1 / 3], rtol=1e-6)
    np.testing.assert_allclose(ebgan.margin_loss(jnp.asarray(real), jnp.asarray(fake), 3.0),
                               0.2 + np.mean(3.0 - fake), rtol=1e-6)
    np.testing.assert_allclose(ebgan.generator_energy_loss(jnp.asarray(fake)), np.mean(fake), rtol=1e-6)


def _pt_numpy(s):
    n = len(s)
    total = sum((s[i] @ s[j] / (np.linalg.norm(s[i]) * np.linalg.norm(s[j]))) ** 2
                for i in range(n) for j in range(n) if i != j)
    return total / (n * (n - 1))


def test_pulling_away_term_against_hand_computed_values():
    s = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]], np.float32)
    # cosines: (0, 1) 1/sqrt(2), (0, 2) 0, (1, 2) 1/sqrt(2) -> squares 1/2, 0, 1/2 over 3 pairs, both orders
    np.testing.assert_allclose(ebgan.pulling_away_term(jnp.asarray(s)), 2 * (0.5 + 0.0 + 0.5) / 6, rtol=1e-6)
    rng = np.random.default_rng(0)
    s = rng.normal(size=(5, 7)).astype(np.float32)
    np.testing.assert_allclose(ebgan.pulling_away_term(jnp.asarray(s)), _pt_numpy(s.astype(np.float64)), rtol=1e-5)


def test_pulling_away_term_of_identical_and_orthogonal_codes():
    same = np.tile(np.array([[0.3, -1.2, 2.0]], np.float32), (4, 1))
    np.testing.assert_allclose(ebgan.pulling_away_term(jnp.asarray(same)), 1.0, rtol=1e-6)
    parallel = same * np.array([[1.0], [-2.0], [0.5], [7.0]], np.float32)  # norms and signs do not matter
    np.testing.assert_allclose(ebgan.pulling_away_term(jnp.asarray(parallel)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(ebgan.pulling_away_term(jnp.eye(4) * 3.0), 0.0, atol=1e-7)
    with pytest.raises(ValueError, match=r"N >= 2"):
        ebgan.pulling_away_term(jnp.ones((1, 3)))


def test_objective_losses_and_metrics():
    codes = jnp.asarray([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    energy_real, energy_fake = jnp.asarray([0.1, 0.3, 0.2]), jnp.asarray([0.5, 2.0, 0.9])
    objective = ebgan.EBGANObjective(margin=1.0, pt_weight=0.5)
    d_loss, d_metrics = objective.discriminator_loss((energy_real, codes), (energy_fake, codes))
    np.testing.assert_allclose(d_loss, 0.2 + 0.2, rtol=1e-6)
    np.testing.assert_allclose([d_metrics["d_real_energy"], d_metrics["d_fake_energy"]], [0.2, 3.4 / 3], rtol=1e-6)
    g_loss, g_metrics = objective.generator_loss((energy_fake, codes))
    np.testing.assert_allclose(g_metrics["pt"], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(g_loss, 3.4 / 3 + 0.5 / 3, rtol=1e-6)


@pytest.mark.parametrize("kwargs", [dict(margin=0.0), dict(margin=-1.0), dict(margin=1.0, pt_weight=-0.1),
                                    dict(margin=float("nan"))])
def test_bad_objective_values(kwargs):
    with pytest.raises(ValueError, match="margin|pt_weight"):
        ebgan.EBGANObjective(**kwargs)


@pytest.mark.parametrize("override", [dict(margin=0.0), dict(margin=-0.5), dict(pt_weight=-0.1),
                                      dict(code_dim=0), dict(d_channels=(4, 8, 16)), dict(pack=2), dict(clusters=4)])
def test_bad_config_values(override):
    config = ebgan_mnist.get_test_config()
    config.update(override)
    with pytest.raises(ValueError, match="|".join(override)):
        gm_jax.build("ebgan_mnist", config=config)


# -- the discriminator and the two-player step ----------------------------------------------------
def test_discriminator_is_an_autoencoder_energy():
    disc = ebgan.EBGANDiscriminator((4, 8), code_dim=5)
    x = jax.random.uniform(jax.random.key(0), (6, 28, 28, 1), minval=-1.0, maxval=1.0)
    variables = jax.jit(lambda k, x: disc.init(k, x, train=False))(jax.random.key(1), x)
    apply = jax.jit(lambda v, x: disc.apply(v, x, train=False))
    energy, code = apply(variables, x)
    assert energy.shape == (6,) and code.shape == (6, 5)
    assert np.all(np.asarray(energy) >= 0) and np.all(np.isfinite(np.asarray(energy)))
    with pytest.raises(ValueError, match="divisible by 4"):
        apply(variables, x[:, :27, :27])




def test_each_phase_updates_only_its_player():
    experiment = gm_jax.build("ebgan_mnist", config=ebgan_mnist.get_test_config())
    state = experiment.jit_init_state(jax.random.key(0))
    batch = {"image": np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)).astype(np.uint8),
             "label": np.zeros(8, np.int32)}
    x, y = experiment.real_inputs(batch)
    assert y is None
    keys = jax.random.split(jax.random.key(1), 8)
    after_d, d_metrics = jax.jit(experiment.gan.discriminator_phase)(state, x, y, keys)
    assert_updates_only(state, after_d, D_FIELDS, G_FIELDS)
    assert {"d_loss", "d_real_energy", "d_fake_energy"} <= set(d_metrics)
    assert float(d_metrics["d_real_energy"]) >= 0 and np.isfinite(float(d_metrics["d_loss"]))

    after_g, g_metrics = jax.jit(experiment.gan.generator_phase)(state, y, keys)
    assert_updates_only(state, after_g, G_FIELDS, D_FIELDS)
    assert 0 <= float(g_metrics["pt"]) <= 1
    np.testing.assert_allclose(g_metrics["g_loss"], g_metrics["g_energy"] + 0.1 * g_metrics["pt"], rtol=1e-5)
