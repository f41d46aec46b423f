"""The one autoregressive sampler core (`gm_jax.sampling`): `filter_logits` / `draw` / `ancestral`, and
every model's cached sampler drawing exactly its naive sampler's values for the same key
(`tests.properties.assert_cached_equals_naive`)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax import sampling
from gm_jax.models import pixelcnn as pc
from gm_jax.models import transformer, wavenet
from properties import assert_cached_equals_naive, random_params
from test_contract import check_conditionals


def _kept(x):
    return np.isfinite(np.asarray(x))[0]


# -- filter_logits / draw ---------------------------------------------------------------------------
def test_filter_logits_top_k_top_p_temperature():
    logits = jnp.log(jnp.array([[0.05, 0.4, 0.1, 0.3, 0.15]]))
    np.testing.assert_array_equal(_kept(sampling.filter_logits(logits, top_k=2)), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(_kept(sampling.filter_logits(logits, top_k=0)), [1, 1, 1, 1, 1])
    # nucleus: 0.4 + 0.3 = 0.7 < 0.75, so 0.15 is needed too
    np.testing.assert_array_equal(_kept(sampling.filter_logits(logits, top_p=0.75)), [0, 1, 0, 1, 1])
    np.testing.assert_array_equal(_kept(sampling.filter_logits(logits, top_p=0.7)), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(_kept(sampling.filter_logits(logits, top_p=0.01)), [0, 1, 0, 0, 0])
    np.testing.assert_allclose(sampling.filter_logits(logits, temperature=0.5), logits * 2, rtol=1e-6)
    # traced arguments under jit
    f = jax.jit(sampling.filter_logits)
    np.testing.assert_array_equal(_kept(f(logits, 1.0, 3, 1.0)), [0, 1, 0, 1, 1])
    draws = jax.vmap(lambda k: sampling.draw(k, logits[0], top_k=1))(jax.random.split(jax.random.key(0), 50))
    assert set(np.asarray(draws).tolist()) == {1}


def test_top_p_one_keeps_every_token():
    """top_p = 1 disables the nucleus filter, even where the float32 cumulative sum reaches 1 before the tail
    (a defect of the old filter: [0, -20] lost its second token, and about a third of random 65-way rows
    lost tokens of probability up to 3e-7)."""
    np.testing.assert_array_equal(_kept(sampling.filter_logits(jnp.array([[0.0, -20.0]]), 1.0, 0, 1.0)), [1, 1])
    logits = 4.0 * jax.random.normal(jax.random.key(0), (300, 65))
    for f in (sampling.filter_logits, jax.jit(sampling.filter_logits)):
        assert np.isfinite(np.asarray(f(logits, 1.0, 0, 1.0))).all()


def test_draw_frequencies():
    p = np.array([0.1, 0.6, 0.3])
    draws = sampling.draw(jax.random.key(1), jnp.log(jnp.broadcast_to(p, (20000, 3))))
    assert draws.dtype == jnp.int32
    np.testing.assert_allclose(np.bincount(np.asarray(draws), minlength=3) / 20000, p, atol=0.015)


def test_draw_bernoulli_is_u_below_sigmoid():
    """A Bernoulli draw is `u < sigmoid(logit / temperature)` with u ~ U(0, 1) from the key: the same values as
    `jax.random.bernoulli` (and as the PixelCNN samplers drew before the core existed)."""
    logits = jax.random.normal(jax.random.key(2), (5000,)) * 2.0
    key = jax.random.key(3)
    x = sampling.draw(key, logits, event="bernoulli")
    assert x.dtype == jnp.int32 and x.shape == (5000,)
    u = jax.random.uniform(key, (5000,))
    np.testing.assert_array_equal(np.asarray(x), np.asarray(u < jax.nn.sigmoid(logits)))
    np.testing.assert_array_equal(np.asarray(sampling.draw(key, logits, 0.5, event="bernoulli")),
                                  np.asarray(jax.random.bernoulli(key, jax.nn.sigmoid(logits / 0.5))))
    with pytest.raises(ValueError, match="event"):
        sampling.draw(key, logits, event="gaussian")


@pytest.mark.parametrize("bad", [dict(length=0), dict(length=-3), dict(temperature=0.0), dict(temperature=-1.0),
                                 dict(top_k=-1), dict(top_p=0.0), dict(top_p=1.5), dict(length=2.5)])
def test_check_sampling_args(bad):
    args = {"length": 4, "temperature": 1.0, "top_k": 0, "top_p": 1.0, **bad}
    with pytest.raises(ValueError):
        sampling.check_sampling_args(**args)


# -- ancestral --------------------------------------------------------------------------------------
def test_ancestral_keys_given_positions_and_cache():
    """Position i draws with fold_in(key, i) from the step's logits; positions below `given` keep their values
    (the step still reads them); the cache is threaded through every visited position."""
    table = jax.random.normal(jax.random.key(0), (6, 6))  # logits of x_i given x_{i-1}

    def step(count, x, i):
        return table[jax.lax.dynamic_index_in_dim(x, i - 1, 1, keepdims=False)], count + 1

    x0 = jnp.zeros((3, 10), jnp.int32).at[:, :3].set(jnp.array([[1, 2, 3], [0, 0, 0], [5, 4, 3]]))
    key = jax.random.key(7)
    x, count = jax.jit(lambda x0: sampling.ancestral(step, jnp.int32(0), x0, key, 1, given=3, top_k=4))(x0)
    assert int(count) == 9 and x.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(x[:, :3]), np.asarray(x0[:, :3]))
    expect = jax.jit(jax.vmap(lambda i, prev: sampling.draw(jax.random.fold_in(key, i), table[prev], top_k=4),
                              in_axes=(0, 1), out_axes=1))(jnp.arange(3, 10), x[:, 2:9])
    np.testing.assert_array_equal(np.asarray(x[:, 3:]), np.asarray(expect))
    # stop: only positions start .. stop - 1 are drawn
    y, _ = sampling.ancestral(step, jnp.int32(0), x0, key, 1, 5, given=3)
    np.testing.assert_array_equal(np.asarray(y[:, 5:]), 0)


# -- cached == naive, model by model -------------------------------------------------------------
@pytest.mark.parametrize("kind,num_values", [("pixelcnn", 2), ("pixelcnn", 256), ("gated_conditional", 2),
                                             ("gated", 256)])
def test_pixelcnn_cached_equals_naive(kind, num_values):
    shape = (7, 8, 1)
    labels = None
    if kind == "pixelcnn":
        model = pc.PixelCNN(image_shape=shape, num_values=num_values, features=8, num_layers=2,
                            first_kernel=5, output_features=8)
    else:
        ncls = 3 if kind == "gated_conditional" else 0
        model = pc.GatedPixelCNN(image_shape=shape, num_values=num_values, features=8, num_layers=3, kernel_size=5,
                                 num_classes=ncls, output_features=8)
        labels = jnp.array([0, 2, 1]) if ncls else None
    params = random_params(model, jnp.zeros((1, *shape), jnp.int32), None if labels is None else labels[:1],
                           shrink=("out_b",) if num_values == 2 else ())
    naive = jax.jit(lambda k: pc.sample_naive(model, params, k, 3, labels))
    cached = jax.jit(lambda k: pc.sample_cached(model, params, k, 3, labels))
    a = assert_cached_equals_naive(naive, cached, jax.random.key(0))
    assert_cached_equals_naive(naive, cached, jax.random.key(1))
    assert a.shape == (3, *shape) and a.dtype == np.uint8
    if num_values == 2:
        assert 0.15 < a.mean() < 0.85  # not a degenerate all-0 / all-1 comparison
    else:
        assert len(np.unique(a)) > 20
    assert not np.array_equal(a, np.asarray(naive(jax.random.key(1))))


def test_wavenet_cached_equals_naive():
    model = wavenet.WaveNet(dilation_seq=wavenet.dilations(3, 2), residual_channels=8, skip_channels=8, cond_dim=4)
    params = wavenet.init_params(model, jax.random.key(0))
    digit, speaker = jnp.array([0, 7, 7]), jnp.array([1, 1, 4])
    naive = jax.jit(wavenet.sample_naive, static_argnums=(0, 5))
    cached = jax.jit(wavenet.sample_cached, static_argnums=(0, 5))
    b = assert_cached_equals_naive(naive, cached, model, params, jax.random.key(3), digit, speaker, 50)
    assert_cached_equals_naive(naive, cached, model, params, jax.random.key(3), digit, speaker, 50, 0.7)
    assert b.shape == (3, 50) and b.dtype == np.int32
    c = np.asarray(cached(model, params, jax.random.key(4), digit, speaker, 50))
    assert (c != b).mean() > 0.5  # another key gives other samples
    # sample t depends only on keys/samples before it: a longer run extends a shorter one
    np.testing.assert_array_equal(np.asarray(cached(model, params, jax.random.key(3), digit, speaker, 20)), b[:, :20])


@pytest.mark.parametrize("positions,length,kw", [("learned", 10, {}), ("learned", 40, dict(temperature=0.8, top_k=5)),
                                                 ("learned", 30, dict(top_p=0.9)), ("sinusoidal", 40, {})])
def test_transformer_cached_equals_naive(positions, length, kw):
    # length 40 from a 3-token prompt exceeds block_size 16: the context restarts, in both samplers alike
    model = transformer.GPT(vocab_size=11, block_size=16, dim=32, num_layers=2, num_heads=4, positions=positions)
    params = transformer.init_params(model, jax.random.key(0))
    prompt = jnp.array([[1, 2, 3], [4, 5, 6]], jnp.int32)
    a = assert_cached_equals_naive(transformer.sample_naive, transformer.sample_cached, model, params,
                                   jax.random.key(7), prompt, length, **kw)
    assert a.shape == (2, 3 + length)
    np.testing.assert_array_equal(a[:, :3], np.asarray(prompt))
    other = transformer.sample_cached(model, params, jax.random.key(8), prompt, length, **kw)
    assert not np.array_equal(np.asarray(other), a)



# -- the public API: Model.sample(method=...) (naive == cached for every experiment: tests/test_contract.py) ----
def _fresh_model(name):
    from gm_jax import config as config_lib
    from gm_jax.api import Model, get_experiment_module

    module = get_experiment_module(name)
    experiment = module.Experiment(config_lib.apply_overrides(module.get_test_config(), {}, name))
    return Model(experiment, jax.eval_shape(experiment.init_params, jax.random.key(0)))  # shapes suffice here


def test_unknown_sample_method_is_a_value_error():
    model = _fresh_model("pixelcnn_mnist")
    with pytest.raises(ValueError, match=r"method must be one of \['cached', 'naive'\]"):
        model.sample(jax.random.key(3), 2, method="fast")
    model = _fresh_model("realnvp_toy")
    with pytest.raises(ValueError, match="single sampler"):
        model.sample(jax.random.key(0), 2, method="naive")


@pytest.mark.parametrize("name,overrides,labels,sample_kw", [
    ("gated_pixelcnn_mnist", {"conditional": True}, {"labels": list(range(10))}, {}),
    ("wavenet_digits", {}, None, {"seconds": 0.002}),
])
def test_conditioned_per_position_log_probs_marginalise_to_log_prob(name, overrides, labels, sample_kw):
    """For models whose log_prob marginalises over labels, the per-position terms need the labels, and
    logsumexp over every label of their sums, minus log(#labels), is log_prob (a uniform label prior)."""
    from gm_jax import config as config_lib
    from gm_jax.api import Model, get_experiment_module
    from gm_jax.data import audio

    module = get_experiment_module(name)
    experiment = module.Experiment(config_lib.apply_overrides(module.get_test_config(), overrides, name))
    model = Model(experiment, experiment.params_of(experiment.jit_init_state(jax.random.key(0))))
    x = np.asarray(model.sample(jax.random.key(1), 2, **sample_kw))
    if labels is not None:
        pairs = [{"labels": y} for y in labels["labels"]]
    else:
        pairs = [{"digit": d, "speaker": s} for d in range(len(audio.DIGITS)) for s in audio.SPEAKERS]
    per = [np.asarray(model.log_prob_per_position(x, **c)) for c in pairs]
    sums = np.stack([p.reshape(2, -1).sum(-1) for p in per])
    expected = np.asarray(model.log_prob(x))
    np.testing.assert_allclose(jax.scipy.special.logsumexp(sums, axis=0) - np.log(len(pairs)), expected,
                               rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="need"):
        model.log_prob_per_position(x)  # the marginal has no per-position terms
    # the per-position distributions given the labels give those terms (as in tests/test_contract.py)
    check_conditionals(model, x, per[-1], **pairs[-1])
    with pytest.raises(ValueError, match="need"):
        model.conditionals(x)


def test_conditionals_in_batches_are_one_call():
    """Inputs larger than eval_batch_size: the dict of conditionals is concatenated batch by batch."""
    from gm_jax import config as config_lib
    from gm_jax.api import Model, get_experiment_module

    module = get_experiment_module("lstm_jsb")
    experiment = module.Experiment(config_lib.apply_overrides(module.get_test_config(), {"eval_batch_size": 1},
                                                              "lstm_jsb"))
    rng = np.random.default_rng(0)  # random parameters of the right shapes (no init to compile)
    params = jax.tree_util.tree_map(lambda s: rng.normal(size=s.shape).astype(s.dtype),
                                    jax.eval_shape(experiment.init_params, jax.random.key(0)))
    model = Model(experiment, params)
    x = (rng.random((2, 2, 88)) < 0.1).astype(np.uint8)
    got = model.conditionals(x)  # two batches of 1
    assert set(got) == {"logits"} and got["logits"].shape == (2, 2, 88)
    parts = [model.conditionals(x[:1])["logits"], model.conditionals(x[1:])["logits"]]  # one call each
    np.testing.assert_array_equal(got["logits"], np.concatenate(parts))


def test_log_prob_per_position_of_a_model_that_is_not_autoregressive():
    model = _fresh_model("realnvp_toy")
    with pytest.raises(NotImplementedError, match="not autoregressive"):
        model.log_prob_per_position(np.zeros((2, 2), np.float32))
    with pytest.raises(NotImplementedError, match="not autoregressive"):
        model.conditionals(np.zeros((2, 2), np.float32))
    model = _fresh_model("charrnn_shakespeare")
    with pytest.raises(ValueError, match="takes no conditioning"):
        model.log_prob_per_position(np.zeros((2, 5), np.int32), labels=1)
