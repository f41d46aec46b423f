"""The contract every experiment keeps, checked for every module of `experiments` (nothing to register).

For each name in `gm_jax.experiment_names()`, on its `get_test_config()` (a
tiny model on `data_dir="synthetic"`: no `../shared` needed):

* the module's shape: `get_config()`, `get_paper_config()` (same keys, and it
  builds) and `get_test_config()`; at most 200 lines; no import of another
  experiment or of matplotlib;
* end to end under `parallel = none | pmap | sharded` on 4 CPU devices:
  train (2 steps), `evaluate`, `write_artifacts`, `results.json`;
* with `parallel = none`, the handle: `gm_jax.load(workdir)` restores the
  config and bit-identical parameters of the trained state without reading
  any data (the run's `data_setup.npz` holds vocabularies, clusters, ...) (so it samples
  exactly what that state samples); samples pass the experiment's own input
  check (shape, dtype, range); the same key gives the same samples, with
  every sampler of an autoregressive model (`Model.sample(method=...)`);
  `log_prob` is finite, or raises `NotImplementedError` with a message; for
  autoregressive models, `log_prob_per_position` sums to `log_prob`, and the
  per-position distributions of `Model.conditionals` give those terms.

And the layering rules of the house: model files import only
`gm_jax.{nn, distributions, sampling}` (and other models).
"""
from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import jax
import numpy as np
import pytest

import gm_jax
from gm_jax import config as config_lib
from gm_jax import distributions
from gm_jax.api import Model
from gm_jax.data import load_split, synthetic
from gm_jax.training.loop import RESULTS_FILE, train, train_and_evaluate

ROOT = Path(__file__).resolve().parents[1]
NAMES = gm_jax.experiment_names()
MODEL_IMPORTS_ALLOWED = ("gm_jax.nn", "gm_jax.distributions", "gm_jax.sampling", "gm_jax.models")


def _module(name):
    return importlib.import_module(f"experiments.{name}")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def test_experiments_found():
    assert len(NAMES) >= 21, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_module_shape(name):
    module = _module(name)
    path = Path(module.__file__)
    lines = len(path.read_text().splitlines())
    assert lines <= 200, f"{path.name} has {lines} lines (at most 200: config + wiring)"
    imports = _imports(path)
    assert not [i for i in imports if i.startswith("experiments")], f"{name} imports another experiment"
    assert not [i for i in imports if i.startswith("matplotlib")], f"{name} imports matplotlib (use gm_jax.viz)"
    default, paper, tiny = module.get_config(), module.get_paper_config(), module.get_test_config()
    keys = config_lib.flat_keys(default)
    assert config_lib.flat_keys(paper) == keys, "get_paper_config() must have the keys of get_config()"
    assert config_lib.flat_keys(tiny) == keys, "get_test_config() must have the keys of get_config()"
    assert tiny.data_dir == "synthetic", "get_test_config() must read synthetic data"
    assert module.get_paper_config.__doc__, "get_paper_config() must name the paper and table it reproduces"
    module.Experiment(paper)  # the paper's config is valid (built, not initialised)


def test_median_module_length():
    lengths = sorted(len(Path(_module(n).__file__).read_text().splitlines()) for n in NAMES)
    assert lengths[len(lengths) // 2] <= 120, lengths


@pytest.mark.parametrize("path", sorted((ROOT / "gm_jax" / "models").glob("*.py")), ids=lambda p: p.name)
def test_model_files_are_pure(path):
    bad = [i for i in _imports(path) if (i.startswith("gm_jax") and not i.startswith(MODEL_IMPORTS_ALLOWED))
           or i.startswith(("matplotlib", "experiments", "PIL", "tensorflow_datasets"))]
    assert not bad, f"{path.name} imports {bad}: model files import only {MODEL_IMPORTS_ALLOWED}"


def _experiment(name, parallel):
    config = config_lib.apply_overrides(_module(name).get_test_config(),
                                        {"parallel": parallel, "num_steps": 2, "checkpoint_every": 2,
                                         "log_every": 1, "progress_bar": False}, name)
    return gm_jax.build(name, config=config)


def _finite(tree) -> bool:
    return all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(tree)
               if np.issubdtype(np.asarray(x).dtype, np.floating))


