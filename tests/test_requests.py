"""Bounded requests and clear errors of the `gm_jax.Model` handle (issue 17, items 4 and 5).

* `sample` in chunks of `eval_batch_size` (chunk i with `fold_in(key, i)`, per-sample conditioning
  sliced), refused up front when its output would not fit in memory; `log_prob` in batches;
* bad keys, sample counts, config values, data and sequence lengths: a `ValueError` that names the
  argument (or config key) and what is valid.

Tiny test configs; input checks run on handles without parameters (`params=None`): they must
fail before the model is touched.
"""
import jax
import numpy as np
import pytest

import gm_jax
from gm_jax import config as config_lib
from gm_jax import memory, sampling
from gm_jax.api import experiment_names, get_experiment_module


def _build(name, **overrides):
    return gm_jax.build(name, config=get_experiment_module(name).get_test_config(), **overrides)


def _model(name, **overrides):
    experiment = _build(name, **overrides)
    return gm_jax.Model(experiment, jax.jit(experiment.init_params)(jax.random.key(0)))  # jitted: faster


def _unchecked(name, **overrides):
    """A handle without parameters: anything that reaches the model fails with a TypeError."""
    return gm_jax.Model(_build(name, **overrides), params=None)


@pytest.fixture(scope="module")
def vae():
    return _model("vae_mnist", eval_batch_size=3)


@pytest.fixture(scope="module")
def charrnn():
    return _model("charrnn_shakespeare", eval_batch_size=2)


# -- chunked sampling and batched log_prob -------------------------------------------------------------
def test_sample_in_chunks_of_eval_batch_size(vae):
    exp, key = vae.experiment, jax.random.key(1)
    x = vae.sample(key, np.int64(7))  # NumPy ints count too
    assert isinstance(x, jax.Array) and x.shape == (7, 28, 28, 1) and x.dtype == np.uint8
    assert exp.jit_sample._cache_size() <= 2  # two compiled shapes: the chunk (3) and the remainder (1)
    np.testing.assert_array_equal(x, vae.sample(key, 7))
    for i, (a, b) in enumerate([(0, 3), (3, 6), (6, 7)]):  # chunk i draws with fold_in(key, i)
        np.testing.assert_array_equal(x[a:b], exp.jit_sample(vae.params, jax.random.fold_in(key, i), b - a))
    # a request of at most eval_batch_size is one unchunked call with the key itself, as before chunking
    np.testing.assert_array_equal(vae.sample(key, 3), exp.jit_sample(vae.params, key, 3))


def test_sample_chunks_slice_per_sample_conditioning(charrnn):
    exp, key = charrnn.experiment, jax.random.key(2)
    prompt = np.arange(15, dtype=np.int32).reshape(5, 3)  # one prompt per sample: sliced per chunk
    x = charrnn.sample(key, 5, prompt=prompt, length=4, temperature=0.5)  # length: static, not sliced
    assert x.shape == (5, 7)
    np.testing.assert_array_equal(x[:, :3], prompt)
    for i, (a, b) in enumerate([(0, 2), (2, 4), (4, 5)]):
        chunk = exp.jit_sample(charrnn.params, jax.random.fold_in(key, i), b - a, prompt=prompt[a:b],
                               length=sampling.Static(4), temperature=0.5)
        np.testing.assert_array_equal(x[a:b], chunk)


def test_log_prob_in_batches(vae):
    x = vae.sample(jax.random.key(3), 7)
    lp = vae.log_prob(x, key=jax.random.key(4))
    assert isinstance(lp, jax.Array) and lp.shape == (7,) and lp.dtype == np.float32
    np.testing.assert_array_equal(lp[3:6], vae.experiment.jit_log_prob(vae.params, x[3:6],
                                                                       jax.random.fold_in(jax.random.key(4), 1)))


# -- memory: refused up front with the estimate ------------------------------------------------------------
def test_format_bytes():
    assert [memory.format_bytes(n) for n in (512, 5488, 7.84e9, 2.59e11)] == ["512 B", "5.5 kB", "7.8 GB",
                                                                             "259.0 GB"]
    free, where = memory.available_bytes()
    assert free > 0 and where.endswith("memory")


