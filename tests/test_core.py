"""The core of the house: config schema, declarative data kinds, paper configs, synthetic data."""
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax import config as config_lib
from gm_jax import data
from gm_jax.data import synthetic
from gm_jax.experiment import Experiment


def _config(**fields):
    c = config_lib.base_config()
    for k, v in fields.items():
        c[k] = v
    return c


@pytest.mark.parametrize("rule,good,bad,match", [
    (config_lib.Choice("a", "b"), "a", "c", r"config.x='c' for demo; valid choices: \['a', 'b'\]"),
    (config_lib.Range(1, integer=True), 3, 0, r"config.x of demo must be an int >= 1, got 0"),
    (config_lib.Range(1, integer=True), 3, 2.5, r"must be an int >= 1, got 2.5"),
    (config_lib.Range(0.0, 1.0, hi_open=True), 0.0, 1.0, r"must be >= 0.0 and < 1.0, got 1.0"),
    (config_lib.Range(0.0, lo_open=True), 1e-3, float("nan"), r"must be > 0.0, got nan"),
    (config_lib.Range(1, each=True, integer=True), (4, 8), (4, 0), r"every entry of config.x of demo"),
])
def test_schema_rules(rule, good, bad, match):
    config_lib.validate(_config(x=good), "demo", {"x": rule})
    with pytest.raises(ValueError, match=match):
        config_lib.validate(_config(x=bad), "demo", {"x": rule})


def test_base_schema_checks_shared_fields():
    with pytest.raises(ValueError, match=r"parallel='gpu'.*'none', 'pmap', 'sharded'"):
        config_lib.validate(_config(parallel="gpu"))
    with pytest.raises(ValueError, match="config.batch_size of experiment must be an int >= 1, got 0"):
        config_lib.validate(_config(batch_size=0))
    with pytest.raises(ValueError, match="lacks the required key 'seed'"):
        c = config_lib.base_config()
        del c["seed"]
        config_lib.validate(c)


class _Kind(Experiment):
    name = "demo"

    def __init__(self, kind, shape, num_values=0):
        super().__init__(config_lib.base_config())
        self.data_kind, self.data_shape, self.num_values = kind, shape, num_values


@pytest.mark.parametrize("kind,shape,num_values,good,dtype,bads", [
    ("binary", (2, 2), 0, np.ones((3, 2, 2), np.uint8), jnp.uint8,
     [np.full((3, 2, 2), 2), np.ones((3, 2, 3), np.uint8), np.ones((3, 2, 2), np.float32)]),
    ("uint8", (2,), 0, np.array([[0, 255]]), jnp.uint8, [np.array([[0, 256]]), np.array([[-1, 3]])]),
    ("tokens", (None,), 5, np.array([[0, 4, 2]]), jnp.int32, [np.array([[0, 5]]), np.zeros((2, 0), int)]),
    ("float_points", (2,), 0, np.zeros((4, 2), np.float64), jnp.float32,
     [np.zeros((4, 3)), np.array([[np.nan, 0.0]]), np.zeros((4, 2), np.int32)]),
    ("audio", (None,), 0, np.zeros((2, 9), np.float32), jnp.float32, [np.full((1, 4), 1.5), np.zeros((2, 9), int)]),
])
def test_data_kinds_give_the_input_checks(kind, shape, num_values, good, dtype, bads):
    exp = _Kind(kind, shape, num_values)
    out = exp.check_data(good)
    assert out.dtype == dtype and out.shape == good.shape
    for bad in bads:
        with pytest.raises(ValueError, match="demo expects an array of shape"):
            exp.check_data(bad)


def test_paper_config_from_api_and_command_line(tmp_path):
    paper = gm_jax.get_config("pixelcnn_mnist", paper=True)
    assert config_lib.flat_keys(paper) == config_lib.flat_keys(gm_jax.get_config("pixelcnn_mnist"))
    exp = gm_jax.build("pixelcnn_mnist", paper=True, num_steps=1)
    assert exp.config.to_dict() == config_lib.apply_overrides(paper, {"num_steps": 1}).to_dict()
    # --paper with an override that fails validation: the paper's values were read, nothing was written
    proc = subprocess.run([sys.executable, "-m", "experiments.pixelcnn_mnist", "--workdir", str(tmp_path / "w"),
                           "--paper", "--config.batch_size=0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "batch_size" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "w" / "config.json").exists()


def test_synthetic_data_has_the_real_schemas():
    mnist = data.load_split("mnist", "train", "synthetic")
    assert mnist["image"].dtype == np.uint8 and mnist["image"].shape[1:] == (28, 28, 1)
    assert mnist["label"].dtype == np.int32 and set(np.unique(mnist["label"])) <= set(range(10))
    binary = data.load_split("binarized_mnist", "test", "synthetic")["image"]
    assert set(np.unique(binary)) == {0, 1}
    text = data.load_text("validation", "synthetic")
    assert isinstance(text, str) and len(text) >= synthetic.TEXT_CHARS["validation"] and ":\n" in text
    rolls = data.load_piano_rolls("train", "synthetic")
    assert rolls and all(r.shape[1] == 88 and set(np.unique(r)) <= {0, 1} for r in rolls)
    rec = data.load_recordings("test", "synthetic")
    assert len(rec["audio"]) == len(rec["digit"]) == len(rec["names"]) > 0
    assert all(a.dtype == np.float32 and np.abs(a).max() < 1 for a in rec["audio"])
    again = data.load_split("mnist", "train", "synthetic")
    np.testing.assert_array_equal(again["image"], mnist["image"])  # deterministic
