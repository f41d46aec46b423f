"""Paired translation GANs (`gm_jax.recipes.translation`): paired metrics, the content loss and baseline of
`gan.GAN`, input checks, and a two-step run of a tiny super-resolution translator on synthetic digits."""
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gm_jax.evaluation import paired
from gm_jax.models import gan
from gm_jax.nn import Conv
from gm_jax.recipes.translation import TranslationExperiment, translation_config
from gm_jax.training.loop import train_and_evaluate
from properties import assert_updates_only


# -- paired metrics (scikit-image) -----------------------------------------------------------------
def test_psnr_and_ssim_are_infinite_and_one_for_identical_images_and_fall_with_noise():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)
    assert np.all(np.isinf(paired.psnr(x, x))) and np.allclose(paired.ssim(x, x), 1.0)
    scores = []
    for std in (5.0, 20.0, 60.0):
        noisy = np.clip(x + rng.normal(0, std, x.shape), 0, 255).astype(np.uint8)
        m = paired.paired_metrics(x, noisy)
        scores.append((m["psnr_db"], m["ssim"], m["l1"]))
    psnrs, ssims, l1s = zip(*scores)
    assert psnrs[0] > psnrs[1] > psnrs[2] and ssims[0] > ssims[1] > ssims[2] and l1s[0] < l1s[1] < l1s[2]
    # PSNR from its definition, 10 log10(255^2 / MSE), on one image
    y = x[:1].astype(np.float64) + 3.0
    np.testing.assert_allclose(paired.psnr(x[:1], np.clip(y, 0, 255).astype(np.uint8)),
                               10 * np.log10(255.0 ** 2 / np.mean((np.clip(y, 0, 255) - x[:1]) ** 2)), rtol=1e-9)
    with pytest.raises(ValueError, match="one shape"):
        paired.paired_metrics(x, x[:2])
    with pytest.raises(ValueError, match="uint8"):
        paired.psnr(x.astype(np.float32), x.astype(np.float32))


# -- a tiny super-resolution translator ---------------------------------------------------------------
class _Upsampler(nn.Module):
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z, y, train: bool = True):
        h = jax.image.resize(y, (y.shape[0], 28, 28, y.shape[-1]), "nearest")
        h = nn.relu(Conv(4, (3, 3), padding="SAME")(h))
        return jnp.tanh(Conv(1, (3, 3), padding="SAME")(h))


class _TinySR(TranslationExperiment):
    name = "tiny_sr"
    input_shape = (7, 7, 1)
    input_note = "7x7 block means"
    method_names = ("gan", "mse")
    figure_rows = 4

    def make_input(self, images):
        x = np.asarray(images, np.float32).reshape(len(images), 7, 4, 7, 4, 1).mean((2, 4))
        return np.round(x).astype(np.uint8)

    def players(self):
        return _Upsampler(), gan.DCGANDiscriminator((4, 8)), 0

    def reference_outputs(self, images, inputs):
        return {"nearest": np.repeat(np.repeat(inputs, 4, 1), 4, 2)}


def _config(**kw):
    c = translation_config()
    c.data_dir = "synthetic"
    c.batch_size, c.num_steps, c.eval_batch_size, c.num_eval_images = 8, 2, 16, 24
    c.progress_bar, c.adversarial_weight = False, 0.5
    c.update(kw)
    return c


@pytest.fixture(scope="module")
def tiny():
    experiment = _TinySR(_config())
    state = experiment.init_state(jax.random.key(0))
    batch = next(experiment.train_batches())
    x, y = experiment.real_inputs(batch)
    return experiment, state, x, y


def test_each_step_changes_only_its_players_parameters(tiny):
    experiment, state, x, y = tiny
    keys = jax.random.split(jax.random.key(1), len(x))
    baseline = ("baseline_params", "baseline_opt_state")
    d_step, _ = experiment.gan.discriminator_phase(state, x, y, keys)
    assert_updates_only(state, d_step, ("d_params", "d_opt_state"), ("g_params", "g_opt_state", *baseline))
    g_step, g_metrics = experiment.gan.generator_phase(state, y, keys, x=x)
    assert_updates_only(state, g_step, ("g_params", "g_opt_state"), ("d_params", "d_opt_state", *baseline))
    # the generator's loss is the weighted content loss plus the weighted adversarial term
    np.testing.assert_allclose(g_metrics["g_loss"], g_metrics["content"] + 0.5 * g_metrics["g_adversarial"], rtol=1e-6)
    b_step, b_metrics = experiment.gan.baseline_phase(state, x, y, keys)
    assert_updates_only(state, b_step, baseline, ("g_params", "g_opt_state", "d_params", "d_opt_state"))
    # the baseline starts as the adversarial generator (same initialisation), so its content loss is G's
    np.testing.assert_allclose(b_metrics["baseline_content"], g_metrics["content"], rtol=1e-6)
    with pytest.raises(ValueError, match="real x"):
        experiment.gan.generator_phase(state, y, keys)


def test_sample_checks_its_inputs(tiny):
    experiment, state, _, _ = tiny
    params, key = experiment.params_of(state), jax.random.key(0)
    good = np.zeros((2, 7, 7, 1), np.uint8)
    assert experiment.sample(params, key, 2, inputs=good).shape == (2, 28, 28, 1)
    with pytest.raises(ValueError, match=r"\[2, 7, 7, 1\].*got shape \(2, 28, 28, 1\)"):
        experiment.sample(params, key, 2, inputs=np.zeros((2, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match="values in"):
        experiment.sample(params, key, 2, inputs=np.full((2, 7, 7, 1), 300))
    with pytest.raises(ValueError, match="dtype"):
        experiment.sample(params, key, 2, inputs=good.astype(np.float32))
    with pytest.raises(ValueError, match="give inputs"):
        experiment.check_conditioning(2)
    with pytest.raises(ValueError, match="generator='bicubic'"):
        experiment.check_conditioning(2, inputs=good, generator="bicubic")
    no_baseline = _TinySR(_config(baseline=False))
    with pytest.raises(ValueError, match=r"valid choices: \['adversarial'\]"):
        no_baseline.check_conditioning(2, inputs=good, generator="baseline")


def test_two_steps_train_evaluate_and_write_every_method(tmp_path):
    experiment = _TinySR(_config())
    results = train_and_evaluate(experiment, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["methods"] == ["nearest", "mse", "gan"] and results["num_eval_images"] == 24
    for method in saved["methods"]:
        assert 0 <= saved[f"{method}_l1"] <= 1 and -1 <= saved[f"{method}_ssim"] <= 1
        assert np.isfinite(saved[f"{method}_mnist_fid"]) and 0 <= saved[f"{method}_classifier_accuracy"] <= 1
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"content", "g_adversarial", "baseline_content", "d_loss"} <= set(records[-1])
    assert (tmp_path / "comparison.png").stat().st_size > 0 and (tmp_path / "losses.png").exists()