class _Device:
    """A stand-in for a jax.Device: an accelerator reports its memory, the CPU backend does not."""

    def __init__(self, platform, stats):
        self.platform, self._stats = platform, stats

    def memory_stats(self):
        if isinstance(self._stats, Exception):
            raise self._stats
        return self._stats


def test_available_bytes_of_a_device_that_reports_them(monkeypatch):
    gpu = _Device("gpu", {"bytes_limit": 100 * 10**9, "bytes_in_use": 30 * 10**9, "peak_bytes_in_use": 50 * 10**9})
    assert memory.available_bytes(gpu) == (70 * 10**9, "gpu device memory")
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 12345)
    for cpu in (_Device("cpu", None), _Device("cpu", {}), _Device("tpu", NotImplementedError())):
        assert memory.available_bytes(cpu) == (12345, "host memory")
    with pytest.raises(ValueError, match=r"80\.0 GB, more than the 70\.0 GB of gpu device memory available"):
        memory.check_fits(80 * 10**9, "request", gpu)


def test_sample_refused_when_the_output_would_not_fit(vae, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: (4000, "test memory"))
    with pytest.raises(ValueError, match=r"num_samples=7\) returns uint8 \[7, 28, 28, 1\]: 5\.5 kB, more than the "
                                         r"4\.0 kB of test memory available; at most 5 samples"):
        vae.sample(jax.random.key(0), 7)
    assert vae.sample(jax.random.key(0), 5).shape == (5, 28, 28, 1)


def test_long_sequence_refused_by_the_memory_estimate(charrnn, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: (10**6, "test memory"))
    with pytest.raises(ValueError, match=r"int32 \[2, 1000001\]: 8\.0 MB, more than the 1\.0 MB"):
        charrnn.sample(jax.random.key(0), 2, length=10**6)  # refused before anything is compiled or drawn


# -- sequence length limits --------------------------------------------------------------------------------
@pytest.mark.parametrize("name, conditioning, match", [
    ("charrnn_shakespeare", dict(length=2**31), r"length must be <= 2,147,483,646 \(sequence positions are int32"),
    ("charrnn_shakespeare", dict(prompt=np.zeros((2, 10), np.int32), length=2**31 - 10),
     r"length must be <= 2,147,483,637"),
    ("transformer_shakespeare", dict(length=0), "length must be a positive int"),
    ("melody_jsb", dict(length=2**31 - 1), r"length must be <= 2,147,483,646"),
    ("wavenet_digits", dict(seconds=float("inf")), r"seconds must be .* at most 268,435 s"),
    ("wavenet_digits", dict(seconds=10**6), r"seconds must be .* at most 268,435 s"),
])
def test_sequence_length_limits(name, conditioning, match):
    with pytest.raises(ValueError, match=match):
        _unchecked(name).sample(jax.random.key(0), 2, **conditioning)


def test_transformer_samples_beyond_its_context():
    model = _model("transformer_shakespeare")
    block = model.config.block_size
    prompt = np.ones((2, block + 3), np.int32)  # a prompt longer than the context is accepted too
    x = model.sample(jax.random.key(0), 2, prompt=prompt, length=block + 5)
    assert x.shape == (2, 2 * block + 8)
    np.testing.assert_array_equal(x[:, :block + 3], prompt)


# -- clear errors naming the argument ----------------------------------------------------------------------
@pytest.mark.parametrize("key", [None, 0, "a", 3.5, jax.random.split(jax.random.key(0), 2)],
                         ids=["None", "int", "str", "float", "two-keys"])
def test_sample_rejects_a_bad_key(key):
    with pytest.raises(ValueError, match="key must be a single PRNG key"):
        _unchecked("vae_mnist").sample(key, 4)


@pytest.mark.parametrize("num_samples", [0, -1, 2.5, True, "3", None])
def test_sample_rejects_a_bad_num_samples(num_samples):
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        _unchecked("vae_mnist").sample(jax.random.key(0), num_samples)


