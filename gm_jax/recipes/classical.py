"""The classical family: models fitted by EM or Gibbs sampling instead of gradients, run by the same loop.

* `GMMExperiment`: a Gaussian mixture, one training step = one full-batch EM iteration;
  `RingGMMExperiment` fits the 2-D ring of Gaussians (`gm_jax.data.toy`), `PCAGMMExperiment`
  MNIST projected on its principal components;
* `LDAExperiment`: latent Dirichlet allocation on the speeches of tiny Shakespeare
  (`gm_jax.data.corpus`): collapsed Gibbs sweeps, then mean-field VI iterations (the best
  of `vi_restarts` initialisations), both scored by held-out document completion.

The models themselves are `gm_jax.models.gmm` and `gm_jax.models.lda`.
"""
from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from gm_jax import viz
from gm_jax.config import Choice, Range, apply_overrides
from gm_jax.data import corpus, load_split, take_rows, toy
from gm_jax.experiment import Experiment
from gm_jax.models import gmm, lda
from gm_jax.training.loop import write_json
from gm_jax.training.metrics import read_metrics
from gm_jax.viz import curves
from gm_jax.viz import toy as toy_viz


class GMMExperiment(Experiment):
    """A GMM experiment: one training step = one full-batch EM iteration (jitted E and M steps).

    There is no gradient training: `init_params` is the k-means++ initialisation
    on the training data (deterministic given the init key), the optimizer is
    `optax.identity()`, and `update` replaces the parameters by one EM step
    on the batch, which `train_batches` makes the whole training set every
    step. So `config.num_steps` is the number of EM iterations, the loop's
    checkpoints and resumption work as for any model, and `gm_jax.load`
    restores the fit. Under `parallel = pmap | sharded` the data are sharded
    and the sufficient statistics averaged over devices (the same update).

    Logged per step: `loss` = -`train_log_likelihood`, the mean training
    log-likelihood (nats per example) of the parameters *entering* the step.

    Subclasses define `train_data()` / `test_data()` (float32 [N, D]) and may
    add non-EM entries to the parameters with `extra_params()`.
    Parameters: `{"gmm": <GMM params>, **extra_params()}`.
    """

    data_kind = "float_points"
    schema = {"covariance_type": Choice(*gmm.COVARIANCE_TYPES), "num_components": Range(1, integer=True),
              "reg_covar": Range(0.0), "kmeans_iters": Range(0, integer=True)}

    def train_data(self) -> np.ndarray:
        raise NotImplementedError

    def test_data(self) -> np.ndarray:
        raise NotImplementedError

    def extra_params(self) -> dict:
        return {}

    def init_params(self, key: jax.Array, x=None):
        """k-means++ and `kmeans_iters` Lloyd iterations on the training data `x` (float [N, D]; None:
        `train_data()`), then an M step (`gmm.init_params`), plus `extra_params()`."""
        c = self.config
        x = self.train_data() if x is None else x
        if x.shape[0] < c.num_components:
            raise ValueError(f"{x.shape[0]} training points for {c.num_components} components")
        return {"gmm": gmm.init_params(key, x, c.num_components, c.covariance_type, c.reg_covar, c.kmeans_iters),
                **self.extra_params()}

    def _init_state_from(self, key: jax.Array, x) -> TrainState:
        return TrainState.create(apply_fn=None, params=self.init_params(key, x), tx=self.optimizer())

    @functools.cached_property
    def jit_init_state(self):
        """`init_state` jitted with the training data as an argument (a constant of its size would slow the
        compilation down), so training and `gm_jax.create` start from the same state."""
        jitted = jax.jit(self._init_state_from)
        return lambda key: jitted(key, jnp.asarray(self.train_data()))

    def abstract_state(self):
        """The state's shapes without reading the data (they do not depend on the number of points)."""
        x = jax.ShapeDtypeStruct((int(self.config.num_components), *self.data_shape), jnp.float32)
        return jax.eval_shape(self._init_state_from, jax.random.key(0), x)

    def optimizer(self):
        return optax.identity()

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        c = self.config
        new, ll = gmm.em_step(state.params["gmm"], batch["x"], c.covariance_type, c.reg_covar, axis_name)
        params = {**state.params, "gmm": new}
        return state.replace(step=state.step + 1, params=params), {"loss": -ll, "train_log_likelihood": ll}

    def global_batch_size(self) -> int:
        return len(self.train_data())

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        """The whole training set, every step (full-batch EM); with `rows`, those examples of it."""
        batch = take_rows({"x": self.train_data()}, rows)
        while True:
            yield batch

    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """float32 [num_samples, D] draws of the generative process (`gm_jax.models.gmm.sample`)."""
        return gmm.sample(params["gmm"], key, num_samples, self.config.covariance_type)

    def log_prob(self, params, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Exact log p(x), float32 [N] nats (`gm_jax.models.gmm.log_prob`)."""
        return gmm.log_prob(params["gmm"], x, self.config.covariance_type)

    def mean_log_prob(self, params, x: np.ndarray) -> float:
        """Mean exact log-likelihood of float [N, D] points in batches of `eval_batch_size`, nats per example."""
        f = self.jit_log_prob
        size = self.config.eval_batch_size
        total = sum(float(jnp.sum(f(params, jnp.asarray(x[i:i + size])))) for i in range(0, len(x), size))
        return total / len(x)

    def validate(self, params, key: jax.Array) -> dict:
        """`val_log_likelihood_nats`: `evaluate`'s exact test log-likelihood (nats per example) on the first
        `config.num_validation_examples` test points (the ring's test draws; MNIST's test images, which has
        no validation split)."""
        x = self.test_data()[:self.config.num_validation_examples]
        return {"val_log_likelihood_nats": self.mean_log_prob(params, x)}


class RingGMMExperiment(GMMExperiment):
    """A GMM fitted to `num_train` fixed draws of the ring of Gaussians (test: `num_test` other draws).

    Train points come from `default_rng([seed, 0])`, test points from `default_rng([seed, 1])`.
    Config fields used besides the GMM's: `num_train`, `num_test`, `ring_radius`, `ring_std`, `num_modes`.
    """

    data_shape = (2,)

    def _ring(self, part: int, n: int) -> np.ndarray:
        c = self.config
        return toy.ring_of_gaussians(np.random.default_rng([c.seed, part]), n, c.num_modes, c.ring_radius, c.ring_std)

    def train_data(self) -> np.ndarray:
        return self._ring(0, self.config.num_train)

    def test_data(self) -> np.ndarray:
        return self._ring(1, self.config.num_test)

    def centers(self) -> np.ndarray:
        return toy.ring_centers(self.config.num_modes, self.config.ring_radius)

    def true_params(self) -> dict:
        """The generating mixture as GMM parameters (full covariances)."""
        c = self.config
        k = c.num_modes
        return gmm.make_params(np.full(k, 1 / k), self.centers(), np.tile(np.eye(2) * c.ring_std**2, (k, 1, 1)))

    def mean_errors(self, params) -> np.ndarray:
        """Distances between true and fitted means after optimal matching (float [min(K, modes)])."""
        from scipy.optimize import linear_sum_assignment

        fitted = np.asarray(params["gmm"]["means"])
        cost = np.linalg.norm(self.centers()[:, None] - fitted[None], axis=-1)
        rows, cols = linear_sum_assignment(cost)
        return cost[rows, cols]

    num_progress_samples = 500  # points of evaluation during training, drawn as a scatter plot

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
        workdir = Path(workdir)
        c = self.config
        p = params["gmm"]
        means, covs = np.asarray(p["means"]), np.asarray(p["covs"])
        if c.covariance_type == "diag":
            covs = np.stack([np.diag(v) for v in covs])
        weights = np.asarray(jax.nn.softmax(p["logits"]))
        lim = c.ring_radius * 1.5
        toy_viz.save_mixture_ellipses(
            workdir / "ellipses.png", self.train_data(), means, covs, weights, self.centers(), lim,
            f"GMM ({c.covariance_type}, K={c.num_components}): 1 and 2 sigma ellipses, weights")
        xs, comp = gmm.sample(p, key, 2000, c.covariance_type, return_components=True)
        toy_viz.save_component_samples(workdir / "samples.png", np.asarray(xs), np.asarray(comp), lim,
                                       "2,000 samples (k ~ pi, x ~ N(mu_k, Sigma_k))")
        curves.save_em_curve(workdir / "metrics.jsonl", workdir / "log_likelihood.png", f"{self.name}: EM")


class PCAGMMExperiment(GMMExperiment):
    """A GMM of MNIST's PCA coordinates: float32 [N, pca_dim] (`config.pca_dim`), the PCA in the parameters.

    The PCA of the training images (scaled to [0, 1]; eigenvectors of their 784 x 784 covariance,
    computed once in NumPy float64) is `params["pca"]` (fixed; EM changes only `params["gmm"]`), so
    `gm_jax.load` restores it with the mixture. `encode` / `decode` map images <-> coordinates.
    """

    # The PCA is the data setup (`Experiment.data_setup`); it is also in the parameters (`params["pca"]`).
    setup_fields = ("data_dir", "pca_dim")
    setup_arrays = ("mean", "basis", "explained")

    def __init__(self, config):
        super().__init__(config)
        self.data_shape = (int(config.pca_dim),)
        self._cache = {}

    # -- data and PCA ---------------------------------------------------------------
    def _images(self, split: str) -> np.ndarray:
        """float32 [N, 784] pixels in [0, 1]."""
        images = load_split("mnist", split, self.config.data_dir or None)["image"]
        return images.reshape(len(images), -1).astype(np.float32) / 255.0

    def compute_data_setup(self) -> dict[str, np.ndarray]:
        """The PCA of the training images: `mean` float32 [784], `basis` float32 [pca_dim, 784]
        (orthonormal rows, by decreasing variance) and `explained` (float64 scalar: the fraction of the
        variance kept)."""
        x = self._images("train").astype(np.float64)
        mean = x.mean(0)
        cov = np.cov(x - mean, rowvar=False)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1][: self.config.pca_dim]
        return {"mean": mean.astype(np.float32), "basis": vecs[:, order].T.astype(np.float32),
                "explained": np.float64(vals[order].sum() / vals.sum())}

    def pca(self) -> dict:
        """The PCA of the training images (the data setup, `compute_data_setup`): `mean`, `basis` and
        `explained` (a float)."""
        s = self.data_setup
        return {"mean": s["mean"], "basis": s["basis"], "explained": float(s["explained"])}

    def encode(self, images) -> np.ndarray:
        """Images (uint8 [N, 28, 28, 1] in 0..255) -> PCA coordinates float32 [N, pca_dim]."""
        p = self.pca()
        x = np.asarray(images).reshape(len(images), -1).astype(np.float32) / 255.0
        return (x - p["mean"]) @ p["basis"].T

    def decode(self, params, z) -> jax.Array:
        """PCA coordinates float [N, pca_dim] -> images float32 [N, 28, 28, 1] in [0, 1]."""
        x = params["pca"]["mean"] + jnp.asarray(z) @ params["pca"]["basis"]
        return jnp.clip(x, 0.0, 1.0).reshape(-1, 28, 28, 1)

    def train_data(self) -> np.ndarray:
        if "train" not in self._cache:
            p = self.pca()
            self._cache["train"] = (self._images("train") - p["mean"]) @ p["basis"].T
        return self._cache["train"]

    def test_data(self) -> np.ndarray:
        p = self.pca()
        return (self._images("test") - p["mean"]) @ p["basis"].T

    def extra_params(self) -> dict:
        p = self.pca()
        return {"pca": {"mean": jnp.asarray(p["mean"]), "basis": jnp.asarray(p["basis"])}}

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, params, key: jax.Array) -> dict:
        train, test = self.train_data(), self.test_data()
        mu = train.mean(0, dtype=np.float64)
        cov = np.cov(train.astype(np.float64), rowvar=False) + self.config.reg_covar * np.eye(train.shape[1])
        single = gmm.make_params([1.0], mu[None], cov[None])
        return {"test_log_likelihood_nats": self.mean_log_prob(params, test),
                "train_log_likelihood_nats": self.mean_log_prob(params, train),
                "single_gaussian_test_log_likelihood_nats": float(np.mean(np.asarray(gmm.log_prob(single, test)))),
                "pca_dim": int(self.config.pca_dim), "pca_explained_variance": self.pca()["explained"],
                "num_components": int(self.config.num_components), "covariance_type": self.config.covariance_type,
                "em_iterations": int(self.config.num_steps), "units": "nats per image, density of PCA coordinates",
                "figures": ["samples.png", "means.png", "log_likelihood.png"]}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        z = self.jit_sample(params, key, 64)
        viz.save_image_grid(workdir / "samples.png", np.asarray(self.decode(params, z)), cols=8)
        order = np.argsort(-np.asarray(params["gmm"]["logits"]))
        viz.save_image_grid(workdir / "means.png", np.asarray(self.decode(params, params["gmm"]["means"][order])),
                            cols=10)
        curves.save_em_curve(workdir / "metrics.jsonl", workdir / "log_likelihood.png",
                             f"{self.name}: EM, K={self.config.num_components}, PCA {self.config.pca_dim}")


class LDAExperiment(Experiment):
    """LDA on the speeches of tiny Shakespeare: `gibbs_sweeps` collapsed Gibbs sweeps, then `vi_iterations`
    mean-field VI iterations, as the steps of one training loop (see `experiments.lda_shakespeare`).

    `config.num_steps` is derived: 0 (the default) becomes `gibbs_sweeps + vi_iterations` in
    `self.config` (so config.json records the length run); any other value must equal that sum.

    Parameters: `{"gibbs": <Gibbs state>, "vi_restarts": <vi_restarts VI states, stacked [R, ...]>,
    "vi": <the restart with the highest ELBO after the latest VI iteration; restart 0 before the first>}`
    (VI runs every restart; `vi` is what evaluation and sampling use); samples are documents of word ids
    int32 [N, sample_length] in [0, vocab_size) (`data_kind = "tokens"`).

    A Gibbs sweep is sequential, so there is nothing to split over devices: a batch is
    `batch_size` copies of the whole corpus (1 by default), and under `parallel = pmap | sharded`
    every device runs the same sweep on its copy with the global first key (no speed-up; the
    modes exist so that the experiment keeps the contract of every other one).
    """

    data_kind = "tokens"
    schema = {"num_topics": Range(1, integer=True), "alpha": Range(0.0, lo_open=True), "eta": Range(0.0, lo_open=True),
              "sample_from": Choice("gibbs", "vi"), "heldout_every": Range(2, integer=True),
              **{k: Range(1, integer=True) for k in ("gibbs_sweeps", "vi_iterations", "vi_inner_steps",
                                                      "vi_restarts", "fold_in_iters", "min_count", "sample_length",
                                                      "top_words")}}

    def __init__(self, config):
        """Raises ValueError: a config value outside the schema, or num_steps neither 0 nor
        gibbs_sweeps + vi_iterations."""
        super().__init__(config)
        total = config.gibbs_sweeps + config.vi_iterations
        if config.num_steps == 0:  # derived
            self.config = apply_overrides(config, {"num_steps": total}, self.name)
        elif config.num_steps != total:
            raise ValueError(
                f"config.num_steps={config.num_steps} for {self.name}, but the run is gibbs_sweeps + vi_iterations "
                f"= {config.gibbs_sweeps} + {config.vi_iterations} = {total} steps: leave num_steps at 0 (derived) "
                f"and set gibbs_sweeps / vi_iterations for another length")
        self.data_shape = (int(config.sample_length),)
        self._corpus = None

    # -- corpus -----------------------------------------------------------------------------
    # The corpus is the data setup (`Experiment.data_setup`): built once from the text, kept in the user
    # cache and with each run, so a model is created or loaded without re-reading the speeches.
    setup_fields = ("data_dir", "heldout_every", "min_count")
    setup_arrays = ("vocab", "train_words", "train_docs", "heldout_words", "heldout_docs", "train_speeches",
                    "heldout_speeches")

    def compute_data_setup(self) -> dict[str, np.ndarray]:
        """The corpus of `gm_jax.data.corpus.speech_corpus` as arrays: `vocab` str [V] (by decreasing count),
        `train_words` / `train_docs` and `heldout_words` / `heldout_docs` int32 [N] (`lda.corpus_arrays`),
        and the speech counts before empty documents were dropped (int64 scalars)."""
        c = self.config
        built = corpus.speech_corpus(c.data_dir or None, c.heldout_every, c.min_count)
        v = len(built["vocab"])
        (tw, td), (hw, hd) = lda.corpus_arrays(built["train"], v), lda.corpus_arrays(built["heldout"], v)
        return {"vocab": np.array(built["vocab"], dtype=str), "train_words": tw, "train_docs": td,
                "heldout_words": hw, "heldout_docs": hd,
                "train_speeches": np.int64(built["stats"]["train_speeches"]),
                "heldout_speeches": np.int64(built["stats"]["heldout_speeches"])}

    def corpus(self) -> dict:
        """Vocabulary and token arrays (from the data setup): `vocab` (list of words, by decreasing count),
        `train` and `heldout` = (words, docs) int32 arrays, and statistics (those of
        `gm_jax.data.corpus.speech_corpus`)."""
        if self._corpus is None:
            s = self.data_setup
            vocab = s["vocab"].tolist()
            self.index = {w: i for i, w in enumerate(vocab)}
            train, heldout = (s["train_words"], s["train_docs"]), (s["heldout_words"], s["heldout_docs"])
            stats = {"vocab_size": len(vocab), "train_speeches": int(s["train_speeches"]),
                     "train_docs": int(train[1][-1]) + 1, "train_tokens": len(train[0]),
                     "heldout_speeches": int(s["heldout_speeches"]), "heldout_docs": int(heldout[1][-1]) + 1,
                     "heldout_tokens": len(heldout[0])}
            self._corpus = {"vocab": vocab, "train": train, "heldout": heldout, "stats": stats}
        return self._corpus

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Documents (raw strings) -> (words, docs) token arrays over the training vocabulary.

        Raises:
          ValueError: a document with no in-vocabulary word (named by index).
        """
        self.corpus()
        return lda.corpus_arrays([corpus.encode_tokens(self.index, corpus.tokenize(t)) for t in texts],
                                 len(self.index))

    def decode(self, ids) -> list[str]:
        """Word ids [..., L] -> strings of space-separated words (one per row)."""
        vocab = self.corpus()["vocab"]
        ids = np.asarray(ids).reshape(-1, np.shape(ids)[-1])
        return [" ".join(vocab[i] for i in row) for row in ids]

    @property
    def vocab_size(self) -> int:
        return len(self.corpus()["vocab"])

    @property
    def num_values(self) -> int:
        """The vocabulary size (the range of the `tokens` this experiment samples)."""
        return self.vocab_size

    # -- parameters and updates ----------------------------------------------------------------
    def init_params(self, key: jax.Array):
        """Gibbs: random assignments; VI: `vi_restarts` of Hoffman et al.'s lambda initialisation (see
        `gm_jax.models.lda`), `vi` the first of them."""
        c = self.config
        words, docs = self.corpus()["train"]
        num_docs, v = int(docs[-1]) + 1, self.vocab_size  # NumPy: concrete under jax.eval_shape (gm_jax.load)
        words, docs = jnp.asarray(words), jnp.asarray(docs)
        kg, kv = jax.random.split(key)
        restarts = lda.vi_init_restarts(kv, words, docs, num_docs, c.num_topics, v, c.alpha, c.vi_restarts)
        return {"gibbs": lda.gibbs_init(kg, words, docs, num_docs, c.num_topics, v), "vi_restarts": restarts,
                "vi": jax.tree_util.tree_map(lambda a: a[0], restarts)}

    def optimizer(self) -> optax.GradientTransformation:
        return optax.identity()

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        """The whole training corpus as tokens, every step, in `batch_size` copies:
        `{"words": int32 [batch_size, N], "docs": int32 [batch_size, N]}` (the `rows` of them, when given)."""
        words, docs = self.corpus()["train"]
        b = self.config.batch_size
        batch = take_rows({"words": np.broadcast_to(words, (b, len(words))),
                           "docs": np.broadcast_to(docs, (b, len(docs)))}, rows)
        while True:
            yield batch

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """A Gibbs sweep while step < gibbs_sweeps, afterwards a VI iteration of every restart (`lax.cond`);
        `log_lik_per_token` is log p(w | z) / N, then the best restart's ELBO / N."""
        c = self.config
        words, docs = batch["words"][0], batch["docs"][0]  # one copy of the corpus
        n = words.shape[0]
        key = jax.lax.all_gather(keys, axis_name, tiled=True)[0] if axis_name else keys[0]  # the global first key

        def gibbs(params):
            new = lda.gibbs_sweep(params["gibbs"], key, words, docs, c.alpha, c.eta)
            return {**params, "gibbs": new}, lda.gibbs_log_likelihood(new, c.eta) / n, jnp.int32(0)

        def vi(params):
            new = jax.vmap(lambda s: lda.vi_step(s, words, docs, c.alpha, c.eta, c.vi_inner_steps))(
                params["vi_restarts"])
            best, elbos = lda.vi_best(new, words, docs, c.alpha, c.eta)
            return {**params, "vi_restarts": new, "vi": best}, jnp.max(elbos) / n, jnp.int32(1)

        params, value, phase = jax.lax.cond(state.step < c.gibbs_sweeps, gibbs, vi, state.params)
        return state.replace(step=state.step + 1, params=params), {"loss": -value, "log_lik_per_token": value,
                                                                    "phase": phase}

    def topics(self, params, method: str) -> jax.Array:
        """Point topics float32 [K, V] of `method` (gibbs | vi)."""
        return lda.gibbs_topics(params["gibbs"], self.config.eta) if method == "gibbs" else lda.vi_topics(params["vi"])

    # -- sampling -------------------------------------------------------------------------------
    def sample(self, params, key: jax.Array, num_samples: int) -> jax.Array:
        """Documents of the generative process: int32 [num_samples, sample_length] word ids."""
        c = self.config
        return lda.sample(self.topics(params, c.sample_from), key, num_samples, c.sample_length, c.alpha)

    # -- evaluation -----------------------------------------------------------------------------
    def heldout_perplexity(self, topics, max_docs: int | None = None) -> float:
        """Document-completion perplexity of the held-out speeches (see the module docstring); `max_docs`: of
        the first that many only."""
        words, docs = self.corpus()["heldout"]
        if max_docs is not None and max_docs < int(docs[-1]) + 1:
            keep = docs < max_docs
            words, docs = words[keep], docs[keep]
        (ow, od), (hw, hd) = lda.split_for_completion(words, docs)
        num_docs = int(docs[-1]) + 1
        theta = jax.jit(lda.fold_in, static_argnums=(3, 5))(topics, jnp.asarray(ow), jnp.asarray(od), num_docs,
                                                            self.config.alpha, self.config.fold_in_iters)
        ll = lda.completion_log_likelihood(topics, theta, jnp.asarray(hw), jnp.asarray(hd))
        return float(np.exp(-np.mean(np.asarray(ll, np.float64))))

    def unigram_perplexity(self) -> float:
        """Add-one unigram of the training tokens on the same scored held-out words."""
        words, _ = self.corpus()["train"]
        p = (np.bincount(words, minlength=self.vocab_size) + 1.0) / (len(words) + self.vocab_size)
        _, (hw, _) = lda.split_for_completion(*self.corpus()["heldout"])
        return float(np.exp(-np.mean(np.log(p[hw]))))

    def top_words(self, topics) -> list[str]:
        vocab = self.corpus()["vocab"]
        order = np.argsort(-np.asarray(topics), axis=1)[:, : self.config.top_words]
        return [" ".join(vocab[i] for i in row) for row in order]

    def evaluate(self, params, key: jax.Array) -> dict:
        c = self.config
        words, docs = (jnp.asarray(a) for a in self.corpus()["train"])
        elbos = jax.jit(lda.vi_best)(params["vi_restarts"], words, docs, c.alpha, c.eta)[1]
        elbos = np.asarray(elbos, np.float64) / len(words)
        out = {"gibbs_perplexity": self.heldout_perplexity(self.topics(params, "gibbs")),
               "vi_perplexity": self.heldout_perplexity(self.topics(params, "vi")),
               "unigram_perplexity": self.unigram_perplexity(),
               "gibbs_final_log_lik_per_token": float(lda.gibbs_log_likelihood(params["gibbs"], c.eta)) / len(words),
               "vi_final_elbo_per_token": float(elbos.max()),  # the ELBO of params["vi"], the best restart
               "vi_restarts": int(c.vi_restarts), "vi_best_restart": int(np.argmax(elbos)),
               "vi_restart_elbo_per_token": [float(e) for e in elbos],
               "num_topics": int(c.num_topics), "alpha": float(c.alpha), "eta": float(c.eta),
               "gibbs_sweeps": int(c.gibbs_sweeps), "vi_iterations": int(c.vi_iterations),
               "min_count": int(c.min_count), **self.corpus()["stats"],
               "perplexity_method": "document completion (even positions observed, odd scored), "
                                    "variational fold-in with point topics, same for both methods",
               "gibbs_topics": self.top_words(self.topics(params, "gibbs")),
               "vi_topics": self.top_words(self.topics(params, "vi")),
               "figures": ["training.png"], "files": ["comparison.json", "comparison.md", "topics.txt"]}
        self._last_eval = out
        return out

    num_progress_samples = 4  # documents of `config.sample_length` words (`sample_from` topics)

    def validate(self, params, key: jax.Array) -> dict:
        """`val_gibbs_perplexity` and `val_vi_perplexity`: `evaluate`'s held-out perplexity by document completion
        on the first `config.num_validation_examples` held-out speeches, with the topics of each method (VI's
        are its initialisation until the VI phase, `step > gibbs_sweeps`)."""
        n = self.config.num_validation_examples
        return {f"val_{m}_perplexity": self.heldout_perplexity(self.topics(params, m), n) for m in ("gibbs", "vi")}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        c = self.config
        res = getattr(self, "_last_eval", None) or self.evaluate(params, key)
        records = read_metrics(workdir / "metrics.jsonl")
        g = [r for r in records if r["step"] <= c.gibbs_sweeps]
        v = [r for r in records if r["step"] > c.gibbs_sweeps]
        gibbs_wall = g[-1]["wall_s"] if g else float("nan")
        vi_wall = v[-1]["wall_s"] - gibbs_wall if v and g else float("nan")

        def per_iter(rs):  # median seconds per iteration, compile (first record) excluded
            t = np.diff([r["wall_s"] for r in rs])
            return float(np.median(t[1:] if len(t) > 1 else t)) if len(t) else float("nan")

        comparison = {
            "unigram": {"perplexity": res["unigram_perplexity"]},
            "gibbs": {"perplexity": res["gibbs_perplexity"], "wall_s": gibbs_wall, "iterations": c.gibbs_sweeps,
                      "s_per_iteration_median": per_iter(g)},
            "vi": {"perplexity": res["vi_perplexity"], "wall_s": vi_wall, "iterations": c.vi_iterations,
                   "restarts": c.vi_restarts, "s_per_iteration_median": per_iter(v)},
            "note": "wall_s from metrics.jsonl; the Gibbs phase includes the single compilation of the update "
                    "(both phases); a VI iteration updates every restart. Held-out perplexity by document "
                    "completion; lower is better.",
        }
        write_json(workdir / "comparison.json", comparison)
        lines = ["| method | held-out perplexity | iterations | wall time (s) | s / iteration (median) |",
                 "| --- | --- | --- | --- | --- |",
                 f"| unigram (add-one) | {res['unigram_perplexity']:.1f} | - | - | - |"]
        for m, name in (("gibbs", "collapsed Gibbs"), ("vi", f"mean-field VI (best of {c.vi_restarts} restarts)")):
            r = comparison[m]
            lines.append(f"| {name} | {r['perplexity']:.1f} | {r['iterations']} | {r['wall_s']:.1f} | "
                         f"{r['s_per_iteration_median']:.4f} |")
        (workdir / "comparison.md").write_text("\n".join(lines) + "\n")
        text = []
        for m in ("gibbs", "vi"):
            text.append(f"# {m} (K={c.num_topics}, alpha={c.alpha}, eta={c.eta})")
            text += [f"topic {k:2d}: {t}" for k, t in enumerate(res[f"{m}_topics"])]
            text.append("")
        samples = self.decode(self.jit_sample(params, key, 5))
        text.append(f"# 5 documents sampled from the generative process ({c.sample_from} topics)")
        text += samples
        (workdir / "topics.txt").write_text("\n".join(text) + "\n")

        curves.save_lda_curves(workdir / "training.png", g, v, c.gibbs_sweeps,
                               f"collapsed Gibbs: held-out ppl {res['gibbs_perplexity']:.0f}",
                               f"mean-field VI: held-out ppl {res['vi_perplexity']:.0f} "
                               f"(unigram {res['unigram_perplexity']:.0f})")
