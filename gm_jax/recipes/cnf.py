"""Continuous normalising flows (FFJORD, `gm_jax.models.ffjord`) as experiments.

* `ToyCNFExperiment`: FFJORD on the 2-D toy densities, evaluated as the discrete flows are
  (`ToyFlowExperiment`: test NLL, the density's integral over a grid, figures), with the exact
  trace by default; `density.png` adds the density of a discrete flow trained on the same problem
  (`config.compare_run`, a `realnvp_toy` or other toy-flow run) between the data and FFJORD's.
* `ImageCNFExperiment`: FFJORD on dequantized 8-bit MNIST, after the discrete flows' logit
  preprocessing (`ImageFlowExperiment`: bits/dim, samples, reconstruction errors), with
  Hutchinson's trace estimator.

The solves are configured per use: `train_*` (training: often a fixed number of steps, which
also makes each example's result independent of the rest of its batch, so the parallel modes
agree) and `eval_*` (test likelihood, the density grid, sampling: adaptive at tight
tolerances). Every solve's NFE is reported (`nfe` in the training metrics; `eval_nfe`,
`sample_nfe` in the results).
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import distributions
from gm_jax.config import Choice, Range
from gm_jax.models import ffjord, flows
from gm_jax.recipes.images import ImageFlowExperiment
from gm_jax.recipes.toy import ToyFlowExperiment
from gm_jax.viz import toy as toy_viz

CNF_SCHEMA = {
    "activation": Choice(*ffjord.ACTIVATIONS), "time_length": Range(0.0, lo_open=True),
    "hutchinson_noise": Choice(*ffjord.NOISES), "train_trace": Choice(*ffjord.TRACES), "eval_trace": Choice(*ffjord.TRACES),
    "kinetic_weight": Range(0.0), "jacobian_weight": Range(0.0),
    **{f"{stage}_{k}": rule for stage in ("train", "eval") for k, rule in (
        ("solver", Choice(*ffjord.SOLVERS)), ("rtol", Range(0.0, lo_open=True)), ("atol", Range(0.0, lo_open=True)),
        ("num_steps", Range(0, integer=True)), ("max_steps", Range(1, integer=True)))},
}


def cnf_config(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Add the fields of a continuous flow to `c` (in place; returned): the dynamics' activation, T, the
    trace estimators and Hutchinson's noise, the regulariser weights and the two solves."""
    c.activation = "tanh"
    c.time_length = 0.5  # T (FFJORD learns it, starting from 0.5; fixed here)
    c.hutchinson_noise = "gaussian"  # gaussian | rademacher
    c.train_trace = "exact"  # exact | hutchinson
    c.eval_trace = "exact"
    c.kinetic_weight = 0.0  # Finlay et al. 2020 regularisers (0: off)
    c.jacobian_weight = 0.0
    c.train_solver, c.train_rtol, c.train_atol, c.train_num_steps, c.train_max_steps = "dopri5", 1e-5, 1e-5, 0, 4096
    c.eval_solver, c.eval_rtol, c.eval_atol, c.eval_num_steps, c.eval_max_steps = "dopri5", 1e-5, 1e-5, 0, 4096
    return c


