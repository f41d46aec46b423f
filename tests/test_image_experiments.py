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
    model = gm_jax.create(name, **extra)
    for v in bad_values:
        with pytest.raises(ValueError):
            model.log_prob(np.full((2, 28, 28, 1), v, np.int32))
    ok = np.zeros((2, 28, 28, 1), np.uint8)
    lp = model.log_prob(ok)
    assert lp.shape == (2,) and np.isfinite(np.asarray(lp)).all() and (np.asarray(lp) < 0).all()


def test_conditional_gated_handle_samples_with_labels():
    model = gm_jax.create("gated_pixelcnn_mnist", conditional=True, kernel_size=3, **_TINY)
    assert model.experiment.conditioning == ("labels",)
    x = model.sample(jax.random.key(0), 2, labels=jnp.array([3, 7]))
    assert x.shape == (2, 28, 28, 1) and x.dtype == jnp.uint8 and int(x.max()) <= 1
    lp = model.log_prob(x)  # marginal over the 10 labels
    assert np.isfinite(np.asarray(lp)).all()


def test_paper_configs_set_the_published_sizes():
    from experiments import gated_pixelcnn_mnist, pixelcnn_mnist, pixelcnn_pp_mnist

    e = pixelcnn_mnist.Experiment(pixelcnn_mnist.get_paper_config())
    assert (e.config.features, e.config.num_layers) == (64, 15)
    e = pixelcnn_pp_mnist.Experiment(pixelcnn_pp_mnist.get_paper_config())
    assert (e.config.features, e.config.num_resnet, e.config.num_mixtures) == (160, 5, 10)
    e = gated_pixelcnn_mnist.Experiment(gated_pixelcnn_mnist.get_paper_config())
    assert e.config.num_layers == 15


def test_gated_experiment_trains_on_fixed_binarized_mnist(binarized_mnist_dir, tmp_path):
    from gm_jax.training.loop import train_and_evaluate

    exp = gm_jax.api.build("gated_pixelcnn_mnist", num_steps=3, batch_size=8, log_every=1, progress_bar=False,
                           eval_batch_size=2000, kernel_size=3, **_TINY)
    results = train_and_evaluate(exp, tmp_path)
    assert 100 < results["test_nll_nats"] < 784 * np.log(2) + 1  # finite, at most ~uniform after 3 steps
    assert (tmp_path / "samples.png").is_file() and (tmp_path / "results.json").is_file()


def test_pixelcnn_pp_loss_on_real_batch(mnist_dir):
    exp = gm_jax.api.build("pixelcnn_pp_mnist", features=4, num_mixtures=2, batch_size=4)
    params = exp.init_params(jax.random.key(0))
    batch = next(exp.train_batches(0))
    loss, metrics = exp.loss_fn(params, batch, jax.random.split(jax.random.key(1), 4))
    assert np.isfinite(float(loss)) and 0 < float(metrics["bits_per_dim"]) < 12
