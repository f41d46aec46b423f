"""Generative classifiers by Bayes' rule: a Gaussian mixture per class on MNIST's PCA coordinates.

`ClassGMMExperiment` (experiment `bayes_classifier_mnist`) fits p(x | y) for each digit y as a mixture
of `config.num_components` Gaussians, and p(y) as the training-set class frequencies, and classifies
by Bayes' rule, argmax_y log p(x | y) + log p(y) (the optimal classifier when p(x | y) is the true
class-conditional density). The ten mixtures are one GMM of 10 M components in which component k
belongs to class k // M: its mixing weights are p(y) p(k | y), so `gmm.log_prob` of it is the
marginal log p(x) = logsumexp_y log p(x | y) p(y). It is fitted by supervised EM: the library's E and
M steps (`gm_jax.models.gmm`; Bishop 2006, Sec. 9.2) with each example's responsibilities restricted
to the components of its own class (`class_em_step`), which fits the ten mixtures independently and
p(y) by its maximum-likelihood estimate in the same pass -- one full-batch step of the training loop,
so checkpoints, resumption and `parallel = pmap | sharded` work as for `gmm_mnist`.

Features: the PCA of the 60,000 training images of `PCAGMMExperiment` (fitted without labels); the
densities are of the PCA coordinates, not of the 784 pixels.

`learning_curve` reproduces Ng & Jordan 2002 ("On discriminative vs. generative classifiers: a
comparison of logistic regression and naive Bayes"): the test error of the generative classifier and
of its discriminative counterpart -- multinomial logistic regression (scikit-learn) on the same
features -- against the number of training examples per class.
"""
from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState
from jax.scipy.special import logsumexp

from gm_jax import viz
from gm_jax.config import Choice, Range
from gm_jax.data import load_split
from gm_jax.models import gmm
from gm_jax.recipes.classical import PCAGMMExperiment
from gm_jax.viz import classify as classify_viz
from gm_jax.viz import curves

NUM_CLASSES = 10


def by_class(x, y, multiple: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Examples laid out by class: (xs float32 [R, 10, D], w float32 [R, 10]), xs[:, c] the examples of class c
    in their order, then zero rows (w = 0) up to R = the largest class count rounded up to `multiple` (so that
    the rows shard evenly over devices).

    Args:
      x: float [N, D]; y: int [N] in 0..9.
    """
    x, y = np.asarray(x, np.float32), np.asarray(y)
    counts = np.bincount(y, minlength=NUM_CLASSES)
    rows = -(-int(counts.max()) // multiple) * multiple
    xs = np.zeros((rows, NUM_CLASSES, x.shape[1]), np.float32)
    w = np.zeros((rows, NUM_CLASSES), np.float32)
    for c in range(NUM_CLASSES):
        xs[:counts[c], c] = x[y == c]
        w[:counts[c], c] = 1.0
    return xs, w


def _per_class(params: dict, num_components: int) -> dict:
    """GMM parameters over 10 M components -> a leading class axis: logits [10, M], means [10, M, D], ..."""
    return jax.tree_util.tree_map(lambda a: a.reshape(NUM_CLASSES, num_components, *a.shape[1:]), params)


def class_log_prior(logits: jax.Array) -> jax.Array:
    """log p(y), float32 [10], of the class GMM's mixing logits [10 M] (class y's components summed), nats."""
    return logsumexp(logits.reshape(NUM_CLASSES, -1), axis=-1) - logsumexp(logits)


def _merged(stats: dict) -> dict:
    """Per-class statistics [10, M, ...] -> [10 M, ...] (component k of class k // M)."""
    return jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:]), stats)