class CNFMixin:
    """What both CNF experiments share: the solves from the config, the flow, the objective."""

    cnf: ffjord.FFJORD
    cnf_shape: tuple[int, ...]  # the shape of one point in the CNF's space

    def solver(self, stage: str) -> ffjord.SolverConfig:
        """The `SolverConfig` of `stage` ("train" | "eval") from the config's `<stage>_*` fields.

        Raises:
          ValueError: an adaptive solve with a fixed-step-only solver (`ffjord.SolverConfig`)."""
        c = self.config
        adjoint = "direct" if c.parallel in ("pmap", "sharded") else "checkpoint"  # see `ffjord.SolverConfig`
        try:
            return ffjord.SolverConfig(c[f"{stage}_solver"], float(c[f"{stage}_rtol"]), float(c[f"{stage}_atol"]),
                                       int(c[f"{stage}_num_steps"]), int(c[f"{stage}_max_steps"]), adjoint)
        except ValueError as e:
            raise ValueError(f"config.{stage}_*: {e}") from None

    def check_solvers(self, dim: int) -> None:
        """Build both solves once, so a bad config fails when the experiment is built; refuse the exact trace
        above `ffjord.EXACT_TRACE_MAX_DIM` dimensions (`dim`: one Jacobian column per dimension and evaluation).

        Raises:
          ValueError: a bad solve (`solver`), or an exact trace in more than `EXACT_TRACE_MAX_DIM` dimensions."""
        self.solver("train"), self.solver("eval")
        for stage in ("train", "eval"):
            if self.config[f"{stage}_trace"] == "exact" and dim > ffjord.EXACT_TRACE_MAX_DIM:
                raise ValueError(f"config.{stage}_trace='exact' in {dim} dimensions: the exact trace is for at most "
                                 f"{ffjord.EXACT_TRACE_MAX_DIM}; use 'hutchinson' (an unbiased estimate)")

    def cnf_objective(self, params, y: jax.Array, keys: jax.Array):
        """(-log p(y) per example [B] under the CNF, the regularisers' weighted sum [B], metrics): the training
        solve, Hutchinson's noise from the per-example `keys`."""
        c = self.config
        regularise = bool(c.kinetic_weight or c.jacobian_weight)
        z, tr_int, stats = self.cnf.forward(params, y, self.solver("train"), c.train_trace,
                                            keys if c.train_trace == "hutchinson" else None, regularise)
        nll = -(distributions.standard_normal_log_prob(z.reshape(z.shape[0], -1)) + tr_int)
        penalty = c.kinetic_weight * stats["kinetic"] + c.jacobian_weight * stats["jacobian_frobenius"]
        metrics = {"nfe": stats["nfe"]}
        if regularise:
            metrics.update(kinetic=stats["kinetic"].mean(), jacobian_frobenius=stats["jacobian_frobenius"].mean())
        return nll, penalty, metrics

    def cnf_log_prob(self, params, y: jax.Array, key: jax.Array | None):
        """log p(y) under the CNF with the evaluation solve and trace, nats [B]."""
        trace = self.config.eval_trace
        return self.cnf.log_prob(params, y, self.solver("eval"), trace, key if trace == "hutchinson" else None)[0]


