"""Experiment-level tests of the image-likelihood family (the handle, configs, short real-data runs)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax

_TINY = {"features": 4, "num_layers": 1, "output_features": 4}


@pytest.mark.parametrize("name,extra,bad_values", [
    ("pixelcnn_mnist", _TINY, [2, -1]),
    ("gated_pixelcnn_mnist", {**_TINY, "kernel_size": 3}, [2, -1, 255]),
    ("pixelcnn_pp_mnist", {"features": 4, "num_mixtures": 2}, [256, -1]),
])
def test_handle_rejects_out_of_range_pixels(name, extra, bad_values):
    # the input check runs before the parameters are used, so their shapes suffice (no init, no compile);
    # finite log_prob values on valid data are checked for every experiment by tests/test_contract.py
    experiment = gm_jax.build(name, **extra)
    model = gm_jax.Model(experiment, jax.eval_shape(experiment.init_params, jax.random.key(0)))
    for v in bad_values:
        with pytest.raises(ValueError, match="values in"):
            model.log_prob(np.full((2, 28, 28, 1), v, np.int32))
    ok = experiment.check_data(np.zeros((2, 28, 28, 1), np.int32))
    assert ok.shape == (2, 28, 28, 1) and ok.dtype == jnp.uint8


def test_conditional_gated_handle_samples_with_labels():
    model = gm_jax.create("gated_pixelcnn_mnist", conditional=True, kernel_size=3, **_TINY)
    assert model.experiment.conditioning == ("labels",)
    x = model.sample(jax.random.key(0), 2, labels=jnp.array([3, 7]))
    assert x.shape == (2, 28, 28, 1) and x.dtype == jnp.uint8 and int(x.max()) <= 1
    lp = model.log_prob(x)  # marginal over the 10 labels
    assert np.isfinite(np.asarray(lp)).all()


@pytest.mark.parametrize("name,expected", [
    ("pixelcnn_mnist", {"features": 64, "num_layers": 15, "output_features": 256, "learning_rate": 3e-4}),
    ("gated_pixelcnn_mnist", {"features": 128, "num_layers": 15, "kernel_size": 7}),
    ("pixelcnn_pp_mnist", {"features": 160, "num_resnet": 5, "num_mixtures": 10, "lr_decay": 0.999995}),
    ("vae_mnist", {"hidden": (200, 200), "latent_dim": 50, "dataset": "mnist", "iwae_k": 5000}),
    ("realnvp_mnist", {"couplings": 3, "hidden": 64, "logit_alpha": 0.05}),
    ("glow_mnist", {"steps_per_level": 32, "hidden": 512, "min_scale": 0.0, "preprocess": "center"}),
])
def test_paper_configs_set_the_published_sizes(name, expected):
    """`get_paper_config()` (what `--paper` and `create(name, paper=True)` start from) holds the paper's values
    and builds (the model is constructed, not initialised: paper sizes are accelerator runs)."""
    config = gm_jax.api.get_config(name, paper=True)
    assert {k: config[k] for k in expected} == expected
    experiment = gm_jax.build(name, paper=True)
    assert experiment.config.to_dict() == config.to_dict()


def test_schema_errors_name_the_field():
    with pytest.raises(ValueError, match="config.sampler='fast'.*valid choices"):
        gm_jax.build("pixelcnn_mnist", sampler="fast")
    with pytest.raises(ValueError, match="config.dataset='cifar10'"):
        gm_jax.build("vae_mnist", dataset="cifar10")
    with pytest.raises(ValueError, match="num_levels"):
        gm_jax.build("glow_mnist", num_levels=3)
    with pytest.raises(ValueError, match="dropout"):
        gm_jax.build("pixelcnn_pp_mnist", dropout=1.0)


def test_conditional_gated_switches_to_labelled_mnist():
    experiment = gm_jax.build("gated_pixelcnn_mnist", conditional=True, data_dir="synthetic", kernel_size=3, **_TINY)
    assert experiment.config.dataset == "mnist" and set(experiment.load("test")) == {"image", "label"}
    fixed = experiment.load("test", 4, jax.random.key(0))["image"]  # one fixed dynamic binarization
    assert fixed.dtype == np.uint8 and fixed.max() <= 1
    np.testing.assert_array_equal(fixed, experiment.load("test", 4, jax.random.key(0))["image"])


def test_gated_experiment_trains_on_fixed_binarized_mnist(binarized_mnist_dir, tmp_path):
    from gm_jax.training.loop import train_and_evaluate

    exp = gm_jax.api.build("gated_pixelcnn_mnist", num_steps=3, batch_size=8, log_every=1, progress_bar=False,
                           eval_batch_size=2000, kernel_size=3, **_TINY)
    results = train_and_evaluate(exp, tmp_path)
    assert 100 < results["test_nll_nats"] < 784 * np.log(2) + 1  # finite, at most ~uniform after 3 steps
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "results.json").is_file()


def test_pixelcnn_pp_loss_on_real_batch(mnist_dir):
    exp = gm_jax.api.build("pixelcnn_pp_mnist", features=4, num_mixtures=2, num_levels=1, batch_size=4)
    params = exp.jit_init_state(jax.random.key(0)).params  # jitted: eagerly, every op compiles its own program
    batch = next(exp.train_batches(0))
    loss, metrics = jax.jit(exp.loss_fn)(params, batch, jax.random.split(jax.random.key(1), 4))
    assert np.isfinite(float(loss)) and 0 < float(metrics["bits_per_dim"]) < 12


def test_shared_evaluation_reports_nats_bits_and_the_unit_statement():
    """One evaluation for the family: test NLL in nats, bits/dim = nats / (784 ln 2), the statement of what
    the bits are of, and the train subset where the experiment reports it (VAE: the ELBO)."""
    from experiments import vae_mnist

    experiment = gm_jax.build("vae_mnist", config=vae_mnist.get_test_config())
    results = experiment.evaluate(experiment.jit_init_state(jax.random.key(0)).params, jax.random.key(1))
    np.testing.assert_allclose(results["test_bits_per_dim"], results["test_nll_nats"] / (784 * np.log(2)), rtol=1e-12)
    assert {"test_neg_elbo_nats", "test_recon_nats", "test_kl_nats", "train_neg_elbo_nats", "discretization",
            "iwae_k"} <= set(results)
    np.testing.assert_allclose(results["test_neg_elbo_nats"], results["test_recon_nats"] + results["test_kl_nats"],
                               rtol=1e-5)