def class_em_step(params: dict, xs: jax.Array, w: jax.Array, num_components: int, covariance_type: str,
                  reg_covar: float, axis_name: str | None = None):
    """One supervised EM iteration of the class GMM (components k = y M .. y M + M - 1 of class y).

    The E step of an example of class y has responsibilities over its class's M components only (0 for the
    others), so the M step fits each class's mixture to its own examples and the mixing weights to
    p(y) p(k | y) (maximum likelihood of the pairs (x_n, y_n)). Each class is computed on its own examples
    (`by_class` layout; `gmm.component_log_probs` / `gmm.sufficient_stats` / `gmm.m_step` of the library).

    Args:
      params: GMM parameters over 10 M components (`gm_jax.models.gmm`).
      xs: float [R, 10, D], w: float [R, 10]: the examples by class and their weights (1 real, 0 padding;
        `by_class`), or a shard of their rows.
      num_components: M (static); covariance_type, reg_covar: as `gmm.em_step`.
      axis_name: average the statistics over this pmap axis (equal shards of rows).

    Returns:
      (new params, mean log p(x_n, y_n) of the *input* params, nats per example).
    """
    per_class = _per_class(params, num_components)

    def one_class(p, x, wc):
        lp = gmm.component_log_probs(p, x, covariance_type)  # log p(k | y) + log N(x | mu_k, Sigma_k)
        norm = logsumexp(lp, axis=-1, keepdims=True)  # log p(x | y)
        return gmm.sufficient_stats(x, jnp.exp(lp - norm) * wc[:, None], covariance_type), jnp.sum(wc * norm[:, 0])

    stats, ll = jax.vmap(one_class, in_axes=(0, 1, 1))(per_class, xs, w)
    ll, count = jnp.sum(ll + class_log_prior(params["logits"]) * jnp.sum(w, 0)), jnp.sum(w)
    stats = _merged(stats)
    if axis_name:
        stats, ll, count = jax.lax.pmean((stats, ll, count), axis_name)
    return gmm.m_step(stats, covariance_type, reg_covar), ll / count


def class_log_joint(params: dict, x: jax.Array, num_components: int, covariance_type: str) -> jax.Array:
    """log p(x | y) + log p(y) for every class y: float32 [N, 10], nats (rows: logsumexp = log p(x)).

    Args:
      params: the class GMM (components k = y M .. y M + M - 1 belong to class y); x: float [N, D].
    """
    lp = gmm.component_log_probs(params, x, covariance_type)
    return logsumexp(lp.reshape(lp.shape[0], NUM_CLASSES, num_components), axis=-1)


@functools.partial(jax.jit, static_argnames=("num_components", "covariance_type", "kmeans_iters", "num_steps"))
def fit_class_gmm(key: jax.Array, xs: jax.Array, w: jax.Array, num_components: int, covariance_type: str,
                  reg_covar: float, kmeans_iters: int, num_steps: int = 0) -> dict:
    """Fit the class GMM (M = `num_components` per class) to examples laid out by class (`by_class`).

    Initialisation: per class, M of its examples drawn without replacement (Gumbel top-k with `key`) as
    centres, `kmeans_iters` Lloyd iterations on the class's examples, then an M step from that hard
    assignment (the mixing weights start at p(y) p(k | y) of the assignment); then `num_steps` supervised
    EM iterations (`class_em_step`). Every class needs at least M examples (`check_class_counts`).

    Args:
      xs: float [R, 10, D]; w: float [R, 10] (1 = an example, 0 = padding).

    Returns:
      GMM parameters over 10 M components, component k of class k // M.
    """
    xs, w = jnp.asarray(xs, jnp.float32), jnp.asarray(w, jnp.float32)
    scores = jnp.where(w.T > 0, jax.random.gumbel(key, w.T.shape), -jnp.inf)  # [10, R]
    idx = jax.lax.top_k(scores, num_components)[1]  # [10, M]
    centres = xs[idx, jnp.arange(NUM_CLASSES)[:, None]]  # [10, M, D]

    def assign(c, x, wc):  # one class: its examples' hard assignment [R, M] (padding rows: 0)
        d2 = jnp.sum(x**2, -1)[:, None] - 2 * x @ c.T + jnp.sum(c**2, -1)[None]
        return jax.nn.one_hot(jnp.argmin(d2, -1), num_components) * wc[:, None]

    def lloyd(c, x, wc):
        r = assign(c, x, wc)
        nk = r.sum(0)
        return jnp.where(nk[:, None] > 0, r.T @ x / jnp.maximum(nk, 1)[:, None], c)

    centres = jax.lax.fori_loop(0, kmeans_iters, lambda _, c: jax.vmap(lloyd, in_axes=(0, 1, 1))(c, xs, w), centres)
    resp = jax.vmap(assign, in_axes=(0, 1, 1))(centres, xs, w)
    stats = jax.vmap(functools.partial(gmm.sufficient_stats, covariance_type=covariance_type), in_axes=(1, 0))(xs, resp)
    params = gmm.m_step(_merged(stats), covariance_type, reg_covar)
    return jax.lax.fori_loop(
        0, num_steps, lambda _, p: class_em_step(p, xs, w, num_components, covariance_type, reg_covar)[0], params)