class ToyCNFExperiment(CNFMixin, ToyFlowExperiment):
    """FFJORD on a 2-D toy density (subclasses define `draw_data` and build `self.cnf`).

    Config fields: those of `cnf_config`, `hidden` (the concat-squash widths), `compare_run` (a toy-flow
    run on the same problem whose density `density.png` shows beside FFJORD's; "" = none), and
    `ToyFlowExperiment`'s.
    """

    schema = {**ToyFlowExperiment.schema, **CNF_SCHEMA, "hidden": Range(1, integer=True, each=True)}
    cnf_shape = (2,)  # one point in the CNF's space (the data's: no preprocessing)

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.cnf = ffjord.FFJORD(ffjord.MLPDynamics(tuple(config.hidden), config.activation), config.time_length,
                                 config.hutchinson_noise)
        self.check_solvers(2)
        self.log_prob_needs_key = config.eval_trace == "hutchinson"

    def init_params(self, key):
        return self.cnf.init(key, jnp.zeros((1, *self.cnf_shape), jnp.float32))

    def loss_fn(self, params, batch, keys):
        """-log p(x) (nats per point) + the regularisers; metrics `nll_nats`, `nfe` (of the training solve)."""
        nll, penalty, metrics = self.cnf_objective(params, batch["x"], keys)
        return (nll + penalty).mean(), {"nll_nats": nll.mean(), **metrics}

    def log_prob(self, params, x, key=None):
        """log p(x), nats float32 [N] for points float32 [N, 2]: the evaluation solve, exact trace by default
        (Hutchinson's estimate with `eval_trace = "hutchinson"`, which needs `key`)."""
        return self.cnf_log_prob(params, x, key)

    def sample(self, params, key, num_samples: int, temperature=1.0):
        """x = z(0) solved backward from z(T) ~ N(0, temperature^2 I): float32 [num_samples, 2]."""
        return self.cnf.sample(params, key, num_samples, self.cnf_shape, self.solver("eval"), temperature)[0]

    def evaluate(self, params, key):
        """`ToyFlowExperiment.evaluate`'s metrics, with the NFE of the test points' solve (`eval_nfe`) and of a
        solve that draws `num_eval_points` samples (`sample_nfe`)."""
        c = self.config
        test = self.draw_data(np.random.default_rng([c.seed, 10 ** 9 + 1]), c.num_eval_points)
        solver = self.solver("eval")
        log_p, nfe = jax.jit(lambda p, y, k: self.cnf.log_prob(p, y, solver, c.eval_trace, k))(
            params, jnp.asarray(test), key if c.eval_trace == "hutchinson" else None)
        _, sample_nfe = jax.jit(lambda p, k: self.cnf.sample(p, k, int(c.num_eval_points), self.cnf_shape, solver))(params, key)
        _, integral = self.density_on_grid(params)
        return {"test_nll_nats": -float(np.mean(np.asarray(log_p, np.float64))), "density_integral": integral,
                "problem": c.problem, "grid_limit": float(c.grid_limit), "grid_size": int(c.grid_size),
                "num_eval_points": int(c.num_eval_points), "eval_nfe": int(nfe), "sample_nfe": int(sample_nfe),
                "nfe_note": "function evaluations of one solve of the num_eval_points test points / samples",
                "figures": ["density.png", "samples.png"] + (["density_vs_discrete.png"] if c.compare_run else [])}

    def write_artifacts(self, params, key, workdir: Path) -> None:
        super().write_artifacts(params, key, workdir)
        c = self.config
        if not c.compare_run:
            return
        import gm_jax

        other = gm_jax.load(c.compare_run)
        if other.config.get("problem") != c.problem:
            raise ValueError(f"config.compare_run={c.compare_run!r} is a {other.config.get('problem')!r} run; "
                             f"this run's problem is {c.problem!r}")
        data = self.draw_data(np.random.default_rng([c.seed, 10 ** 9 + 2]), 20_000)
        other_density, other_integral = other.experiment.density_on_grid(other.params)
        density, integral = self.density_on_grid(params)
        toy_viz.save_density_columns(
            Path(workdir) / "density_vs_discrete.png", data,
            [(f"{other.experiment.name} (integral {other_integral:.3f})", other_density),
             (f"{self.name} (integral {integral:.3f})", density)], c.grid_limit, f"{c.problem}")


