"""Continuous normalising flows: FFJORD (Grathwohl et al. 2019) on neural ODEs (Chen et al. 2018).

A data point x = z(0) flows along learned dynamics dz/dt = f(z(t), t; theta) to z(T), which has
the base density N(0, I). The instantaneous change of variables (Chen et al. 2018, Theorem 1;
FFJORD Eq. 2-3) gives

    log p(x) = log N(z(T); 0, I) + integral_0^T Tr(df/dz(z(t), t)) dt,

integrated jointly with z by an ODE solver (diffrax). The trace is computed

* exactly (`trace="exact"`): the Jacobian of f per example by `jax.jacfwd`, D forward passes'
  worth of work, for low dimensions (the 2-D problems);
* by Hutchinson's estimator (`trace="hutchinson"`, FFJORD Eq. 7): Tr(A) = E[e^T A e] for noise e
  with E[e e^T] = I (Gaussian or Rademacher), one e per example, the same e along the whole solve,
  and e^T (df/dz) from one vector-Jacobian product; unbiased for log p(x), one backward pass per
  evaluation of f whatever D is.

Optional regularisers (Finlay et al. 2020, "How to train your neural ODE", Eq. 2-3): the
kinetic energy integral_0^T ||f||^2 dt and the Jacobian's Frobenius norm
integral_0^T ||df/dz||_F^2 dt (estimated as ||e^T df/dz||^2 with the trace's noise), integrated
along the same solve; the objective adds them with weights.

Solves use diffrax (`SolverConfig`): an adaptive Runge-Kutta (Dopri5 / Tsit5 / Bosh3 with a PID
step-size controller at rtol, atol) or a fixed number of steps of any of the solvers. Gradients go
through the solve by diffrax's `RecursiveCheckpointAdjoint` (discretise-then-optimise: the exact
gradient of the computed solution, with checkpointing to bound memory) rather than the continuous
adjoint of the papers (`BacksolveAdjoint`), whose gradient is of the true ODE solution and so does
not match the computed loss to within the solver's tolerance, and which solves an extra
augmented ODE backwards. The number of function evaluations (NFE) of a solve, FFJORD's cost, is
`new evaluations per step x steps (+ 1 for a first-same-as-last solver)`, counted in diffrax's
statistics (`nfe`).

Dynamics are Flax modules `f(t, z) -> dz/dt` with t a float scalar: `MLPDynamics` (concat-squash
layers, FFJORD's toy model) for vectors and `ConvDynamics` (t as an extra input channel,
FFJORD's image model) for images.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import diffrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gm_jax import distributions
from gm_jax.nn import Conv, Dense

TRACES = ("exact", "hutchinson")
NOISES = ("gaussian", "rademacher")
# solver name -> (diffrax class, new evaluations of f per step, first-same-as-last: one more at the start)
SOLVERS = {
    "euler": (diffrax.Euler, 1, 0),
    "heun": (diffrax.Heun, 2, 0),
    "midpoint": (diffrax.Midpoint, 2, 0),
    "bosh3": (diffrax.Bosh3, 3, 1),
    "tsit5": (diffrax.Tsit5, 6, 1),
    "dopri5": (diffrax.Dopri5, 6, 1),
}
ADAPTIVE = ("bosh3", "tsit5", "dopri5")  # solvers with an error estimate (may use rtol / atol)
# how derivatives go through a solve: reverse mode with checkpointing (training), reverse mode through a bounded
# loop (training under jax.pmap, where the checkpointed loop fails to trace), or forward mode (jax.jacfwd)
ADJOINTS = {"checkpoint": diffrax.RecursiveCheckpointAdjoint, "direct": diffrax.DirectAdjoint,
            "forward": diffrax.ForwardMode}
EXACT_TRACE_MAX_DIM = 8  # `log_prob`'s default: the exact trace up to this many dimensions
ACTIVATIONS = {"tanh": jnp.tanh, "softplus": jax.nn.softplus}

# Grathwohl et al. 2019, Appendix B.1 (MNIST): multiscale, 2 scale blocks of 2 CNFs each, 4 convolutions of
# 64 filters with softplus, Hutchinson's estimator, dopri5 at rtol = atol = 1e-5, Adam 1e-3, batch 200; the logit
# transform of the data with alpha = 1e-6 (the authors' code).
PAPER_MNIST = {"channels": (64, 64, 64), "activation": "softplus", "trace": "hutchinson", "solver": "dopri5",
               "rtol": 1e-5, "atol": 1e-5, "learning_rate": 1e-3, "batch_size": 200, "time_length": 1.0,
               "logit_alpha": 1e-6}


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """How to solve: `solver` (a key of `SOLVERS`), adaptive with tolerances `rtol`, `atol` when
    `num_steps` = 0 (adaptive solvers only), else `num_steps` equal steps; `max_steps` bounds an
    adaptive solve (diffrax raises beyond it; a fixed-step solve takes exactly `num_steps`, which also sizes
    the checkpointing of its gradient); `adjoint` is how derivatives pass through the solve:
    "checkpoint" (reverse mode, `diffrax.RecursiveCheckpointAdjoint`: training), "direct" (reverse mode
    through a bounded loop, `diffrax.DirectAdjoint`: training per device under `jax.pmap` or `jax.shard_map`,
    where the checkpointed loop does not trace: equinox's closure conversion compares a constant's type
    without the manual mesh against a traced one with it, diffrax issue 765) or "forward"
    (`diffrax.ForwardMode`: for `jax.jacfwd` through the solve).

    Raises:
      ValueError: an unknown solver or adjoint, non-positive tolerances, a negative step count, an
        adaptive solve with a solver that has no error estimate, or `max_steps` < 1.
    """

    solver: str = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5
    num_steps: int = 0
    max_steps: int = 4096
    adjoint: str = "checkpoint"

    def __post_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r}; valid choices: {list(SOLVERS)}")
        if self.adjoint not in ADJOINTS:
            raise ValueError(f"adjoint={self.adjoint!r}; valid choices: {list(ADJOINTS)}")
        for name in ("rtol", "atol"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not isinstance(self.num_steps, int) or self.num_steps < 0:
            raise ValueError(f"num_steps must be an int >= 0 (0: adaptive), got {self.num_steps!r}")
        if self.num_steps == 0 and self.solver not in ADAPTIVE:
            raise ValueError(f"solver={self.solver!r} has no error estimate: give num_steps > 0, or an adaptive "
                             f"solver {list(ADAPTIVE)}")
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ValueError(f"max_steps must be an int >= 1, got {self.max_steps!r}")

    def nfe(self, num_steps: jax.Array) -> jax.Array:
        """Function evaluations of a solve that took `num_steps` steps (accepted and rejected)."""
        _, per_step, fsal = SOLVERS[self.solver]
        return per_step * num_steps + fsal


# -- dynamics -------------------------------------------------------------------------------------------
class ConcatSquashDense(nn.Module):
    """h -> (W h + b) * sigmoid(a t + c) + d t (FFJORD's `ConcatSquashLinear`): a dense layer gated and
    shifted by the time t."""

    features: int

    @nn.compact
    def __call__(self, t, h):
        tt = jnp.full((h.shape[0], 1), t, h.dtype)
        gate = jax.nn.sigmoid(Dense(self.features, name="gate")(tt))
        return Dense(self.features)(h) * gate + Dense(self.features, use_bias=False, name="shift")(tt)


class MLPDynamics(nn.Module):
    """f(t, z) for z float32 [B, D]: concat-squash layers of widths `hidden`, `activation` between them.

    FFJORD's toy model (Grathwohl et al. 2019, Appendix B.1: 3 hidden layers of 64, tanh)."""

    hidden: Sequence[int] = (64, 64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, t, z):
        act, h = ACTIVATIONS[self.activation], z
        for width in self.hidden:
            h = act(ConcatSquashDense(width)(t, h))
        return ConcatSquashDense(z.shape[-1])(t, h)


class ConvDynamics(nn.Module):
    """f(t, z) for images z float32 [B, H, W, C]: 3x3 convolutions of `channels` (same size), each seeing t
    as one more constant input channel (FFJORD's `ConcatConv2d`), `activation` between them."""

    channels: Sequence[int] = (32, 32)
    activation: str = "softplus"

    @nn.compact
    def __call__(self, t, z):
        act, h = ACTIVATIONS[self.activation], z
        for i, c in enumerate((*self.channels, z.shape[-1])):
            h = jnp.concatenate([h, jnp.full((*h.shape[:-1], 1), t, h.dtype)], axis=-1)
            h = Conv(c, (3, 3), padding="SAME")(h)
            if i < len(self.channels):
                h = act(h)
        return h


# -- the flow -------------------------------------------------------------------------------------------
def _sum_except_batch(x):
    return x.reshape(x.shape[0], -1).sum(-1)


def hutchinson_noise(key: jax.Array, shape, kind: str = "gaussian") -> jax.Array:
    """Noise e with E[e e^T] = I for Hutchinson's estimator: N(0, 1) or Rademacher (+-1) entries, float32 `shape`.

    Raises:
      ValueError: an unknown kind.
    """
    if kind == "gaussian":
        return jax.random.normal(key, shape, jnp.float32)
    if kind == "rademacher":
        return jax.random.rademacher(key, shape, jnp.float32)
    raise ValueError(f"noise={kind!r}; valid choices: {list(NOISES)}")


class FFJORD:
    """A continuous normalising flow with dynamics `dynamics(t, z)` on [0, time_length].

    Args:
      dynamics: a Flax module `f(t, z) -> dz/dt` of z's shape [B, ...] (rows independent: no batch statistics).
      time_length: T > 0, the integration time (FFJORD learns it; fixed here).
      noise: Hutchinson's noise, "gaussian" | "rademacher".

    Raises:
      ValueError: T <= 0 or not finite, an unknown noise.
    """

    def __init__(self, dynamics: nn.Module, time_length: float = 1.0, noise: str = "gaussian"):
        if not (math.isfinite(time_length) and time_length > 0):
            raise ValueError(f"time_length must be a finite number > 0, got {time_length!r}")
        if noise not in NOISES:
            raise ValueError(f"noise={noise!r}; valid choices: {list(NOISES)}")
        self.dynamics, self.time_length, self.noise = dynamics, float(time_length), noise

    def init(self, key: jax.Array, x: jax.Array):
        """Parameters of the dynamics for points shaped like x [B, ...]."""
        return self.dynamics.init(key, 0.0, x)["params"]

    def velocity(self, params, t, z: jax.Array) -> jax.Array:
        """f(t, z): dz/dt, z's shape."""
        return self.dynamics.apply({"params": params}, t, z)

    @staticmethod
    def _check_input(z: jax.Array, what: str) -> None:
        if z.ndim < 2 or z.shape[0] == 0:
            raise ValueError(f"{what} must be a non-empty batch [B >= 1, ...], got shape {z.shape}")
        if not jnp.issubdtype(z.dtype, jnp.floating):
            raise ValueError(f"{what} must be floats, got {z.dtype}")
        if not isinstance(z, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(z))):
            raise ValueError(f"{what} has NaN or inf entries: the flow maps finite points")

    def _solve(self, field, y0, t0: float, t1: float, solver: SolverConfig, args):
        cls, _, _ = SOLVERS[solver.solver]
        if solver.num_steps:
            controller, dt0 = diffrax.ConstantStepSize(), (t1 - t0) / solver.num_steps
        else:
            controller, dt0 = diffrax.PIDController(rtol=solver.rtol, atol=solver.atol), None
        sol = diffrax.diffeqsolve(diffrax.ODETerm(field), cls(), t0, t1, dt0, y0, args=args,
                                  stepsize_controller=controller, max_steps=solver.num_steps or solver.max_steps,
                                  adjoint=ADJOINTS[solver.adjoint]())
        final = jax.tree_util.tree_map(lambda v: v[-1], sol.ys)
        return final, solver.nfe(sol.stats["num_steps"])

    def forward(self, params, x: jax.Array, solver: SolverConfig, trace: str = "exact", key: jax.Array | None = None,
                regularise: bool = False):
        """Solve from the data x = z(0) to z(T), with the integral of the trace (and the regularisers).

        Args:
          params: the dynamics' parameters.
          x: float32 [B, ...] finite points.
          solver: a `SolverConfig`.
          trace: "exact" (per-example Jacobian, `jax.jacfwd`) or "hutchinson" (needs `key`).
          key: Hutchinson's noise, one e per example drawn once for the whole solve: a PRNG key (e of x's
            shape), or per-example keys [B] (example i's e from key i: the same e whatever the batch).
          regularise: also integrate the kinetic energy and the Jacobian's Frobenius norm.

        Returns:
          (z(T) of x's shape, trace integral float32 [B] (log p(x) = log N(z(T)) + it, nats),
           {"nfe": int32, "kinetic" [B], "jacobian_frobenius" [B]} (zeros unless `regularise`)).

        Raises:
          ValueError: an empty, non-float or non-finite x (when concrete), an unknown trace, or Hutchinson's
            estimator without a key.
        """
        self._check_input(x, "x")
        if trace not in TRACES:
            raise ValueError(f"trace={trace!r}; valid choices: {list(TRACES)}")
        if trace == "hutchinson" and key is None:
            raise ValueError("Hutchinson's trace estimator needs a PRNG key (it is a stochastic estimate)")
        b = x.shape[0]
        eps = None
        if trace == "hutchinson":
            if jnp.ndim(key) == 1 and key.shape[0] == b:
                eps = jax.vmap(lambda k: hutchinson_noise(k, x.shape[1:], self.noise))(key)
            else:
                eps = hutchinson_noise(key, x.shape, self.noise)

        def field(t, y, args):
            p, e = args
            z = y[0]
            if trace == "exact":
                def single(zi):  # f for one example, returned twice: the Jacobian's function and its value
                    fi = self.velocity(p, t, zi[None])[0]
                    return fi, fi

                jac, f = jax.vmap(jax.jacfwd(single, has_aux=True))(z)
                jac = jac.reshape(b, math.prod(z.shape[1:]), -1)
                tr = jnp.trace(jac, axis1=1, axis2=2)
                frob = jnp.sum(jac ** 2, axis=(1, 2)) if regularise else jnp.zeros((b,), z.dtype)
            else:
                f, vjp = jax.vjp(lambda zz: self.velocity(p, t, zz), z)
                e_jac = vjp(e)[0]
                tr = _sum_except_batch(e_jac * e)
                frob = _sum_except_batch(e_jac ** 2) if regularise else jnp.zeros((b,), z.dtype)
            kinetic = _sum_except_batch(f ** 2) if regularise else jnp.zeros((b,), z.dtype)
            return f, tr, kinetic, frob

        # zeros derived from x: under pmap / shard_map they vary over the device axis as x does, as diffrax's
        # closure-converted loop needs its carries to
        zero = jnp.zeros_like(x.reshape(b, -1)[:, 0], jnp.float32)
        (z, tr_int, kinetic, frob), nfe = self._solve(field, (x, zero, zero, zero), 0.0, self.time_length, solver,
                                                      (params, eps))
        return z, tr_int, {"nfe": nfe, "kinetic": kinetic, "jacobian_frobenius": frob}

    def log_prob(self, params, x: jax.Array, solver: SolverConfig, trace: str = "exact",
                 key: jax.Array | None = None):
        """log p(x) = log N(z(T); 0, I) + integral of Tr(df/dz), nats float32 [B] (an unbiased estimate with
        Hutchinson's trace); and the solve's NFE. Arguments and errors as `forward`."""
        z, tr_int, stats = self.forward(params, x, solver, trace, key)
        return distributions.standard_normal_log_prob(z.reshape(z.shape[0], -1)) + tr_int, stats["nfe"]

    def inverse(self, params, z: jax.Array, solver: SolverConfig):
        """Solve backward from z = z(T) to x = z(0): (x of z's shape, NFE). Raises ValueError for a bad z."""
        self._check_input(z, "z")
        (x,), nfe = self._solve(lambda t, y, p: (self.velocity(p, t, y[0]),), (z,), self.time_length, 0.0, solver,
                                params)
        return x, nfe

    def sample(self, params, key: jax.Array, num_samples: int, shape: Sequence[int], solver: SolverConfig,
               temperature: float = 1.0):
        """x = z(0) from z(T) ~ N(0, temperature^2 I) of shape [num_samples, *shape]: (x, NFE)."""
        z = temperature * jax.random.normal(key, (num_samples, *shape), jnp.float32)
        return self.inverse(params, z, solver)
