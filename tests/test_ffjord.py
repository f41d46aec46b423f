"""FFJORD (`gm_jax.models.ffjord`): the trace estimators, the change of variables against the Jacobian of
the flow map, invertibility, NFE counting, and bad input."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gm_jax
from gm_jax.api import get_experiment_module
from gm_jax.models import ffjord

TIGHT = ffjord.SolverConfig("dopri5", rtol=1e-7, atol=1e-7)


def _flow(dim: int, seed: int = 0, conv: bool = False):
    dynamics = ffjord.ConvDynamics((4,)) if conv else ffjord.MLPDynamics((16, 16))
    flow = ffjord.FFJORD(dynamics, time_length=0.5)
    shape = (3, 4, 4, 1) if conv else (3, dim)
    x = jax.random.normal(jax.random.key(seed + 1), shape)
    params = flow.init(jax.random.key(seed), x)
    # larger weights than the init, so the dynamics are far from the identity map
    params = jax.tree_util.tree_map(lambda p: 2.0 * p, params)
    return flow, params, x


@pytest.mark.parametrize("dim", [2, 16])
def test_hutchinson_estimate_agrees_with_the_exact_trace_in_expectation(dim):
    flow, params, x = _flow(dim)
    solver = ffjord.SolverConfig("tsit5", num_steps=8)  # the same steps for both: only the trace differs
    exact = np.asarray(flow.forward(params, x, solver, "exact")[1])
    draws = jax.jit(jax.vmap(lambda k: flow.forward(params, x, solver, "hutchinson", k)[1]))(
        jax.random.split(jax.random.key(3), 400))
    draws = np.asarray(draws)
    mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(len(draws))
    assert np.all(se > 0) and np.all(np.abs(mean - exact) <= 3 * se), (mean, exact, se)
    rademacher = ffjord.FFJORD(flow.dynamics, flow.time_length, noise="rademacher")
    r = np.asarray(jax.jit(jax.vmap(lambda k: rademacher.forward(params, x, solver, "hutchinson", k)[1]))(
        jax.random.split(jax.random.key(4), 400)))
    assert np.all(np.abs(r.mean(0) - exact) <= 3 * r.std(0, ddof=1) / np.sqrt(len(r)))


def test_change_of_variables_equals_the_log_det_of_the_flow_maps_jacobian():
    flow, params, x = _flow(2)
    solver = ffjord.SolverConfig("dopri5", rtol=1e-7, atol=1e-7, adjoint="forward")
    z, tr_int, _ = flow.forward(params, x, solver, "exact")

    def flow_map(xi):
        return flow.forward(params, xi[None], solver, "exact")[0][0]

    jac = jax.vmap(jax.jacfwd(flow_map))(x)
    log_det = np.linalg.slogdet(np.asarray(jac, np.float64))[1]
    np.testing.assert_allclose(np.asarray(tr_int), log_det, atol=1e-4)
    assert np.max(np.abs(log_det)) > 0.05  # a map far from volume preserving


@pytest.mark.parametrize("conv", [False, True])
def test_forward_then_inverse_returns_the_input(conv):
    flow, params, x = _flow(2, conv=conv)
    solver = ffjord.SolverConfig("dopri5", rtol=1e-6, atol=1e-6)
    z = flow.forward(params, x, solver, "hutchinson", jax.random.key(0))[0]
    back, nfe = flow.inverse(params, z, solver)
    assert np.max(np.abs(np.asarray(back - x))) < 1e-4 and np.max(np.abs(np.asarray(z - x))) > 1e-2
    assert int(nfe) >= 7


def test_nfe_is_the_count_of_dynamics_calls():
    flow, params, x = _flow(2)
    calls = []
    counted = ffjord.FFJORD(flow.dynamics, flow.time_length)
    counted.velocity = lambda p, t, z: (jax.debug.callback(lambda: calls.append(1)), flow.velocity(p, t, z))[1]
    for solver in (ffjord.SolverConfig("dopri5", rtol=1e-4, atol=1e-4), ffjord.SolverConfig("heun", num_steps=3)):
        calls.clear()
        with jax.disable_jit():
            _, nfe = counted.inverse(params, x, solver)
        assert len(calls) == int(nfe), solver


def test_regularisers_are_positive_and_vanish_for_zero_dynamics():
    flow, params, x = _flow(2)
    solver = ffjord.SolverConfig("tsit5", num_steps=4)
    _, _, stats = flow.forward(params, x, solver, "exact", regularise=True)
    assert np.all(np.asarray(stats["kinetic"]) > 0) and np.all(np.asarray(stats["jacobian_frobenius"]) > 0)
    # the kinetic energy of each point is the integral of |f|^2 along its path: with 4 steps against 64 it agrees
    fine = flow.forward(params, x, ffjord.SolverConfig("tsit5", num_steps=64), "exact", regularise=True)[2]
    np.testing.assert_allclose(stats["kinetic"], fine["kinetic"], rtol=1e-3)
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)  # no motion, no volume change, no energy
    z, tr_int, s0 = flow.forward(zero, x, solver, "exact", regularise=True)
    np.testing.assert_allclose(z, x)
    np.testing.assert_allclose(tr_int, 0.0)
    assert float(jnp.max(s0["kinetic"])) == 0.0 and float(jnp.max(s0["jacobian_frobenius"])) == 0.0


def test_bad_input_and_bad_solver_settings_raise():
    flow, params, x = _flow(2)
    with pytest.raises(ValueError, match="NaN or inf"):
        flow.forward(params, x.at[0, 0].set(jnp.nan), TIGHT)
    with pytest.raises(ValueError, match=r"non-empty batch \[B >= 1"):
        flow.forward(params, jnp.zeros((0, 2)), TIGHT)
    with pytest.raises(ValueError, match="floats"):
        flow.inverse(params, jnp.zeros((2, 2), jnp.int32), TIGHT)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        flow.forward(params, x, TIGHT, "hutchinson")
    with pytest.raises(ValueError, match="trace='approx'"):
        flow.forward(params, x, TIGHT, "approx")
    with pytest.raises(ValueError, match="rtol must be a finite number > 0"):
        ffjord.SolverConfig(rtol=0.0)
    with pytest.raises(ValueError, match="atol"):
        ffjord.SolverConfig(atol=-1e-5)
    with pytest.raises(ValueError, match="num_steps must be an int >= 0"):
        ffjord.SolverConfig(num_steps=-1)
    with pytest.raises(ValueError, match="no error estimate"):
        ffjord.SolverConfig("euler")
    with pytest.raises(ValueError, match="adjoint='backsolve'"):
        ffjord.SolverConfig(adjoint="backsolve")
    with pytest.raises(ValueError, match="solver='rk45'"):
        ffjord.SolverConfig("rk45")
    with pytest.raises(ValueError, match="time_length"):
        ffjord.FFJORD(flow.dynamics, time_length=0.0)


@pytest.mark.parametrize("name, overrides, match", [
    ("ffjord_mnist", dict(eval_trace="exact"), "exact trace is for at most 8"),
    ("ffjord_toy", dict(train_rtol=0.0), r"config\.train_rtol"),
    ("ffjord_toy", dict(eval_atol=-1e-5), r"config\.eval_atol"),
    ("ffjord_toy", dict(train_solver="euler", train_num_steps=0), "no error estimate"),
    ("ffjord_toy", dict(eval_num_steps=-2), r"config\.eval_num_steps"),
])
def test_experiments_refuse_bad_solver_configs(name, overrides, match):
    with pytest.raises(ValueError, match=match):
        gm_jax.build(name, config=get_experiment_module(name).get_test_config(), **overrides)
