"""GAN core (losses, two-player step), DCGAN / cGAN experiments (parallel agreement, samplers, bad labels)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax.models import gan
from gm_jax.training import TrainStep
from gm_jax.training.loop import train
from properties import D_FIELDS, G_FIELDS, assert_updates_only, trees_differ

TINY_DCGAN = dict(z_dim=8, g_channels=(8, 4), d_channels=(4, 8), batch_size=8, progress_bar=False,
                  eval_batch_size=16, num_eval_samples=32, clusters=0, pack=1)  # the plain DCGAN: no k-means


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# -- losses -------------------------------------------------------------------------------------
LOGITS = np.array([-3.0, -0.5, 0.0, 2.0], np.float32)


def test_saturating_loss_value_and_gradient():
    value, grad = jax.value_and_grad(gan.generator_loss_saturating)(jnp.asarray(LOGITS))
    np.testing.assert_allclose(value, np.mean(np.log(1.0 - _sigmoid(LOGITS))), rtol=1e-6)
    np.testing.assert_allclose(grad, -_sigmoid(LOGITS) / len(LOGITS), rtol=1e-5)


def test_non_saturating_loss_value_and_gradient():
    value, grad = jax.value_and_grad(gan.generator_loss_non_saturating)(jnp.asarray(LOGITS))
    np.testing.assert_allclose(value, np.mean(-np.log(_sigmoid(LOGITS))), rtol=1e-6)
    np.testing.assert_allclose(grad, (_sigmoid(LOGITS) - 1.0) / len(LOGITS), rtol=1e-5)


def test_saturation_when_the_discriminator_rejects_fakes():
    """At l = -30 (D(G(z)) ~ 1e-13) the saturating gradient vanishes, the non-saturating one is ~ -1/B;
    both losses stay finite for huge logits (computed from logits, no log(sigmoid) round trip)."""
    l = jnp.array([-30.0, -30.0])
    g_sat = jax.grad(gan.generator_loss_saturating)(l)
    g_ns = jax.grad(gan.generator_loss_non_saturating)(l)
    assert np.all(np.abs(g_sat) < 1e-12)
    np.testing.assert_allclose(g_ns, [-0.5, -0.5], rtol=1e-6)
    extreme = jnp.array([-200.0, 200.0])
    for fn in (gan.generator_loss_saturating, gan.generator_loss_non_saturating):
        assert np.isfinite(fn(extreme)) and np.all(np.isfinite(jax.grad(fn)(extreme)))
    np.testing.assert_allclose(gan.generator_loss_non_saturating(jnp.array([-200.0])), 200.0, rtol=1e-6)


def test_value_function_and_discriminator_loss():
    # D = 1/2 everywhere: V = 2 log(1/2)
    np.testing.assert_allclose(gan.value_function(jnp.zeros(3), jnp.zeros(5)), -2 * np.log(2), rtol=1e-6)
    real, fake = jnp.array([1.0, 2.0]), jnp.array([-1.0, 0.5, 0.0])
    expected = np.mean(np.log(_sigmoid(np.array([1.0, 2.0])))) + np.mean(np.log(1 - _sigmoid(np.array([-1.0, 0.5, 0.0]))))
    np.testing.assert_allclose(gan.value_function(real, fake), expected, rtol=1e-6)
    np.testing.assert_allclose(gan.discriminator_loss(real, fake), -expected, rtol=1e-6)
    with pytest.raises(ValueError, match="non_saturating"):
        gan.generator_loss("minimax")


# -- the two-player step ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dcgan_and_state():
    experiment = gm_jax.build("cgan_mnist", **TINY_DCGAN)
    state = experiment.jit_init_state(jax.random.key(0))
    rng = np.random.default_rng(0)
    batch = {"image": rng.integers(0, 256, (8, 28, 28, 1)).astype(np.uint8),
             "label": rng.integers(0, 10, 8).astype(np.int32)}
    return experiment, state, batch


def test_each_phase_updates_only_its_player(dcgan_and_state):
    experiment, state, batch = dcgan_and_state
    x, y = experiment.real_inputs(batch)
    keys = jax.random.split(jax.random.key(1), 8)
    after_d, d_metrics = jax.jit(experiment.gan.discriminator_phase)(state, x, y, keys)
    assert_updates_only(state, after_d, D_FIELDS, G_FIELDS)
    assert 0 < float(d_metrics["d_real"]) < 1 and np.isfinite(float(d_metrics["d_loss"]))

    after_g, g_metrics = jax.jit(experiment.gan.generator_phase)(state, y, keys)
    assert_updates_only(state, after_g, G_FIELDS, D_FIELDS)
    assert np.isfinite(float(g_metrics["g_loss"]))


def test_k_discriminator_updates_per_generator_update():
    experiment = gm_jax.build("gan_toy", k=3, g_hidden=(8,), d_hidden=(8,), batch_size=16)
    state = experiment.jit_init_state(jax.random.key(0))
    batch = next(experiment.train_batches(0))
    new, metrics = jax.jit(experiment.update)(state, batch, jax.random.split(jax.random.key(1), 16))
    assert int(new.step) == 1
    assert int(new.d_opt_state[0].count) == 3 and int(new.g_opt_state[0].count) == 1  # optax adam counts
    assert {"loss", "d_loss", "g_loss", "d_real", "d_fake", "value"} <= set(metrics)
    np.testing.assert_allclose(metrics["loss"], metrics["d_loss"])


def test_generator_moving_average():
    """theta_ema <- d theta_ema + (1 - d) theta after each generator update; the sampler uses the average."""
    experiment = gm_jax.build("dcgan_mnist", **TINY_DCGAN, g_ema_decay=0.9)
    state = experiment.jit_init_state(jax.random.key(0))
    batch = {"image": np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)).astype(np.uint8),
             "label": np.zeros(8, np.int32)}
    step = TrainStep(experiment.update, "none")  # the training loop's step, which donates the state
    new, _ = step(step.put_state(jax.tree_util.tree_map(jnp.array, state)), batch, jax.random.key(1))
    for ema, before, after in (("g_ema_params", "g_params", "g_params"),
                               ("g_ema_batch_stats", "g_batch_stats", "g_batch_stats")):
        jax.tree_util.tree_map(lambda e, a, b: np.testing.assert_allclose(e, 0.9 * a + 0.1 * b, rtol=1e-5, atol=1e-7),
                               getattr(new, ema), getattr(state, before), getattr(new, after))
    assert trees_differ(new.g_ema_params, new.g_params)
    sampler_vars = experiment.params_of(new)
    assert sampler_vars["params"] is new.g_ema_params and sampler_vars["batch_stats"] is new.g_ema_batch_stats
    # off by default: no averages are kept and the sampler uses the current generator
    plain = gm_jax.build("dcgan_mnist", **TINY_DCGAN).init_state(jax.random.key(0))
    assert plain.g_ema_params == {} and plain.g_ema_batch_stats == {}
    with pytest.raises(ValueError, match="ema_decay"):
        gm_jax.build("dcgan_mnist", **TINY_DCGAN, g_ema_decay=1.0)


def test_jit_pmap_and_sharded_gan_steps_agree(dcgan_and_state):
    """cGAN with batch norm: cross-device batch statistics under pmap give the single-device update."""
    experiment, init, _ = dcgan_and_state
    rng = np.random.default_rng(1)
    batches = [{"image": rng.integers(0, 256, (8, 28, 28, 1)).astype(np.uint8),
                "label": rng.integers(0, 10, 8).astype(np.int32)} for _ in range(3)]
    final = {}
    for parallel in ("none", "pmap", "sharded"):
        step = TrainStep(experiment.update, parallel)
        state = step.put_state(jax.tree_util.tree_map(jnp.array, init))
        for i, batch in enumerate(batches):
            state, metrics = step(state, batch, jax.random.fold_in(jax.random.key(2), i))
        final[parallel] = (step.get_state(state), {k: float(v) for k, v in metrics.items()})
    ref, ref_metrics = final["none"]
    assert int(ref.step) == 3 and trees_differ(ref.g_params, init.g_params)
    for parallel in ("pmap", "sharded"):
        state, metrics = final[parallel]
        for field in ("g_params", "d_params", "g_batch_stats", "d_batch_stats"):
            jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b),
                                                                           rtol=2e-4, atol=2e-5),
                                   getattr(state, field), getattr(ref, field))
        for k in ref_metrics:
            np.testing.assert_allclose(metrics[k], ref_metrics[k], rtol=1e-4, atol=1e-6)


def test_pacgan_discriminator_judges_packs_and_steps_agree():
    """pack = 2: one logit per two consecutive examples, which sees those two only; the update
    agrees under jit, pmap and sharded jit (each device packs its own consecutive examples)."""
    experiment = gm_jax.build("dcgan_mnist", **{**TINY_DCGAN, "pack": 2})
    init = experiment.jit_init_state(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (8, 28, 28, 1), minval=-1.0, maxval=1.0)
    disc = jax.jit(lambda x: experiment.gan.discriminate(init.d_params, init.d_batch_stats, x))
    logits = disc(x)
    assert logits.shape == (4,)
    moved = np.asarray(disc(x.at[3].add(0.5)) != logits)
    np.testing.assert_array_equal(moved, [False, True, False, False])  # example 3 is in pack 1 with example 2
    batch = {"image": np.random.default_rng(1).integers(0, 256, (8, 28, 28, 1)).astype(np.uint8),
             "label": np.zeros(8, np.int32)}
    final = {}
    for parallel in ("none", "pmap", "sharded"):
        step = TrainStep(experiment.update, parallel)
        state, _ = step(step.put_state(jax.tree_util.tree_map(jnp.array, init)), batch, jax.random.key(2))
        final[parallel] = step.get_state(state)
    for parallel in ("pmap", "sharded"):
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5),
                               (final[parallel].d_params, final[parallel].g_params),
                               (final["none"].d_params, final["none"].g_params))
    for bad in (dict(pack=0), dict(pack=3)):  # batch 8 is not divisible by 3
        with pytest.raises(ValueError, match="pack"):
            gm_jax.build("dcgan_mnist", **{**TINY_DCGAN, **bad})
    with pytest.raises(ValueError, match="conditional"):
        gm_jax.build("cgan_mnist", **{**TINY_DCGAN, "pack": 2})


# -- samplers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["dcgan_mnist", "cgan_mnist", "gan_toy"])
def test_samplers_are_deterministic_per_key(name):
    overrides = TINY_DCGAN if name != "gan_toy" else dict(g_hidden=(8,), d_hidden=(8,))
    model = gm_jax.create(name, **overrides)
    a, b = model.sample(jax.random.key(5), 6), model.sample(jax.random.key(5), 6)
    c = model.sample(jax.random.key(6), 6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    if name == "gan_toy":
        assert a.shape == (6, 2) and a.dtype == jnp.float32
    else:
        assert a.shape == (6, 28, 28, 1) and a.dtype == jnp.uint8
    with pytest.raises(NotImplementedError, match="no explicit density"):
        model.log_prob(np.zeros((2, *model.experiment.data_shape), np.uint8 if name != "gan_toy" else np.float32))


def test_sampling_uses_eval_mode_batch_norm(dcgan_and_state):
    """Samples depend on the running averages, not on the other samples of the call."""
    experiment, state, _ = dcgan_and_state
    params = experiment.params_of(state)
    big = experiment.sample(params, jax.random.key(3), 6)
    keys = jax.random.split(jax.random.key(3), 6)
    z = experiment.gan.draw_noise(keys)
    one = gan.to_uint8(experiment.gan.generator.apply({"params": params["params"], "batch_stats": params["batch_stats"]},
                                                      z[:1], jnp.zeros(1, jnp.int32), train=False))
    np.testing.assert_array_equal(big[:1], one)
    moved = jax.tree_util.tree_map(lambda s: s + 1.0, params["batch_stats"])
    assert not np.array_equal(experiment.sample({**params, "batch_stats": moved}, jax.random.key(3), 6), big)


def test_conditional_labels_are_used_and_checked():
    model = gm_jax.create("cgan_mnist", **TINY_DCGAN)
    key = jax.random.key(0)
    zeros = model.sample(key, 4, labels=np.zeros(4, np.int32))
    sevens = model.sample(key, 4, labels=np.full(4, 7, np.int32))
    assert not np.array_equal(zeros, sevens)
    np.testing.assert_array_equal(model.sample(key, 4, labels=np.arange(4)), model.sample(key, 4))
    with pytest.raises(ValueError, match="shape"):
        model.sample(key, 4, labels=np.zeros(3, np.int32))  # wrong length
    with pytest.raises(ValueError, match="integers"):
        model.sample(key, 4, labels=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="0..9"):
        model.sample(key, 4, labels=np.array([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="0..9"):
        model.sample(key, 2, labels=[-1, 3])
    np.testing.assert_array_equal(model.experiment.check_conditioning(3)["labels"], [0, 1, 2])
    with pytest.raises(ValueError, match="0..9"):  # the experiment's own sampler checks concrete labels
        model.experiment.sample(model.params, key, 2, labels=np.array([3, 11]))
    with pytest.raises(ValueError, match="no conditioning"):
        gm_jax.create("dcgan_mnist", **TINY_DCGAN).sample(key, 2, labels=np.zeros(2, np.int32))


# -- toy problems ----------------------------------------------------------------------------------
def test_ring_metrics_on_real_data_and_on_a_collapsed_generator():
    from gm_jax.evaluation import toy as toy_eval

    experiment = gm_jax.build("gan_toy")
    c = experiment.config
    data = experiment.draw_data(np.random.default_rng(0), 2500)
    m = toy_eval.ring_metrics(data, experiment.centers(), c.ring_std, c.min_mode_samples)
    assert m["modes_covered"] == 8 and m["high_quality_fraction"] > 0.99  # 3 sigma holds 98.9% in 2-D
    collapsed = experiment.centers()[[0]] + 0.01 * np.random.default_rng(1).standard_normal((2500, 2))
    m = toy_eval.ring_metrics(collapsed, experiment.centers(), c.ring_std, c.min_mode_samples)
    assert m["modes_covered"] == 1 and m["high_quality_fraction"] == 1.0


def test_short_toy_run_writes_results_figures_and_loads(tmp_path):
    from gm_jax.training.loop import train_and_evaluate

    cfg = dict(g_hidden=(16,), d_hidden=(16,), num_steps=6, checkpoint_every=3, log_every=3, progress_bar=False,
               num_eval_samples=100, problem="gauss1d")
    results = train_and_evaluate(gm_jax.build("gan_toy", **cfg), tmp_path)
    assert results["step"] == 6 and np.isfinite(results["sample_mean"])
    for f in ("results.json", "samples.png", "training.png", "losses.png"):
        assert (tmp_path / f).is_file(), f
    model = gm_jax.load(tmp_path)
    assert model.step == 6
    assert model.sample(jax.random.key(0), 3).shape == (3, 1)


def test_dcgan_trains_and_loads_on_real_mnist(tmp_path, mnist_dir):
    state = train(gm_jax.build("dcgan_mnist", **dict(TINY_DCGAN, num_steps=4, checkpoint_every=2, log_every=2)),
                  tmp_path)
    model = gm_jax.load(tmp_path)
    assert model.step == 4
    jax.tree_util.tree_map(np.testing.assert_array_equal, model.params["batch_stats"], state.g_batch_stats)
    x = model.sample(jax.random.key(0), 2)
    assert x.shape == (2, 28, 28, 1) and x.dtype == jnp.uint8


def test_self_conditioned_dcgan_clusters_condition_and_sample(tmp_path, mnist_dir):
    """clusters = K: k-means ids of the training images condition both players; the sampler draws
    ids from the clusters' frequencies (kept in the state, so a loaded model samples the same)."""
    k = 3
    experiment = gm_jax.build("dcgan_mnist", **{**TINY_DCGAN, "clusters": k}, num_steps=2, checkpoint_every=2)
    cluster, log_prior = experiment.clusters()
    assert cluster.shape == (60000,) and cluster.dtype == np.int32 and set(np.unique(cluster)) == set(range(k))
    np.testing.assert_allclose(np.exp(log_prior), np.bincount(cluster) / 60000, rtol=1e-5)
    batch = next(experiment.train_batches(0))
    x, y = experiment.real_inputs(batch)
    assert y.shape == (8,) and np.all((0 <= y) & (y < k))
    state = experiment.jit_init_state(jax.random.key(0))  # jitted: eagerly every op compiles its own program
    np.testing.assert_allclose(state.label_log_prior, log_prior)
    params = experiment.params_of(state)
    # the cluster reaches G: the same z with another cluster id gives another image
    gen = jax.jit(lambda c: experiment.gan.generate(params["params"], params["batch_stats"], jax.random.key(1), 4,
                                                    jnp.full((4,), c, jnp.int32)))
    assert not np.array_equal(gen(0), gen(1))
    # the sampler's ids follow the prior: a prior on one cluster gives that cluster's images
    one = {**params, "label_log_prior": jnp.log(jnp.array([0.0, 1.0, 0.0]))}
    np.testing.assert_array_equal(experiment.jit_sample(one, jax.random.key(1), 4), gan.to_uint8(gen(1)))
    train(experiment, tmp_path)
    model = gm_jax.load(tmp_path)
    np.testing.assert_allclose(model.params["label_log_prior"], log_prior)
    np.testing.assert_array_equal(model.sample(jax.random.key(2), 5), model.sample(jax.random.key(2), 5))
    for bad in (dict(clusters=1), dict(clusters=3, pack=2)):
        with pytest.raises(ValueError, match="clusters|pack"):
            gm_jax.build("dcgan_mnist", **{**TINY_DCGAN, **bad})
    with pytest.raises(ValueError, match="clusters"):
        gm_jax.build("cgan_mnist", **{**TINY_DCGAN, "clusters": 3})


def test_linear_learning_rate_decay_option():
    tx = gan.dcgan_optimizer(1e-2, 0.5, decay_steps=3)
    params = {"w": jnp.ones(2)}
    state = tx.init(params)
    sizes = []
    for _ in range(4):
        updates, state = tx.update({"w": jnp.ones(2)}, state, params)
        sizes.append(float(jnp.abs(updates["w"]).max()))
    np.testing.assert_allclose(sizes[0], 1e-2, rtol=1e-3)  # Adam's first step has size lr
    assert sizes[0] > sizes[1] > sizes[2] > 0 and sizes[3] == 0.0  # linear to 0 after 3 updates
    with pytest.raises(ValueError, match="lr_decay"):
        gm_jax.build("dcgan_mnist", lr_decay="cosine")
