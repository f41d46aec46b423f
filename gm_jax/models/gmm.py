"""Gaussian mixture model fitted by expectation-maximisation (EM).

Generative process (Bishop 2006, "Pattern Recognition and Machine Learning",
Sec. 9.2, Eq. 9.7-9.12):

    k ~ Categorical(pi),    x | k ~ N(mu_k, Sigma_k),
    p(x) = sum_k pi_k N(x | mu_k, Sigma_k).

EM (Bishop Sec. 9.2.2; Dempster, Laird & Rubin 1977):

* E step (Eq. 9.23): responsibilities r_nk = pi_k N(x_n | mu_k, Sigma_k) / p(x_n),
  computed in log space with `logsumexp`;
* M step (Eq. 9.24-9.27): N_k = sum_n r_nk, mu_k = sum_n r_nk x_n / N_k,
  Sigma_k = sum_n r_nk (x_n - mu_k)(x_n - mu_k)^T / N_k, pi_k = N_k / N,
  then the covariance floor `reg_covar` is added to the diagonal of every
  Sigma_k (as in scikit-learn's `reg_covar`), which keeps Sigma_k positive
  definite when a component collapses onto few points. With `reg_covar = 0`
  each iteration cannot decrease the training log-likelihood (Bishop Sec.
  9.4); with a small floor it is a tiny perturbation of that M step (tested
  with `reg_covar = 1e-6`).

The M step works from the *averaged sufficient statistics*
(mean over examples of r_nk, r_nk x_n, r_nk x_n x_n^T), so data-parallel EM
is the same update after a `pmean` of the statistics over devices.

Initialisation: k-means++ seeding (Arthur & Vassilvitskii 2007, "k-means++:
the advantages of careful seeding", Sec. 2.2: each new centre is drawn with
probability proportional to D(x)^2), a few Lloyd iterations, then one M step
from the hard assignment.

Parameters are a dict pytree `{"logits": [K], "means": [K, D], "covs": ...}`
with `covs` float32 [K, D, D] for `covariance_type="full"` and [K, D] (the
variances) for `"diag"`; mixing weights pi = softmax(logits).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import logsumexp

from gm_jax.distributions import LOG_2PI

COVARIANCE_TYPES = ("full", "diag")


def check_covariance_type(covariance_type: str) -> None:
    """Raises ValueError unless `covariance_type` is one of `COVARIANCE_TYPES`."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type={covariance_type!r}; valid choices: {list(COVARIANCE_TYPES)}")


def make_params(weights, means, covs, covariance_type: str = "full") -> dict:
    """Build (and check) GMM parameters from mixing weights, means and covariances.

    Args:
      weights: float [K], positive, summing to 1 (within 1e-4).
      means: float [K, D].
      covs: float [K, D, D] symmetric positive definite (`"full"`) or
        float [K, D] positive variances (`"diag"`).
      covariance_type: `"full"` or `"diag"`.

    Returns:
      `{"logits": float32 [K], "means": float32 [K, D], "covs": float32 [K, D, D] | [K, D]}`.

    Raises:
      ValueError: inconsistent shapes, weights that are not a distribution, or
        a covariance that is not symmetric positive definite.
    """
    check_covariance_type(covariance_type)
    w = np.asarray(weights, np.float64)
    mu = np.asarray(means, np.float64)
    s = np.asarray(covs, np.float64)
    if mu.ndim != 2 or w.shape != (mu.shape[0],):
        raise ValueError(f"expected weights [K] and means [K, D]; got {w.shape} and {mu.shape}")
    k, d = mu.shape
    if np.any(w <= 0) or abs(w.sum() - 1) > 1e-4:
        raise ValueError(f"mixing weights must be positive and sum to 1; got {w}")
    check_covariances(s, covariance_type, k, d)
    return {"logits": jnp.asarray(np.log(w), jnp.float32), "means": jnp.asarray(mu, jnp.float32),
            "covs": jnp.asarray(s, jnp.float32)}


def check_covariances(covs, covariance_type: str, k: int | None = None, d: int | None = None) -> None:
    """Check concrete covariances: shapes, symmetry and positive definiteness.

    Args:
      covs: float [K, D, D] (`"full"`) or [K, D] (`"diag"`).

    Raises:
      ValueError: wrong shape, a non-symmetric matrix, or a matrix (variance)
        that is not positive definite (positive), naming the component.
    """
    check_covariance_type(covariance_type)
    s = np.asarray(covs, np.float64)
    want = (k, d, d) if covariance_type == "full" else (k, d)
    if s.ndim != len(want) or any(w is not None and w != g for w, g in zip(want, s.shape)) or \
            (covariance_type == "full" and s.shape[1] != s.shape[2]):
        raise ValueError(f"{covariance_type} covariances must have shape "
                         f"{'[K, D, D]' if covariance_type == 'full' else '[K, D]'} = {want}; got {s.shape}")
    for i in range(s.shape[0]):
        if covariance_type == "diag":
            if not np.all(np.isfinite(s[i])) or np.any(s[i] <= 0):
                raise ValueError(f"diagonal covariance of component {i} must have positive variances; got {s[i]}")
            continue
        if not np.all(np.isfinite(s[i])) or not np.allclose(s[i], s[i].T, atol=1e-6 * max(1.0, np.abs(s[i]).max())):
            raise ValueError(f"covariance of component {i} is not symmetric")
        try:
            np.linalg.cholesky(s[i])
        except np.linalg.LinAlgError:
            raise ValueError(f"covariance of component {i} is not positive definite "
                             f"(eigenvalues {np.linalg.eigvalsh(s[i])})") from None


