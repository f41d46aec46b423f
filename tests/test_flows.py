"""Tests of gm_jax.models.flows (RealNVP, Glow) and the flow experiments."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import gm_jax
from gm_jax import config as config_lib
from gm_jax.models import flows
from gm_jax.recipes.images import ImageFlowExperiment, image_flow_config
from properties import assert_bijector

# name -> (bijector, shape of one example)
BIJECTORS = {
    "logit": (lambda: flows.Logit(0.05), (3, 2)),
    "shift": (lambda: flows.Shift(-0.5), (4,)),
    "actnorm_image": (lambda: flows.ActNorm(), (2, 2, 3)),
    "actnorm_vector": (lambda: flows.ActNorm(), (3,)),
    "conv1x1": (lambda: flows.Invertible1x1Conv(), (2, 2, 3)),
    "conv1x1_lu": (lambda: flows.Invertible1x1ConvLU(), (2, 2, 4)),
    "coupling_channel_tanh": (lambda: flows.AffineCoupling("channel", 0, 8, 2, "tanh"), (2, 2, 4)),
    "coupling_channel_sigmoid_odd": (lambda: flows.AffineCoupling("channel", 1, 8, 1, "sigmoid"), (2, 2, 3)),
    "coupling_channel_sigmoid_floor": (lambda: flows.AffineCoupling("channel", 0, 8, 1, "sigmoid", 0.1), (2, 2, 4)),
    "coupling_checkerboard": (lambda: flows.AffineCoupling("checkerboard", 1, 8, 2, "tanh"), (4, 4, 1)),
    "coupling_vector": (lambda: flows.AffineCoupling("channel", 1, 8, 2, "tanh"), (5,)),
    "squeeze": (lambda: flows.Squeeze(), (4, 2, 2)),
    "chain_2d": (lambda: flows.realnvp_2d(3, 8), (2,)),
    "glow": (lambda: flows.glow((4, 4, 1), 2, 1, 8), (4, 4, 1)),
    "glow_plain_center": (lambda: flows.glow((4, 4, 2), 2, 1, 8, lu=False, preprocess="center"), (4, 4, 2)),
    "realnvp": (lambda: flows.realnvp((4, 4, 1), 2, 8, couplings=1), (4, 4, 1)),
}
FIXED = ("p", "sign_s")  # LU constants (a permutation and signs): not perturbed
VOLUME_PRESERVING = ("shift", "squeeze")


def _perturbed_params(module, shape, key):
    """Params after a data-dependent init, then every leaf moved by N(0, 0.2^2) noise (so zero-initialised
    output layers, unit scales and the actnorm init are all non-trivial)."""
    k1, k2, k3 = jax.random.split(key, 3)
    x = jax.random.uniform(k1, (8, *shape), minval=0.05, maxval=0.95)
    params = module.init(k2, x, method="forward_and_log_det").get("params", {})
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(k3, len(leaves))
    new = [v if str(getattr(path[-1], "key", "")) in FIXED else v + 0.2 * jax.random.normal(k, v.shape)
           for (path, v), k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(treedef, new)


@pytest.mark.parametrize("name", sorted(BIJECTORS))
def test_bijector_inverse_and_log_det_match_jacobian(name):
    make, shape = BIJECTORS[name]
    module = make()
    params = _perturbed_params(module, shape, jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, *shape), minval=0.1, maxval=0.9)
    forward = jax.jit(lambda v: module.apply({"params": params}, v, method="forward_and_log_det"))
    inverse = jax.jit(lambda v: module.apply({"params": params}, v, method="inverse_and_log_det"))
    _, ld = forward(x)
    assert ld.shape == (3,)
    if name not in VOLUME_PRESERVING:  # the perturbed parameters make every log-det non-trivial
        assert np.all(np.abs(np.asarray(ld)) > 1e-3), ld
    assert_bijector(forward, inverse, x)


def test_actnorm_data_dependent_init_normalises_each_channel():
    x = 3.0 + jnp.array([1.0, 5.0, 0.2]) * jax.random.normal(jax.random.key(0), (16, 4, 4, 3))
    module = flows.ActNorm()
    params = module.init(jax.random.key(1), x, method="forward_and_log_det").get("params", {})
    y, _ = module.apply({"params": params}, x, method="forward_and_log_det")
    np.testing.assert_allclose(y.mean((0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std((0, 1, 2)), 1.0, atol=1e-4)
    # inside a chain the init normalises the actnorm's own input (the previous layer's output)
    chain = flows.Chain([flows.Invertible1x1Conv(), flows.ActNorm()])
    params = chain.init(jax.random.key(2), x, method="forward_and_log_det").get("params", {})
    y, _ = chain.apply({"params": params}, x, method="forward_and_log_det")
    np.testing.assert_allclose(y.std((0, 1, 2)), 1.0, atol=1e-4)


def test_glow_coupling_inverse_is_accurate_in_float32_when_it_squashes():
    """A Glow coupling whose scale sigmoid(raw + 2) is ~1e-3 (as a trained glow_mnist has on some images)
    still inverts to float32 precision: shift-first, y = (x + t) s, inverts as y / s - t, whose round-off
    is never divided by s. The scale-then-shift order, (y - t) / s, loses ~|t| eps / s (checked too)."""
    module = flows.AffineCoupling("channel", 0, 8, 1, "sigmoid")
    x = jax.random.uniform(jax.random.key(0), (256, 4))
    params = module.init(jax.random.key(1), x, method="forward_and_log_det")["params"]
    params["conditioner"]["Dense_1"]["bias"] = jnp.array([-9.0, -9.0, 3.0, 3.0])  # raw = -9, t = 3
    y, ld = module.apply({"params": params}, x, method="forward_and_log_det")
    back, _ = module.apply({"params": params}, y, method="inverse_and_log_det")
    s = jax.nn.sigmoid(jnp.float32(-7.0))
    np.testing.assert_allclose(ld, 2 * np.log(s), rtol=1e-5)
    assert float(jnp.max(jnp.abs(back - x))) < 1e-5
    scale_then_shift = ((x[:, 2:] * s + 3.0) - 3.0) / s  # the other order, same float32 arithmetic
    assert float(jnp.max(jnp.abs(scale_then_shift - x[:, 2:]))) > 1e-5


def test_glow_coupling_scale_floor():
    """exp(s) = min_scale + (1 - min_scale) sigmoid(raw + 2) never drops below min_scale; a floor outside [0, 1) is a ValueError."""
    module = flows.AffineCoupling("channel", 0, 8, 1, "sigmoid", min_scale=0.1)
    x = jax.random.uniform(jax.random.key(0), (16, 4))
    params = module.init(jax.random.key(1), x, method="forward_and_log_det")["params"]
    params["conditioner"]["Dense_1"]["bias"] = jnp.array([-50.0, 0.0, 0.0, 0.0])  # raw = -50: sigmoid ~ 0
    _, ld = module.apply({"params": params}, x, method="forward_and_log_det")
    np.testing.assert_allclose(ld, np.log(0.1) + np.log(0.1 + 0.9 * jax.nn.sigmoid(2.0)), rtol=1e-5)
    with pytest.raises(ValueError, match="min_scale"):
        flows.AffineCoupling("channel", 0, 8, 1, "sigmoid", min_scale=1.0).init(jax.random.key(1), x)
    with pytest.raises(ValueError, match="min_scale"):
        gm_jax.create("glow_mnist", min_scale=-0.1)


def test_bits_per_dim_constant():
    # the uniform density on [0, 1]^D (log p(x~) = 0) is 8 bits per dimension exactly
    np.testing.assert_allclose(flows.bits_per_dim(jnp.zeros(3), 784), 8.0, rtol=0, atol=1e-6)
    # a density 2^D on [0, 1/2]^D: 7 bits per dimension
    np.testing.assert_allclose(flows.bits_per_dim(jnp.asarray(10 * math.log(2.0)), 10), 7.0, atol=1e-6)


class _IdentityImageFlow(ImageFlowExperiment):
    name = "identity_flow"

    def build_flow(self):
        return flows.Chain([])


def test_image_log_prob_dequantization_matches_known_answer():
    """Identity flow = standard normal density on x~ = (x + u)/256: log_prob must equal
    sum log N(x~) - D ln 256, and the bits/dim formula agrees with it."""
    exp = _IdentityImageFlow(image_flow_config(config_lib.base_config()))
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype(np.uint8)
    key = jax.random.key(3)
    x_t = np.asarray(flows.dequantize(key, jnp.asarray(x)), np.float64)
    assert np.all((x_t * 256 >= x) & (x_t * 256 < x.astype(int) + 1))  # x~ lies in [x, x + 1) / 256
    expected = stats.norm.logpdf(x_t).reshape(4, -1).sum(1) - 784 * math.log(256)
    got = np.asarray(exp.log_prob({}, jnp.asarray(x), key))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(flows.bits_per_dim(got + 784 * math.log(256), 784), -got / (784 * math.log(2)),
                               rtol=1e-6)


def test_toy_flow_density_integrates_to_one():
    model = gm_jax.create("realnvp_toy", num_layers=2, hidden=8, grid_size=200, grid_limit=6.0,
                          init_batch_size=64)
    _, integral = model.experiment.density_on_grid(model.params)
    assert abs(integral - 1.0) < 0.01


def test_toy_sampling_and_bad_input():
    model = gm_jax.create("realnvp_toy", num_layers=2, hidden=8, init_batch_size=64)
    a = model.sample(jax.random.key(0), 50)
    b = model.sample(jax.random.key(0), 50)
    c = model.sample(jax.random.key(1), 50)
    assert a.shape == (50, 2) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert np.all(np.asarray(model.sample(jax.random.key(0), 5, temperature=0.0)) ==
                  np.asarray(model.sample(jax.random.key(7), 5, temperature=0.0)))
    lp = model.log_prob(np.asarray(a))
    assert lp.shape == (50,) and np.all(np.isfinite(lp))
    with pytest.raises(ValueError, match="finite"):
        model.log_prob(np.array([[0.0, np.nan]], np.float32))
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        model.log_prob(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(jax.random.key(0), 4, temperature=-1.0)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(jax.random.key(0), 4, temperature=float("nan"))


@pytest.fixture(scope="module")
def tiny_glow(mnist_dir):
    return gm_jax.create("glow_mnist", steps_per_level=1, hidden=8, init_batch_size=16, batch_size=16,
                         warmup_steps=1, num_steps=40, learning_rate=3e-3)


def test_glow_sampling_determinism_and_bad_input(tiny_glow):
    model = tiny_glow
    a = model.sample(jax.random.key(0), 4)
    assert a.shape == (4, 28, 28, 1) and a.dtype == jnp.uint8
    np.testing.assert_array_equal(a, model.sample(jax.random.key(0), 4))
    assert not np.array_equal(a, model.sample(jax.random.key(1), 4))
    assert not np.array_equal(a, model.sample(jax.random.key(0), 4, temperature=0.5))
    x = np.asarray(a)
    lp = model.log_prob(x, key=jax.random.key(0))
    assert lp.shape == (4,) and np.all(np.isfinite(lp))
    np.testing.assert_array_equal(lp, model.log_prob(x, key=jax.random.key(0)))
    with pytest.raises(ValueError, match="PRNG key"):
        model.log_prob(x)
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(np.zeros((2, 32, 32, 1), np.uint8), key=jax.random.key(0))
    with pytest.raises(ValueError):
        model.log_prob(np.full((2, 28, 28, 1), np.nan, np.float32), key=jax.random.key(0))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(jax.random.key(0), 4, temperature=float("inf"))


def test_glow_training_lowers_the_loss_and_inverts_real_images(tiny_glow):
    from gm_jax.data import load_split
    from gm_jax.training.steps import TrainStep

    exp = tiny_glow.experiment
    state = exp.jit_init_state(jax.random.key(0))
    batch = {"image": load_split("mnist", "test")["image"][:64]}
    keys = jax.random.split(jax.random.key(5), 64)
    loss = jax.jit(lambda p: exp.loss_fn(p, batch, keys)[0])
    before = float(loss(state.params))
    step = TrainStep(exp.update, "none")
    state = step.put_state(state)
    batches = exp.train_batches(0)
    for i in range(exp.config.num_steps):
        state, _ = step(state, next(batches), jax.random.key(i))
    params = step.get_state(state).params
    after = float(loss(params))
    assert after < before - 0.5 * 784 * math.log(2) * 0.1, (before, after)  # at least 0.05 bits/dim better
    x_t = flows.dequantize(jax.random.key(1), jnp.asarray(batch["image"]))
    assert exp.reconstruction_error(params, x_t) < 1e-4