@pytest.mark.parametrize("name, overrides, match", [
    ("vae_mnist", dict(latent_dim=0), "latent_dim"),
    ("vae_mnist", dict(hidden=(8, 0)), "hidden"),
    ("pixelcnn_mnist", dict(features=-1), "features"),
    ("vae_mnist", dict(learning_rate=-1.0), "learning_rate"),
    ("vae_mnist", dict(learning_rate=float("nan")), "learning_rate"),
    ("vae_mnist", dict(learning_rate=float("inf")), "learning_rate"),
    ("vae_mnist", dict(learning_rate=0.0), "learning_rate"),
    ("vae_mnist", dict(eval_batch_size=0), "eval_batch_size"),
    ("ebm_toy", dict(step_size=-1.0), "step_size"),
    ("ebm_toy", dict(step_size=float("nan")), "step_size"),
    ("ebm_toy", dict(noise_scale=-1.0), "noise_scale"),
    ("ebm_toy", dict(sample_steps=0), "sample_steps"),
    ("ebm_toy", dict(beta2=1.5), "beta2"),
    ("ebm_toy", dict(buffer_size=0), "buffer_size"),
    ("ebm_mnist", dict(num_eval_samples=1), "num_eval_samples"),
    ("gan_toy", dict(beta1=float("nan")), "beta1"),
    ("gan_toy", dict(num_eval_samples=0), "num_eval_samples"),
    ("realnvp_toy", dict(mlp_layers=0), "mlp_layers"),
    ("realnvp_toy", dict(init_batch_size=0), "init_batch_size"),
    ("realnvp_toy", dict(lr_final_fraction=-1.0), "lr_final_fraction"),
    ("realnvp_toy", dict(noise=float("nan")), "noise"),
    ("transformer_shakespeare", dict(dropout=float("nan")), "dropout"),
    ("dcgan_mnist", dict(pack=0), "pack"),
    ("dcgan_mnist", dict(clusters=-1), "clusters"),
    ("gmm_toy", dict(ring_radius=float("inf")), "ring_radius"),
])
def test_config_values_outside_the_schema_name_the_key(name, overrides, match):
    with pytest.raises(ValueError, match=rf"config\.{match} of {name} must be"):
        _build(name, **overrides)


@pytest.mark.parametrize("name", experiment_names())
def test_every_numeric_config_key_has_a_schema_rule(name):
    """Sizes, counts, rates and step sizes are all checked when the experiment is built (strings and
    booleans are checked by their type)."""
    module = get_experiment_module(name)
    config, rules = module.get_config(), {**config_lib.BASE_SCHEMA, **module.Experiment.schema}

    def numeric(v):
        values = v if isinstance(v, tuple) else (v,)
        return bool(values) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values)

    unchecked = [k for k in config_lib.flat_keys(config) if numeric(config_lib._get(config, k)) and k not in rules]
    assert not unchecked, f"{name}: numeric config keys without a schema rule: {unchecked}"


@pytest.mark.parametrize("name, x, match", [
    ("vae_mnist", np.zeros((0, 28, 28, 1), np.uint8), r"x is empty \(shape \(0, 28, 28, 1\)\): expected at least one"),
    ("gmm_toy", np.zeros((0, 2), np.float32), "x is empty"),
    ("transformer_shakespeare", np.zeros((0, 5), np.int32), "x is empty"),
    ("vae_mnist", np.zeros((2, 28, 28, 1), np.float32), "x: .*got dtype float32"),
    ("vae_mnist", np.zeros((2, 28, 28), np.uint8), r"x: .*got shape \(2, 28, 28\)"),
    ("vae_mnist", np.full((2, 28, 28, 1), 2, np.uint8), r"x: .*got values in \[2, 2\]"),
    ("gmm_toy", np.array([[np.nan, 0.0]], np.float32), "x: gmm_toy .* finite floats; got NaN or inf"),
    ("gmm_toy", np.array([[0.0, -np.inf]], np.float32), "x: gmm_toy .* finite floats; got NaN or inf"),
    ("realnvp_toy", np.array([[np.nan, 0.0]], np.float32), "x: realnvp_toy .* finite floats; got NaN or inf"),
    ("transformer_shakespeare", np.zeros((2, 18), np.int32), r"x: .* T <= 17"),
])
def test_log_prob_rejects_bad_x(name, x, match):
    with pytest.raises(ValueError, match=match):
        _unchecked(name).log_prob(x, key=jax.random.key(0))


def test_max_positions_is_int32():
    assert sampling.MAX_POSITIONS == np.iinfo(np.int32).max