def component_log_probs(params: dict, x: jax.Array, covariance_type: str = "full") -> jax.Array:
    """log pi_k + log N(x_n | mu_k, Sigma_k) for every example and component.

    Args:
      params: GMM parameters (see the module docstring).
      x: float [N, D].

    Returns:
      float32 [N, K], nats.
    """
    x = jnp.asarray(x, jnp.float32)
    mu, covs = params["means"], params["covs"]
    d = x.shape[-1]
    log_w = jax.nn.log_softmax(params["logits"])
    if covariance_type == "diag":
        prec = 1.0 / covs  # [K, D]
        maha = (x**2) @ prec.T - 2 * x @ (mu * prec).T + jnp.sum(mu**2 * prec, -1)[None]
        log_det = jnp.sum(jnp.log(covs), -1)
    else:
        # precision Cholesky factors P_k = L_k^{-T} (Sigma_k^{-1} = P_k P_k^T), so
        # (x - mu_k)^T Sigma_k^{-1} (x - mu_k) = |x P_k - mu_k P_k|^2; all K products in one matrix product
        chol = jnp.linalg.cholesky(covs)  # [K, D, D]
        eye = jnp.broadcast_to(jnp.eye(d, dtype=covs.dtype), covs.shape)
        prec = jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)  # [K, D, D]
        k = mu.shape[0]
        y = (x @ jnp.transpose(prec, (1, 0, 2)).reshape(d, k * d)).reshape(-1, k, d)
        y = y - jnp.einsum("ki,kij->kj", mu, prec)[None]
        maha = jnp.sum(y**2, -1)
        log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
    return log_w[None] - 0.5 * (d * LOG_2PI + log_det[None] + maha)


def log_prob(params: dict, x: jax.Array, covariance_type: str = "full") -> jax.Array:
    """Exact log-density log p(x) = logsumexp_k [log pi_k + log N(x | mu_k, Sigma_k)].

    Args:
      x: float [N, D].

    Returns:
      float32 [N], nats per example (a density on R^D).
    """
    return logsumexp(component_log_probs(params, x, covariance_type), axis=-1)


def sample(params: dict, key: jax.Array, num_samples: int, covariance_type: str = "full",
           return_components: bool = False):
    """Ancestral sampling: k ~ Categorical(pi), then x = mu_k + L_k eps, eps ~ N(0, I), Sigma_k = L_k L_k^T.

    Returns:
      float32 [num_samples, D] (and int32 [num_samples] components when `return_components`).
    """
    k_key, e_key = jax.random.split(key)
    comp = jax.random.categorical(k_key, params["logits"], shape=(num_samples,))
    eps = jax.random.normal(e_key, (num_samples, params["means"].shape[-1]))
    if covariance_type == "diag":
        x = params["means"][comp] + jnp.sqrt(params["covs"][comp]) * eps
    else:
        chol = jnp.linalg.cholesky(params["covs"])
        x = params["means"][comp] + jnp.einsum("nij,nj->ni", chol[comp], eps)
    return (x, comp.astype(jnp.int32)) if return_components else x


def e_step(params: dict, x: jax.Array, covariance_type: str = "full"):
    """Responsibilities and the mean log-likelihood of the current parameters (Bishop Eq. 9.23).

    Returns:
      (resp float32 [N, K] summing to 1 over K, mean log p(x_n) float32 [] in nats per example).
    """
    lp = component_log_probs(params, x, covariance_type)
    norm = logsumexp(lp, axis=-1, keepdims=True)
    return jnp.exp(lp - norm), jnp.mean(norm)


def sufficient_stats(x: jax.Array, resp: jax.Array, covariance_type: str = "full") -> dict:
    """Mean over examples of r_nk, r_nk x_n and r_nk x_n x_n^T (diag: r_nk x_n^2).

    Returns:
      `{"n": [K], "sx": [K, D], "sxx": [K, D, D] | [K, D]}`; the `pmean` of these
      over equal shards is the statistic of the whole batch.
    """
    x = jnp.asarray(x, jnp.float32)
    n = x.shape[0]
    stats = {"n": resp.sum(0) / n, "sx": _contract_examples(resp, x) / n}
    if covariance_type == "diag":
        stats["sxx"] = _contract_examples(resp, x**2) / n
    else:
        # one [K*D, N] x [N, D] matrix product (a 3-operand einsum is much slower on CPU)
        rx = (resp[:, :, None] * x[:, None, :]).reshape(n, -1)
        stats["sxx"] = _contract_examples(rx, x).reshape(resp.shape[1], x.shape[1], x.shape[1]) / n
    return stats


