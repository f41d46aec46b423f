"""Sampling basics: four ways of drawing from a distribution, each checked against the exact distribution.

    python docs/sampling_basics.py [--seed 0] [--num-samples 20000]

prints one row per sampler: the test against the exact distribution (its
statistic and p-value) and the p-value of the same samples against a
deliberately wrong distribution, which the test must reject (a check that can
fail). A walk-through is in `docs/sampling_basics.md`.

1. A categorical distribution p = [0.1, 0.6, 0.3] over {0, 1, 2}, two ways:
   by the inverse CDF, x = min{k : u < F(k)} with u ~ U[0, 1) and
   F(k) = p_0 + ... + p_k (`categorical_inverse_cdf`), and by
   `jax.random.categorical` (the Gumbel-max trick: argmax_k log p_k + g_k with
   g_k ~ Gumbel(0, 1)). Checked by Pearson's chi-square test on the counts.
2. Inverse-transform sampling from a density with a closed-form CDF, the
   exponential p(x) = r exp(-r x), F(x) = 1 - exp(-r x), so
   x = F^{-1}(u) = -log(1 - u) / r (`exponential_inverse_cdf`). Checked by the
   Kolmogorov-Smirnov test against F.
3. Ancestral sampling through a 1-D Gaussian mixture (`gm_jax.models.gmm.sample`,
   Bishop 2006, Sec. 9.2): k ~ Categorical(pi), then x | k ~ N(mu_k, s_k^2).
   The components are checked by a chi-square test against pi, and x by a KS
   test against the mixture's CDF F(x) = sum_k pi_k Phi((x - mu_k) / s_k).
4. Ancestral sampling through a tiny LDA (`gm_jax.models.lda.sample`, Blei et
   al. 2003, Sec. 3): theta ~ Dir(alpha), z_n ~ Categorical(theta),
   w_n ~ Categorical(beta_{z_n}), for documents of two words. The exact
   distribution of the pair (w_1, w_2) integrates theta out:
   p(w_1, w_2) = sum_{k, l} E[theta_k theta_l] beta_{k w_1} beta_{l w_2} with
   E[theta theta^T] = (alpha alpha^T + diag(alpha)) / (A (A + 1)), A = sum_k alpha_k
   (`lda_pair_probs`). Checked by a chi-square test over the V^2 pairs; the
   wrong distribution treats the two words as independent (the product of
   their marginals), which they are not: they share theta.

Every sampler is a jitted pure function of an explicit PRNG key
(`jax.random.key(seed)`, split once per sampler), so a seed gives the same table
on the same platform.
"""
from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from gm_jax.models import gmm, lda

# The distributions of the table (exact, small, fixed).
CATEGORICAL = np.array([0.1, 0.6, 0.3])
RATE = 2.0  # of the exponential
GMM_WEIGHTS = np.array([0.3, 0.5, 0.2])
GMM_MEANS = np.array([-2.0, 0.0, 3.0])
GMM_STDS = np.array([0.5, 1.0, 0.7])
LDA_TOPICS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])  # beta: K = 2 topics over V = 3 words
LDA_ALPHA = 0.5  # symmetric Dirichlet parameter of theta


# -- samplers (each a pure function of an explicit key) ---------------------------------------------------------
@functools.partial(jax.jit, static_argnames="num_samples")
def categorical_inverse_cdf(key: jax.Array, probs, num_samples: int) -> jax.Array:
    """Categorical samples by the inverse CDF: int32 [num_samples] in [0, K) for probs float [K] summing to 1.

    x = min{k : u < F(k)}, u ~ U[0, 1), F(k) = probs[0] + ... + probs[k] (`searchsorted` finds it); the
    index is clipped to K - 1 in case the float32 F(K - 1) rounds below some u.
    """
    u = jax.random.uniform(key, (num_samples,))
    cdf = jnp.cumsum(jnp.asarray(probs, jnp.float32))
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), len(probs) - 1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames="num_samples")
def categorical_jax(key: jax.Array, probs, num_samples: int) -> jax.Array:
    """Categorical samples by `jax.random.categorical` on the log-probabilities: int32 [num_samples]."""
    return jax.random.categorical(key, jnp.log(jnp.asarray(probs, jnp.float32)), shape=(num_samples,))


@functools.partial(jax.jit, static_argnames="num_samples")
def exponential_inverse_cdf(key: jax.Array, rate: float, num_samples: int) -> jax.Array:
    """Exponential samples by inverse transform: x = -log(1 - u) / rate, u ~ U[0, 1); float32 [num_samples]
    >= 0 (density rate * exp(-rate x), CDF 1 - exp(-rate x))."""
    u = jax.random.uniform(key, (num_samples,))
    return -jnp.log1p(-u) / rate


@functools.partial(jax.jit, static_argnames="num_samples")
def gmm_ancestral(key: jax.Array, num_samples: int) -> tuple[jax.Array, jax.Array]:
    """(x float32 [num_samples], k int32 [num_samples]): the 1-D mixture's component, then the point."""
    params = gmm.make_params(GMM_WEIGHTS, GMM_MEANS[:, None], GMM_STDS[:, None] ** 2, "diag")
    x, k = gmm.sample(params, key, num_samples, "diag", return_components=True)
    return x[:, 0], k


