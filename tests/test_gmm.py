"""Gaussian mixture model: exact density, EM monotonicity, parameter recovery, bad input, experiment round trip."""
import jax
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal

import gm_jax
from gm_jax.models import gmm
from gm_jax.training import TrainStep
from gm_jax.training.loop import run_keys, train_and_evaluate

TRUE_W = np.array([0.5, 0.3, 0.2])
TRUE_MU = np.array([[0.0, 0.0], [3.0, 1.0], [-2.0, 3.0]])
TRUE_COV = np.array([[[1.0, 0.5], [0.5, 0.8]], [[0.3, -0.1], [-0.1, 0.5]], [[0.6, 0.0], [0.0, 0.2]]])


def _true_params():
    return gmm.make_params(TRUE_W, TRUE_MU, TRUE_COV)


def _data(n=4000, seed=0):
    return np.asarray(gmm.sample(_true_params(), jax.random.key(seed), n))


def test_log_prob_matches_scipy():
    x = np.random.default_rng(0).normal(size=(50, 2)) * 2
    want = np.log(sum(w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(TRUE_W, TRUE_MU, TRUE_COV)))
    np.testing.assert_allclose(np.asarray(gmm.log_prob(_true_params(), x)), want, rtol=1e-4, atol=1e-4)
    diag = gmm.make_params(TRUE_W, TRUE_MU, np.stack([np.diag(c) for c in TRUE_COV]), "diag")
    want_d = np.log(sum(w * multivariate_normal(m, np.diag(np.diag(c))).pdf(x)
                        for w, m, c in zip(TRUE_W, TRUE_MU, TRUE_COV)))
    np.testing.assert_allclose(np.asarray(gmm.log_prob(diag, x, "diag")), want_d, rtol=1e-4, atol=1e-4)


def test_sample_follows_generative_process():
    x, comp = gmm.sample(_true_params(), jax.random.key(1), 20000, return_components=True)
    x, comp = np.asarray(x), np.asarray(comp)
    np.testing.assert_allclose(np.bincount(comp, minlength=3) / len(comp), TRUE_W, atol=0.015)
    for k in range(3):
        np.testing.assert_allclose(x[comp == k].mean(0), TRUE_MU[k], atol=0.05)
        np.testing.assert_allclose(np.cov(x[comp == k], rowvar=False), TRUE_COV[k], atol=0.06)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_em_log_likelihood_never_decreases(covariance_type):
    _, ll = gmm.fit(_data(), 4, jax.random.key(3), covariance_type, num_iters=40, reg_covar=1e-6)
    ll = np.asarray(ll, np.float64)
    assert np.all(np.isfinite(ll))
    # float32 sums over 4000 points: allow rounding noise of 1e-6 relative, nothing more
    assert np.all(np.diff(ll) >= -1e-6 * np.abs(ll[1:])), np.diff(ll).min()
    assert ll[-1] > ll[0] + 1e-3  # it actually moved


def test_em_recovers_known_mixture():
    params, _ = gmm.fit(_data(6000), 3, jax.random.key(0), "full", num_iters=100)
    mu = np.asarray(params["means"])
    cost = np.linalg.norm(TRUE_MU[:, None] - mu[None], axis=-1)
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].max() < 0.1, cost[rows, cols]
    w = np.asarray(jax.nn.softmax(params["logits"]))[cols]
    np.testing.assert_allclose(w, TRUE_W, atol=0.03)
    np.testing.assert_allclose(np.asarray(params["covs"])[cols], TRUE_COV, atol=0.1)


def test_bad_covariances_are_value_errors():
    bad = TRUE_COV.copy()
    bad[1] = [[1.0, 2.0], [2.0, 1.0]]  # symmetric, eigenvalues 3 and -1
    with pytest.raises(ValueError, match="component 1 is not positive definite"):
        gmm.make_params(TRUE_W, TRUE_MU, bad)
    with pytest.raises(ValueError, match="not symmetric"):
        gmm.make_params(TRUE_W, TRUE_MU, TRUE_COV + np.array([[0, 0.3], [0, 0]]))
    with pytest.raises(ValueError, match="positive variances"):
        gmm.make_params(TRUE_W, TRUE_MU, np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]), "diag")
    with pytest.raises(ValueError, match="shape"):
        gmm.make_params(TRUE_W, TRUE_MU, TRUE_COV[:2])
    with pytest.raises(ValueError, match="sum to 1"):
        gmm.make_params([0.5, 0.5, 0.5], TRUE_MU, TRUE_COV)
    with pytest.raises(ValueError, match="covariance_type"):
        gmm.make_params(TRUE_W, TRUE_MU, TRUE_COV, "spherical")


def test_em_step_same_under_pmap():
    experiment = gm_jax.api.build("gmm_toy", num_train=400, num_components=4)
    state = experiment.init_state(run_keys(0)["init"])
    batch = next(experiment.train_batches())
    out = {}
    for parallel in ("none", "pmap", "sharded"):
        step = TrainStep(experiment.update, parallel)
        s, m = step(step.put_state(jax.tree_util.tree_map(np.array, state)), batch, jax.random.key(0))
        out[parallel] = (step.get_state(s).params["gmm"], float(m["loss"]))
    for parallel in ("pmap", "sharded"):
        np.testing.assert_allclose(out[parallel][1], out["none"][1], rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(out[parallel][0]), jax.tree_util.tree_leaves(out["none"][0])):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_gmm_toy_train_load_round_trip(tmp_path):
    experiment = gm_jax.api.build("gmm_toy", num_steps=15, num_train=1000, num_test=500, checkpoint_every=15,
                                  progress_bar=False)
    results = train_and_evaluate(experiment, tmp_path)
    assert results["mean_error_max"] < 0.1  # the 8 ring means, matched
    assert results["test_log_likelihood_nats"] > results["true_test_log_likelihood_nats"] - 0.1
    for f in results["figures"]:
        assert (tmp_path / f).stat().st_size > 1000
    model = gm_jax.load(tmp_path)
    assert model.step == 15
    x = model.sample(jax.random.key(0), 100)
    assert x.shape == (100, 2) and x.dtype == np.float32
    np.testing.assert_allclose(np.asarray(model.log_prob(x)),
                               np.asarray(gmm.log_prob(model.params["gmm"], x)), rtol=1e-6)
    with pytest.raises(ValueError, match="shape \\[N, 2\\] holding finite floats"):
        model.log_prob(np.zeros((3, 3), np.float32))