class ImageCNFExperiment(CNFMixin, ImageFlowExperiment):
    """FFJORD on dequantized 8-bit MNIST: x~ = (x + u) / 256, the logit preprocessing of the discrete
    flows (`flows.Logit`, with its log-determinant), then the CNF with `ConvDynamics`.

    Config fields: those of `cnf_config`, `channels` (the dynamics' convolutions), `squeeze`, `num_test_images`
    (test images scored: the adaptive solves are the evaluation's cost), `preprocess`, `logit_alpha`,
    `num_recon_images`, and the image-flow training fields (`image_flow_config`).
    """

    schema = {**ImageFlowExperiment.schema, **CNF_SCHEMA, "channels": Range(1, integer=True, each=True),
              "num_test_images": Range(1, integer=True), "squeeze": Choice(True, False)}
    setup_fields, setup_arrays = (), ()  # no actnorm: nothing is computed from the data before training

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.cnf = ffjord.FFJORD(ffjord.ConvDynamics(tuple(config.channels), config.activation), config.time_length,
                                 config.hutchinson_noise)
        self.check_solvers(self.num_dims)

    def build_flow(self):
        """The parameter-free bijector from [0, 1] images to the CNF's space: the preprocessing, then with
        `config.squeeze` a squeeze (2x2 patches into channels: [28, 28, 1] -> [14, 14, 4], volume preserving,
        as each scale of FFJORD's multiscale flow starts)."""
        pre = flows.preprocessing(self.config.preprocess, self.config.logit_alpha)
        return flows.Chain([pre, flows.Squeeze()]) if self.config.squeeze else pre

    @property
    def cnf_shape(self) -> tuple[int, ...]:
        """The shape of one point in the CNF's space: (28, 28, 1), or (14, 14, 4) squeezed."""
        return (14, 14, 4) if self.config.squeeze else tuple(self.data_shape)

    @property
    def num_test_images(self) -> int:
        return int(self.config.num_test_images)

    def init_params(self, key):
        return self.cnf.init(key, jnp.zeros((1, *self.cnf_shape), jnp.float32))

    def _preprocess(self, x_t):
        return self.flow.apply({}, x_t, method="forward_and_log_det")

    def loss_fn(self, params, batch, keys):
        """-log p(x~) + D ln 256, nats per image (+ the regularisers); u and Hutchinson's noise per example."""
        x = jax.vmap(flows.dequantize)(jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys), batch["image"])
        y, ld = self._preprocess(x)
        nll, penalty, metrics = self.cnf_objective(params, y, jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys))
        nll = (nll - ld + self.dim * flows.LN256).mean()
        return nll + penalty.mean(), {"bits_per_dim": distributions.nats_to_bits(nll, self.dim), **metrics}

    def log_prob(self, params, x, key):
        """log p(x~) - D ln 256, nats float32 [N] (u and Hutchinson's noise from `key`: a stochastic estimate)."""
        u_key, e_key = jax.random.split(key)
        y, ld = self._preprocess(flows.dequantize(u_key, jnp.asarray(x)))
        return self.cnf_log_prob(params, y, e_key) + ld - self.dim * flows.LN256

    def sample(self, params, key, num_samples: int, temperature=1.0):
        """uint8 [num_samples, 28, 28, 1] in 0-255: the preprocessing inverted on z(0), solved backward from
        z(T) ~ N(0, temperature^2 I)."""
        y, _ = self.cnf.sample(params, key, num_samples, self.cnf_shape, self.solver("eval"), temperature)
        x, _ = self.flow.apply({}, y, method="inverse_and_log_det")
        return flows.quantize(x)

    def reconstruction_errors(self, params, x_t, dtype=jnp.float32) -> np.ndarray:
        """Per-image max |x~ - inverse(forward(x~))| through the evaluation solves, float64 [N]."""
        solver = self.solver("eval")

        @jax.jit
        def err(p, xb):
            y, _ = self._preprocess(xb)
            z = self.cnf.forward(p, y, solver, "hutchinson", jax.random.key(0))[0]
            back, _ = self.flow.apply({}, self.cnf.inverse(p, z, solver)[0], method="inverse_and_log_det")
            return jnp.max(jnp.abs(back - xb).reshape(xb.shape[0], -1), axis=1)

        p = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
        bs = self.config.eval_batch_size
        x_t = np.asarray(x_t)
        return np.concatenate([np.asarray(err(p, jnp.asarray(x_t[i:i + bs], dtype)), np.float64)
                               for i in range(0, len(x_t), bs)])

    def reconstruction_report(self, params, x_t) -> dict:
        e = self.reconstruction_errors(params, x_t)
        return {"reconstruction_max_abs_error": float(e.max()), "reconstruction_median_abs_error": float(np.median(e)),
                "reconstruction_fraction_above_1e-4": float(np.mean(e > 1e-4))}

    def extra_metrics(self, params, keys):
        out = super().extra_metrics(params, keys)
        test = self.load("test", min(self.config.eval_batch_size, self.num_test_images))["image"]
        solver = self.solver("eval")
        y, _ = self._preprocess(flows.dequantize(keys["test"], jnp.asarray(test)))
        _, nfe = jax.jit(lambda p, v: self.cnf.log_prob(p, v, solver, "hutchinson", jax.random.key(0)))(params, y)
        _, sample_nfe = jax.jit(lambda p: self.cnf.sample(p, jax.random.key(0), len(test), self.cnf_shape,
                                                          solver))(params)
        return {**out, "eval_nfe": int(nfe), "sample_nfe": int(sample_nfe), "num_test_images": self.num_test_images,
                "trace_note": "test log-likelihoods use Hutchinson's estimator (unbiased for log p, one noise "
                              "draw per image)" if self.config.eval_trace == "hutchinson" else "exact trace"}