@pytest.mark.parametrize("parallel", ["none", "pmap", "sharded"])
@pytest.mark.parametrize("name", NAMES)
def test_end_to_end(name, parallel, tmp_path, monkeypatch):
    experiment = _experiment(name, parallel)
    assert experiment.config.batch_size % 4 == 0, "test configs use a batch size divisible by 4 devices"
    results = train_and_evaluate(experiment, tmp_path)
    saved = json.loads((tmp_path / RESULTS_FILE).read_text())
    assert saved["step"] == 2 and saved["experiment"] == name
    assert results["step"] == 2
    metrics = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())]
    assert [r["step"] for r in metrics] == [1, 2] and all(np.isfinite(r["loss"]) for r in metrics)
    if parallel != "none":
        return

    # a process of a multi-process run reads only its rows of each global batch, and they are those rows
    rows = slice(experiment.global_batch_size() // 4, experiment.global_batch_size() // 2)
    whole, part = next(experiment.train_batches(3)), next(experiment.train_batches(3, rows=rows))
    assert sorted(part) == sorted(whole)
    for k in whole:
        np.testing.assert_array_equal(part[k], np.asarray(whole[k])[rows], err_msg=k)

    # the handle, on the trained parameters and on the restored run
    state = train(experiment, tmp_path)  # already at num_steps: restores the last checkpoint
    trained = Model(experiment, experiment.params_of(state), step=int(state.step))
    with monkeypatch.context() as m:  # every data reader asks is_synthetic first: loading reads no data
        m.setattr(synthetic, "is_synthetic", _no_data_read)
        loaded = gm_jax.load(tmp_path)
    assert loaded.step == 2 and loaded.config.to_dict() == experiment.config.to_dict()
    key = jax.random.key(7)
    given = _required_conditioning(experiment, 4)
    x = trained.sample(key, 4, **given)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(trained.sample(key, 4, **given)))
    for method in experiment.sample_methods:  # every sampler of an autoregressive model draws the same samples
        if method != experiment.sample_method():  # (the default one drew x)
            np.testing.assert_array_equal(np.asarray(x), np.asarray(_sample_optimised(trained, key, method)),
                                          err_msg=f"method={method!r}")
    # the sampler is a pure function of (config, params, key): equal configs (above) and bit-equal
    # parameters mean the loaded handle samples exactly these (not re-sampled: a second compile per model)
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded.params, trained.params)
    assert len(x) == 4
    checked = experiment.check_data(x)  # samples are data in the experiment's own form
    assert checked.dtype == np.asarray(experiment.check_data(np.asarray(x))).dtype
    try:
        lp = trained.log_prob(x, key=jax.random.key(1))
    except NotImplementedError as e:
        assert str(e), "NotImplementedError must say why there is no density"
    else:
        assert lp.shape == (4,) and _finite(lp), lp
        if not _needs_score_conditioning(experiment):  # conditioned ones: tests/test_sampling.py
            try:  # autoregressive over the data: log p(x) = sum_i log p(x_i | x_<i)
                per = np.asarray(trained.log_prob_per_position(x))
            except NotImplementedError as e:  # (VQ-VAE: autoregressive over its codes, not over x)
                assert str(e), "NotImplementedError must say why there are no per-position terms"
            else:
                np.testing.assert_allclose(per.reshape(4, -1).sum(-1), np.asarray(lp), rtol=1e-5, atol=1e-3)
                check_conditionals(trained, x, per)


# The elementwise log p of the targets under `Model.conditionals`, by kind (jitted: one compile, not one per op).
CONDITIONALS_LOG_PROB = {
    "bernoulli": jax.jit(lambda c, t: distributions.bernoulli_log_prob(c["logits"], t, event_ndims=0)),
    "categorical": jax.jit(lambda c, t: distributions.categorical_log_prob(c["logits"], t, event_ndims=0)),
    "discretized_logistic_mixture": jax.jit(lambda c, t: distributions.discretized_logistic_mixture_log_prob(
        t, **c, event_ndims=0)),
}


def check_conditionals(model, x, per, **conditioning) -> None:
    """`model.conditionals(x)` are finite float32 arrays of the experiment's `conditionals_kind`, and the
    log-probabilities of `conditionals_targets(x)` under them, by the generic formulas of `gm_jax.distributions`
    (summed over the axes after the positions: the 88 keys of a piano-roll step), are `per`
    (`log_prob_per_position(x)`)."""
    experiment = model.experiment
    cond = model.conditionals(x, **conditioning)
    assert experiment.conditionals_kind in CONDITIONALS_LOG_PROB, experiment.conditionals_kind
    assert isinstance(cond, dict) and cond and all(v.dtype == np.float32 and _finite(v) for v in cond.values())
    targets = experiment.conditionals_targets(experiment.check_data(x))
    lp = np.asarray(CONDITIONALS_LOG_PROB[experiment.conditionals_kind](cond, targets))
    np.testing.assert_allclose(lp.reshape(*per.shape, -1).sum(-1), per, rtol=1e-5, atol=1e-4)


def _required_conditioning(experiment, n: int) -> dict:
    """What `sample` cannot draw without: a translator's `inputs` (`make_input` of n synthetic test digits)."""
    if "inputs" not in experiment.conditioning:
        return {}
    return {"inputs": experiment.make_input(load_split("mnist", "test", "synthetic")["image"][:n])}


def _sample_optimised(model, key, method):
    """4 samples of `model.experiment.sample(method=method)` compiled at LLVM's default optimisation level
    (conftest compiles at -O0): a naive sampler runs a whole network pass per position, several times
    slower at -O0 (figures in the README's design notes). XLA does no fast-math at any level, so the samples
    are bit-equal."""
    sample = jax.jit(model.experiment.sample, static_argnums=2, static_argnames="method",
                     compiler_options={"xla_backend_optimization_level": 2})
    return sample(model.params, key, 4, method=method)


def _no_data_read(data_dir):
    raise AssertionError(f"gm_jax.load read data (data_dir={data_dir!r}): a run must hold what loading needs")


def _needs_score_conditioning(experiment) -> bool:
    try:
        experiment.check_score_conditioning(4)
    except ValueError:
        return True
    return False