def check_class_counts(y, num_components: int) -> None:
    """Raise ValueError unless labels y int [N] are in 0..9 and every class has >= `num_components` examples."""
    y = np.asarray(y)
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise ValueError(f"labels must be in 0..{NUM_CLASSES - 1}, got values in [{y.min()}, {y.max()}]")
    counts = np.bincount(y, minlength=NUM_CLASSES)
    if counts.min() < num_components:
        raise ValueError(f"every class needs >= {num_components} training examples (num_components), got "
                         f"{counts.tolist()}")


class ClassGMMExperiment(PCAGMMExperiment):
    """A Gaussian mixture per class on MNIST's PCA coordinates (see the module docstring).

    Parameters: `{"gmm": the class GMM (10 * num_components components, class k // num_components),
    "pca": the fixed PCA}`. One training step = one supervised EM iteration on the whole training set.
    `sample(params, key, n, labels=None)`: PCA coordinates float32 [n, pca_dim] of the joint p(x, y)
    (labels None) or of p(x | y = labels) (int [n] in 0..9); `log_prob` is the marginal log p(x) of
    coordinates, nats (`gmm.log_prob`); `classify` is Bayes' rule.
    Config fields besides `gmm_mnist`'s: `curve_sizes` (training examples per class of `learning_curve`,
    0 = all), `curve_points_per_component` (the curve's mixtures have min(num_components,
    max(1, n // this)) components per class), `logistic_c` (the inverse L2 strength of the logistic
    regression) and `num_curve_steps` (EM iterations of each fit of the curve).
    """

    conditioning = ("labels",)
    schema = {**PCAGMMExperiment.schema, "covariance_type": Choice(*gmm.COVARIANCE_TYPES),
              "pca_dim": Range(1, 784, integer=True), "curve_sizes": Range(0, integer=True, each=True),
              "curve_points_per_component": Range(1, integer=True), "logistic_c": Range(0.0, lo_open=True),
              "num_curve_steps": Range(1, integer=True)}

    @property
    def component_class(self) -> jax.Array:
        """int32 [10 M]: the class of each component."""
        return jnp.repeat(jnp.arange(NUM_CLASSES, dtype=jnp.int32), self.config.num_components)

    def train_by_class(self) -> tuple[np.ndarray, np.ndarray]:
        """The training coordinates by class (`by_class`): float32 [R, 10, pca_dim] and weights [R, 10]."""
        if "by_class" not in self._cache:
            self._cache["by_class"] = by_class(self.train_data(), self._labels("train"))
        return self._cache["by_class"]

    def _labels(self, split: str) -> np.ndarray:
        key = f"labels_{split}"
        if key not in self._cache:
            self._cache[key] = np.asarray(load_split("mnist", split, self.config.data_dir or None)["label"], np.int32)
        return self._cache[key]

    # -- training -------------------------------------------------------------------------
    def init_params(self, key: jax.Array, x=None, y=None):
        """The class GMM's initialisation (`fit_class_gmm` with no EM step) on the training coordinates `x` and
        labels `y` (None: the whole training set), plus the PCA."""
        c = self.config
        if x is None:
            y = self._labels("train")
        check_class_counts(y, c.num_components)
        xs, w = self.train_by_class() if x is None else by_class(x, y)
        return {"gmm": fit_class_gmm(key, xs, w, c.num_components, c.covariance_type, c.reg_covar, c.kmeans_iters),
                **self.extra_params()}

    @functools.cached_property
    def jit_init_state(self):
        return self.init_state  # `fit_class_gmm` is jitted; the PCA and the counts check are NumPy

    def abstract_state(self):
        """The state's shapes without reading the data."""
        k, d = NUM_CLASSES * self.config.num_components, int(self.config.pca_dim)
        covs = (k, d, d) if self.config.covariance_type == "full" else (k, d)
        sds = jax.ShapeDtypeStruct
        params = {"gmm": {"logits": sds((k,), jnp.float32), "means": sds((k, d), jnp.float32),
                          "covs": sds(covs, jnp.float32)},
                  "pca": {"mean": sds((784,), jnp.float32), "basis": sds((d, 784), jnp.float32)}}
        return jax.eval_shape(lambda p: TrainState.create(apply_fn=None, params=p, tx=self.optimizer()), params)

    def global_batch_size(self) -> int:
        """R, the rows of the by-class layout (`train_by_class`)."""
        return len(self.train_by_class()[0])

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        """The whole training set by class, {"x": float32 [R, 10, pca_dim], "w": float32 [R, 10]}, every step
        (full-batch EM); with `rows`, those rows."""
        xs, w = self.train_by_class()
        batch = {"x": xs[rows], "w": w[rows]} if rows is not None else {"x": xs, "w": w}
        while True:
            yield batch

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        c = self.config
        new, ll = class_em_step(state.params["gmm"], batch["x"], batch["w"], c.num_components, c.covariance_type,
                                c.reg_covar, axis_name)
        return state.replace(step=state.step + 1, params={**state.params, "gmm": new}), \
            {"loss": -ll, "train_log_likelihood": ll}

    # -- the model --------------------------------------------------------------------------
    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """`labels`: None (samples of the joint), an int or int [num_samples] in 0..9. ValueError otherwise."""
        conditioning = super().check_conditioning(num_samples, **conditioning)
        labels = conditioning.get("labels")
        if labels is None:
            return {}
        labels = np.asarray(labels)
        labels = np.full(num_samples, labels) if labels.ndim == 0 else labels
        if labels.shape != (num_samples,) or not np.issubdtype(labels.dtype, np.integer) or \
                labels.min() < 0 or labels.max() >= NUM_CLASSES:
            raise ValueError(f"labels must be an int or int [{num_samples}] in 0..9, got {conditioning['labels']!r}")
        return {"labels": jnp.asarray(labels, jnp.int32)}

    def sample(self, params, key: jax.Array, num_samples: int, labels=None) -> jax.Array:
        """PCA coordinates float32 [num_samples, pca_dim]: (y, k, x) ancestrally from the joint, or k ~ p(k | y),
        x ~ N(mu_k, Sigma_k) for the given labels int [num_samples]."""
        p, cov = params["gmm"], self.config.covariance_type
        if labels is None:
            return gmm.sample(p, key, num_samples, cov)

        def one(k, label):
            return gmm.sample({**p, "logits": jnp.where(self.component_class == label, p["logits"], -jnp.inf)}, k, 1,
                              cov)[0]

        return jax.vmap(one)(jax.random.split(key, num_samples), jnp.asarray(labels, jnp.int32))

    def class_log_joint(self, params, z) -> jax.Array:
        """log p(z | y) + log p(y), float32 [N, 10] nats, of PCA coordinates z float [N, pca_dim]."""
        return class_log_joint(params["gmm"], z, self.config.num_components, self.config.covariance_type)

    @functools.cached_property
    def _jit_class_log_joint(self):
        return jax.jit(self.class_log_joint)

    def classify(self, params, z) -> np.ndarray:
        """Bayes' rule: argmax_y log p(z | y) + log p(y), int [N], for PCA coordinates z float [N, pca_dim]."""
        f = self._jit_class_log_joint
        size = self.config.eval_batch_size
        return np.concatenate([np.argmax(np.asarray(f(params, jnp.asarray(z[i:i + size]))), -1)
                               for i in range(0, len(z), size)])

    # -- evaluation ---------------------------------------------------------------------------
    def curve_subset(self, per_class: int) -> np.ndarray:
        """Indices of `per_class` training examples of each class (0: all): the first ones of each class in a
        permutation drawn from `default_rng([seed, 22])`, so the subsets are nested."""
        y = self._labels("train")
        perm = np.random.default_rng([self.config.seed, 22]).permutation(len(y))
        if per_class == 0:
            return perm
        return np.sort(np.concatenate([perm[y[perm] == c][:per_class] for c in range(NUM_CLASSES)]))

    def learning_curve(self, key: jax.Array) -> list[dict]:
        """Test error of the generative (class GMM, Bayes' rule) and the discriminative (logistic regression)
        classifier on the same PCA features, per number of training examples per class (`curve_sizes`).

        Returns:
          one dict per size: `per_class` (0 = all), `num_train`, `components_per_class`,
          `generative_test_error`, `logistic_test_error` (fractions of the test set).
        """
        from sklearn.linear_model import LogisticRegression

        c = self.config
        x, y = self.train_data(), self._labels("train")
        z_test, y_test = self.test_data(), self._labels("test")
        rows = []
        for i, n in enumerate(c.curve_sizes):
            idx = self.curve_subset(int(n))
            m = int(min(c.num_components, max(1, len(idx) // NUM_CLASSES // c.curve_points_per_component)))
            check_class_counts(y[idx], m)
            xs, w = by_class(x[idx], y[idx])
            params = fit_class_gmm(jax.random.fold_in(key, i), xs, w, m, c.covariance_type, c.reg_covar,
                                   c.kmeans_iters, c.num_curve_steps)
            gen = class_log_joint(params, jnp.asarray(z_test), m, c.covariance_type)
            logistic = LogisticRegression(C=c.logistic_c, max_iter=2000).fit(x[idx], y[idx])
            rows.append({"per_class": int(n), "num_train": int(len(idx)), "components_per_class": m,
                         "generative_test_error": float(np.mean(np.argmax(np.asarray(gen), -1) != y_test)),
                         "logistic_test_error": float(np.mean(logistic.predict(z_test) != y_test))})
        return rows

    def evaluate(self, params, key: jax.Array) -> dict:
        test, y_test = self.test_data(), self._labels("test")
        curve = self.learning_curve(key)
        self._cache["curve"] = curve
        return {"test_accuracy": float(np.mean(self.classify(params, test) == y_test)),
                "test_log_likelihood_nats": self.mean_log_prob(params, test),
                "train_log_likelihood_nats": self.mean_log_prob(params, self.train_data()),
                "class_prior": [round(float(v), 4) for v in np.asarray(jnp.exp(self.class_log_prior(params)))],
                "learning_curve": curve, "pca_dim": int(self.config.pca_dim),
                "pca_explained_variance": self.pca()["explained"],
                "num_components_per_class": int(self.config.num_components),
                "covariance_type": self.config.covariance_type, "em_iterations": int(self.config.num_steps),
                "units": "nats per image, density of PCA coordinates; errors are fractions of the test set",
                "figures": ["samples.png", "learning_curve.png", "log_likelihood.png"]}

    def class_log_prior(self, params) -> jax.Array:
        """log p(y), float32 [10]: the summed mixing weights of each class's components (`class_log_prior`)."""
        return class_log_prior(params["gmm"]["logits"])

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        workdir = Path(workdir)
        labels = jnp.arange(NUM_CLASSES * 8) // 8  # one row of 8 samples per digit
        z = self.jit_sample(params, key, len(labels), labels)
        viz.save_image_grid(workdir / "samples.png", np.asarray(self.decode(params, z)), cols=8)
        curve = self._cache.get("curve") or self.learning_curve(jax.random.fold_in(key, 1))
        classify_viz.save_learning_curve(workdir / "learning_curve.png", curve,
                                         f"{self.name}: class GMM (Bayes' rule) vs logistic regression, "
                                         f"PCA {self.config.pca_dim}")
        curves.save_em_curve(workdir / "metrics.jsonl", workdir / "log_likelihood.png", f"{self.name}: supervised EM")
