"""Gaussian mixture model by EM on the 2-D ring of 8 Gaussians (the toy data of `gan_toy`).

    python -m experiments.gmm_toy --workdir runs/gmm_toy [--config.covariance_type=diag]

The data are `config.num_train` / `config.num_test` fixed draws of the ring of
`gan_toy` (8 isotropic Gaussians of std `ring_std` on a circle of radius
`ring_radius`, equal weights), drawn with `gan_toy.Experiment.draw_data` from
`default_rng([seed, 0])` (train) and `default_rng([seed, 1])` (test). One
training step is one full-batch EM iteration (`gm_jax.models.gmm.GMMExperiment`);
`config.num_steps` is the number of EM iterations.

Writes `results.json`: `train_log_likelihood_nats` / `test_log_likelihood_nats`
(exact, nats per point), `true_test_log_likelihood_nats` (the generating
mixture's density on the same test points, the ceiling in expectation),
`mean_error_max` / `mean_error_mean` (Euclidean distance between fitted and
true means after matching components with the Hungarian algorithm,
`scipy.optimize.linear_sum_assignment`), `weights`; and figures
`ellipses.png` (data, fitted means and 1- and 2-sigma ellipses of each
component), `samples.png` (draws of the fitted generative process coloured by
component) and `log_likelihood.png` (training log-likelihood per EM iteration).
"""
from __future__ import annotations

from pathlib import Path

import jax
import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax.models import gmm


def get_config() -> ml_collections.ConfigDict:
    """Default: 8 full-covariance components, 50 EM iterations on 5,000 points of the ring (radius 2, std 0.1)."""
    c = config_lib.base_config()
    c.num_components = 8
    c.covariance_type = "full"  # full | diag
    c.reg_covar = 1e-6  # covariance floor added to the diagonal
    c.kmeans_iters = 10
    c.num_steps = 50  # EM iterations
    c.log_every = 1
    c.checkpoint_every = 50
    c.batch_size = 5000  # informational: every step uses the whole training set
    c.num_train = 5000
    c.num_test = 5000
    c.ring_radius = 2.0
    c.ring_std = 0.1
    c.num_modes = 8
    c.eval_batch_size = 5000
    return c


class Experiment(gmm.GMMExperiment):
    name = "gmm_toy"
    data_shape = (2,)

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.num_train < 1 or config.num_test < 1 or config.ring_std <= 0 or config.num_modes < 1:
            raise ValueError("config.num_train, num_test, ring_std and num_modes must be positive")
        from experiments import gan_toy  # the ring sampler lives there

        self.ring = gan_toy.Experiment(config_lib.apply_overrides(gan_toy.get_config(), {
            "ring_radius": float(config.ring_radius), "ring_std": float(config.ring_std),
            "num_modes": int(config.num_modes), "seed": int(config.seed)}, "gan_toy"))

    def train_data(self) -> np.ndarray:
        return self.ring.draw_data(np.random.default_rng([self.config.seed, 0]), self.config.num_train)

    def test_data(self) -> np.ndarray:
        return self.ring.draw_data(np.random.default_rng([self.config.seed, 1]), self.config.num_test)

    def true_params(self) -> dict:
        """The generating mixture as GMM parameters (full covariances)."""
        c = self.config
        k = c.num_modes
        return gmm.make_params(np.full(k, 1 / k), self.ring.centers(), np.tile(np.eye(2) * c.ring_std**2, (k, 1, 1)))

    def mean_errors(self, params) -> np.ndarray:
        """Distances between true and fitted means after optimal matching (float [min(K, modes)])."""
        from scipy.optimize import linear_sum_assignment

        fitted = np.asarray(params["gmm"]["means"])
        cost = np.linalg.norm(self.ring.centers()[:, None] - fitted[None], axis=-1)
        rows, cols = linear_sum_assignment(cost)
        return cost[rows, cols]

    def evaluate(self, params, key: jax.Array) -> dict:
        errs = self.mean_errors(params)
        true_ll = float(np.mean(np.asarray(gmm.log_prob(self.true_params(), self.test_data()))))
        return {"train_log_likelihood_nats": self.mean_log_prob(params, self.train_data()),
                "test_log_likelihood_nats": self.mean_log_prob(params, self.test_data()),
                "true_test_log_likelihood_nats": true_ll,
                "mean_error_max": float(errs.max()), "mean_error_mean": float(errs.mean()),
                "weights": [round(float(w), 4) for w in np.asarray(jax.nn.softmax(params["gmm"]["logits"]))],
                "num_components": int(self.config.num_components), "covariance_type": self.config.covariance_type,
                "em_iterations": int(self.config.num_steps),
                "figures": ["ellipses.png", "samples.png", "log_likelihood.png"]}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        workdir = Path(workdir)
        c = self.config
        p = params["gmm"]
        means, covs = np.asarray(p["means"]), np.asarray(p["covs"])
        if c.covariance_type == "diag":
            covs = np.stack([np.diag(v) for v in covs])
        weights = np.asarray(jax.nn.softmax(p["logits"]))
        x = self.train_data()
        lim = c.ring_radius * 1.5
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3, c="gray", label="training data")
        for k in range(len(means)):
            for s, ls in ((1, "-"), (2, "--")):
                e = gmm.ellipse(means[k], covs[k], s)
                ax.plot(e[:, 0], e[:, 1], ls, c=f"C{k % 10}", lw=1)
            ax.annotate(f"{weights[k]:.3f}", means[k] * 1.25, fontsize=7, ha="center", va="center")
        ax.scatter(*self.ring.centers().T, marker="x", c="k", s=30, label="true means")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="upper left")
        ax.set_title(f"GMM ({c.covariance_type}, K={c.num_components}): 1 and 2 sigma ellipses, weights", fontsize=9)
        fig.tight_layout()
        fig.savefig(workdir / "ellipses.png", dpi=90)
        plt.close(fig)

        xs, comp = gmm.sample(p, key, 2000, c.covariance_type, return_components=True)
        xs, comp = np.asarray(xs), np.asarray(comp)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.scatter(xs[:, 0], xs[:, 1], s=2, c=[f"C{k % 10}" for k in comp])
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title("2,000 samples (k ~ pi, x ~ N(mu_k, Sigma_k))", fontsize=9)
        fig.tight_layout()
        fig.savefig(workdir / "samples.png", dpi=90)
        plt.close(fig)
        gmm.save_log_likelihood_curve(workdir / "metrics.jsonl", workdir / "log_likelihood.png", "gmm_toy: EM")


if __name__ == "__main__":
    from gm_jax.cli import main

    main("gmm_toy")
