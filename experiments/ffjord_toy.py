"""FFJORD (Grathwohl et al. 2019) on 2-D toy densities: two moons, 8 Gaussians, checkerboard.

    python -m experiments.ffjord_toy --workdir runs/ffjord_toy_cb --config.problem=checkerboard \
        [--config.compare_run=runs/realnvp_toy_cb]

A continuous normalising flow (`gm_jax.models.ffjord`): dz/dt = f(z, t) with f an
MLP of concat-squash layers (FFJORD's toy model, tanh), on [0, T]; log p(x) by the
instantaneous change of variables with the exact trace (2-D), solved by diffrax
(adaptive Dopri5 by default for training and evaluation; `--config.train_num_steps=K`
for K fixed steps; `--config.train_trace=hutchinson` for Hutchinson's estimator).
Exact maximum likelihood on fresh draws of the data each step, the same problems,
data and evaluation as `realnvp_toy` (`gm_jax.recipes.toy.ToyFlowExperiment`).

At the end it writes to the workdir `results.json` (`test_nll_nats`, `density_integral`
over the grid [-grid_limit, grid_limit]^2, `eval_nfe` and `sample_nfe`: the function
evaluations of one adaptive solve), `density.png`, `samples.png`, and with
`compare_run` (a trained `realnvp_toy` run of the same problem)
`density_vs_discrete.png`: data / the discrete flow's density / FFJORD's density.

`Model.log_prob(x)` is exact (no key); `Model.sample(key, n, temperature=1.0)` solves
backward from z(T) ~ N(0, T^2 I).
"""
from __future__ import annotations

import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.data import toy
from gm_jax.recipes.cnf import ToyCNFExperiment, cnf_config

def get_config() -> ml_collections.ConfigDict:
    """Default: two moons, 3 concat-squash layers of 64 (tanh), T = 0.5, exact trace, adaptive Dopri5 at
    rtol = atol = 1e-3 for training and 1e-5 for evaluation, batch 256, 2,000 steps."""
    c = cnf_config(config_lib.base_config())
    c.problem = "two_moons"  # two_moons | eight_gaussians | checkerboard
    c.hidden = (64, 64, 64)
    c.train_rtol, c.train_atol = 1e-3, 1e-3  # training solves: looser (fewer NFE); evaluation keeps 1e-5
    c.num_steps = 2000
    c.batch_size = 256
    c.learning_rate = 1e-3
    c.warmup_steps = 100
    c.lr_final_fraction = 0.05
    c.log_every = 100
    c.checkpoint_every = 500
    c.eval_batch_size = 10_000
    c.noise = 0.08  # two_moons
    c.mode_std = 0.15  # eight_gaussians
    c.grid_limit = 4.0
    c.grid_size = 400
    c.num_eval_points = 10_000
    c.init_batch_size = 2  # unused (no data-dependent init); kept for the toy-flow recipe
    c.compare_run = ""  # a toy-flow run dir of the same problem, shown beside FFJORD in density_vs_discrete.png
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Grathwohl et al. 2019, Appendix B.1 (toy densities): 3 concat-squash layers of 64 hidden units with
    tanh, exact trace on 2-D data, dopri5 at rtol = atol = 1e-5, Adam 1e-3; batch 100 (T is learned from 0.5
    there, fixed at 0.5 here). Step count: the default's."""
    c = get_config()
    c.batch_size, c.train_rtol, c.train_atol = 100, 1e-5, 1e-5
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: one layer of 8, 2 Euler steps for training, 2 Euler steps for evaluation, a 20 x 20 grid."""
    c = get_config()
    c.data_dir = "synthetic"
    c.hidden = (8,)
    c.train_solver, c.train_num_steps = "euler", 2
    c.eval_solver, c.eval_num_steps = "euler", 2  # fixed steps compile fastest (adaptive: tests/test_ffjord.py)
    c.batch_size, c.eval_batch_size, c.warmup_steps, c.grid_size, c.num_eval_points = 16, 64, 1, 20, 64
    return c


class Experiment(ToyCNFExperiment):
    name = "ffjord_toy"
    schema = {**ToyCNFExperiment.schema, "problem": Choice(*toy.FLOW_PROBLEMS), "noise": Range(0.0),
              "mode_std": Range(0.0, lo_open=True)}

    def draw_data(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n points float32 [n, 2] of the toy density `config.problem` (`gm_jax.data.toy.flow_problem`)."""
        c = self.config
        return toy.flow_problem(rng, n, c.problem, c.noise, c.mode_std)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ffjord_toy")