def _contract_examples(a: jax.Array, b: jax.Array) -> jax.Array:
    """a^T b for a [N, P], b [N, Q] -> [P, Q]."""
    return a.T @ b


def m_step(stats: dict, covariance_type: str = "full", reg_covar: float = 1e-6) -> dict:
    """Maximum-likelihood parameters from averaged sufficient statistics (Bishop Eq. 9.24-9.27),
    plus the covariance floor `reg_covar` on the diagonal."""
    nk = stats["n"] + 10 * jnp.finfo(jnp.float32).eps  # an empty component keeps finite values
    mu = stats["sx"] / nk[:, None]
    if covariance_type == "diag":
        covs = jnp.maximum(stats["sxx"] / nk[:, None] - mu**2, 0.0) + reg_covar
    else:
        covs = stats["sxx"] / nk[:, None, None] - jnp.einsum("ki,kj->kij", mu, mu)
        covs = 0.5 * (covs + jnp.swapaxes(covs, -1, -2)) + reg_covar * jnp.eye(mu.shape[-1])
    return {"logits": jnp.log(nk / nk.sum()), "means": mu, "covs": covs}


def em_step(params: dict, x: jax.Array, covariance_type: str = "full", reg_covar: float = 1e-6,
            axis_name: str | None = None):
    """One EM iteration (E step, sufficient statistics averaged over the device axis `axis_name`, M step).

    Returns:
      (new params, mean training log-likelihood of the *input* params, nats per example).
    """
    resp, ll = e_step(params, x, covariance_type)
    stats = sufficient_stats(x, resp, covariance_type)
    if axis_name:
        stats, ll = jax.lax.pmean((stats, ll), axis_name)
    return m_step(stats, covariance_type, reg_covar), ll


def kmeans_plus_plus(key: jax.Array, x: jax.Array, num_components: int) -> jax.Array:
    """k-means++ seeding (Arthur & Vassilvitskii 2007, Sec. 2.2).

    Args:
      key: PRNG key.
      x: float [N, D], N >= num_components.

    Returns:
      float32 [K, D] centres, chosen among the rows of `x`.
    """
    x = jnp.asarray(x, jnp.float32)
    n = x.shape[0]
    keys = jax.random.split(key, num_components)
    first = x[jax.random.randint(keys[0], (), 0, n)]
    centres = jnp.zeros((num_components, x.shape[1]), jnp.float32).at[0].set(first)
    d2 = jnp.sum((x - first) ** 2, -1)

    def body(i, carry):
        centres, d2 = carry
        p = d2 / jnp.maximum(d2.sum(), 1e-30)
        idx = jax.random.choice(keys[i], n, p=p)
        c = x[idx]
        return centres.at[i].set(c), jnp.minimum(d2, jnp.sum((x - c) ** 2, -1))

    centres, _ = jax.lax.fori_loop(1, num_components, body, (centres, d2))
    return centres


def init_params(key: jax.Array, x: jax.Array, num_components: int, covariance_type: str = "full",
                reg_covar: float = 1e-6, kmeans_iters: int = 10) -> dict:
    """k-means++ seeds, `kmeans_iters` Lloyd iterations, then one M step from the hard assignment.

    Args:
      key: PRNG key.
      x: float [N, D] training data.

    Returns:
      GMM parameters (jittable; no host round trip).
    """
    x = jnp.asarray(x, jnp.float32)
    centres = kmeans_plus_plus(key, x, num_components)

    def assign(c):
        d2 = jnp.sum(x**2, -1)[:, None] - 2 * x @ c.T + jnp.sum(c**2, -1)[None]
        return jax.nn.one_hot(jnp.argmin(d2, -1), num_components)

    def lloyd(_, c):
        r = assign(c)
        nk = r.sum(0)
        return jnp.where(nk[:, None] > 0, r.T @ x / jnp.maximum(nk, 1)[:, None], c)

    centres = jax.lax.fori_loop(0, kmeans_iters, lloyd, centres)
    return m_step(sufficient_stats(x, assign(centres), covariance_type), covariance_type, reg_covar)


def fit(x, num_components: int, key: jax.Array, covariance_type: str = "full", num_iters: int = 100,
        reg_covar: float = 1e-6):
    """Fit by EM from k-means++: returns (params, float32 [num_iters] mean log-likelihood per iteration).

    `ll[t]` is the training log-likelihood (nats per example) of the
    parameters entering iteration t, so a correct EM gives a non-decreasing
    sequence.

    Raises:
      ValueError: bad covariance type, `num_components < 1` or more components than examples.
    """
    check_covariance_type(covariance_type)
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 2 or not 1 <= num_components <= x.shape[0]:
        raise ValueError(f"fit needs x [N, D] with 1 <= num_components <= N; got {x.shape}, K={num_components}")
    params = init_params(key, x, num_components, covariance_type, reg_covar)
    step = jax.jit(lambda p: em_step(p, x, covariance_type, reg_covar))
    lls = []
    for _ in range(num_iters):
        params, ll = step(params)
        lls.append(ll)
    return params, jnp.stack(lls)