@functools.partial(jax.jit, static_argnames="num_samples")
def lda_ancestral(key: jax.Array, num_samples: int) -> jax.Array:
    """Two-word documents of the LDA generative process: int32 [num_samples, 2] word ids."""
    return lda.sample(jnp.asarray(LDA_TOPICS, jnp.float32), key, num_samples, 2, LDA_ALPHA)


# -- exact distributions ------------------------------------------------------------------------------------------
def gmm_cdf(x, weights=GMM_WEIGHTS, means=GMM_MEANS, stds=GMM_STDS) -> np.ndarray:
    """The mixture's CDF sum_k w_k Phi((x - mu_k) / s_k) at x float [N]."""
    return np.sum(np.asarray(weights) * stats.norm.cdf((np.asarray(x)[:, None] - means) / stds), axis=-1)


def lda_pair_probs(topics=LDA_TOPICS, alpha: float = LDA_ALPHA) -> np.ndarray:
    """p(w_1, w_2) of a two-word LDA document, float64 [V, V] summing to 1: beta^T E[theta theta^T] beta."""
    topics = np.asarray(topics, np.float64)
    a = np.full(len(topics), alpha)
    second_moment = (np.outer(a, a) + np.diag(a)) / (a.sum() * (a.sum() + 1))
    return topics.T @ second_moment @ topics


def _chisquare(values, probs) -> tuple[float, float]:
    """Pearson's chi-square of the counts of int values in [0, K) against probs [K]: (statistic, p-value)."""
    counts = np.bincount(np.asarray(values).ravel(), minlength=len(probs))
    return tuple(map(float, stats.chisquare(counts, np.asarray(probs) * counts.sum())))


def _ks(x, cdf) -> tuple[float, float]:
    """The Kolmogorov-Smirnov test of samples x against a CDF: (statistic, p-value)."""
    result = stats.kstest(np.asarray(x, np.float64), cdf)
    return float(result.statistic), float(result.pvalue)


# -- the table ------------------------------------------------------------------------------------------------------
def run(seed: int = 0, num_samples: int = 20_000) -> list[dict]:
    """Draw `num_samples` from each sampler with keys split from `jax.random.key(seed)` and test them.

    Returns:
      one dict per row: "sampler", "test" ("chi-square" or "KS"), "statistic", "p_value" (against the exact
      distribution), "wrong" (the wrong distribution) and "p_value_wrong" (the same samples against it).
    """
    keys = jax.random.split(jax.random.key(seed), 5)
    rows = []

    def row(sampler, test, exact, wrong, check):
        stat, p = check(exact)
        rows.append({"sampler": sampler, "test": test, "statistic": stat, "p_value": p, "wrong": wrong[0],
                     "p_value_wrong": check(wrong[1])[1]})

    wrong_categorical = ("p = [0.15, 0.55, 0.3]", [0.15, 0.55, 0.3])
    for name, fn, key in (("categorical, inverse CDF", categorical_inverse_cdf, keys[0]),
                          ("categorical, jax.random.categorical", categorical_jax, keys[1])):
        x = fn(key, CATEGORICAL, num_samples)
        row(name, "chi-square", CATEGORICAL, wrong_categorical, lambda p, x=x: _chisquare(x, p))

    x = exponential_inverse_cdf(keys[2], RATE, num_samples)
    row(f"exponential (rate {RATE:g}), inverse transform", "KS", stats.expon(scale=1 / RATE).cdf,
        ("rate 2.1", stats.expon(scale=1 / 2.1).cdf), lambda cdf: _ks(x, cdf))

    x, k = gmm_ancestral(keys[3], num_samples)
    row("GMM, ancestral: component k", "chi-square", GMM_WEIGHTS, ("pi = [0.33, 0.47, 0.2]", [0.33, 0.47, 0.2]),
        lambda p: _chisquare(k, p))
    mean = float(GMM_WEIGHTS @ GMM_MEANS)
    std = float(np.sqrt(GMM_WEIGHTS @ (GMM_STDS ** 2 + GMM_MEANS ** 2) - mean ** 2))
    row("GMM, ancestral: x", "KS", gmm_cdf, ("one Gaussian, same mean and variance", stats.norm(mean, std).cdf),
        lambda cdf: _ks(x, cdf))

    words = np.asarray(lda_ancestral(keys[4], num_samples))
    v = LDA_TOPICS.shape[1]
    pairs = lda_pair_probs()
    independent = np.outer(pairs.sum(1), pairs.sum(0))
    row("LDA, ancestral: word pair (w1, w2)", "chi-square", pairs.ravel(),
        ("w1, w2 independent", independent.ravel()), lambda p: _chisquare(words[:, 0] * v + words[:, 1], p))
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows of `run` as a fixed-width text table."""
    head = (f"{'sampler':<40} {'test':<10} {'statistic':>10} {'p-value':>9}   {'p-value vs wrong':>16}  "
            "wrong distribution")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['sampler']:<40} {r['test']:<10} {r['statistic']:>10.4g} {r['p_value']:>9.3g}   "
                     f"{r['p_value_wrong']:>16.3g}  {r['wrong']}")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    """Parse --seed / --num-samples, print the table, return its rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-samples", type=int, default=20_000)
    args = parser.parse_args(argv)
    rows = run(args.seed, args.num_samples)
    print(f"{args.num_samples:,} samples per sampler, seed {args.seed}; a p-value is the probability, under the "
          "tested distribution, of a statistic at least this large\n")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
