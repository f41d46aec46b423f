"""Latent Dirichlet allocation (Blei, Ng & Jordan 2003): generative process, collapsed Gibbs sampling and
mean-field variational inference.

Generative process (Blei et al. 2003, Sec. 3, with the smoothed model of Sec.
5.4: Dirichlet priors on the topics too), K topics over V words:

    beta_k ~ Dir(eta)                  for each topic k          (`sample_topics`)
    theta_d ~ Dir(alpha)               for each document d
    z_dn ~ Categorical(theta_d),  w_dn ~ Categorical(beta_{z_dn})   (`sample`)

Symmetric priors: alpha and eta are scalars.

A corpus is held as flat token arrays: `words` int32 [N] in [0, V) and `docs`
int32 [N] in [0, D), the document of each token (`corpus_arrays` builds them
and rejects a document with no in-vocabulary word).

Inference, the two ways the inference chapter contrasts:

* **Collapsed Gibbs sampling** (Griffiths & Steyvers 2004, "Finding
  scientific topics", Eq. 5): theta and beta are integrated out and each
  token's topic is resampled in turn from

      p(z_i = k | z_-i, w) ∝ (n_dk^-i + alpha) (n_kw^-i + eta) / (n_k^-i + V eta),

  one sweep = every token once, in order, as one jitted `lax.scan`
  (`gibbs_sweep`). The state is the assignment z and the count tables
  n_dk [D, K], n_kw [K, V], n_k [K] (int32), kept consistent with z.
  Monitored: log p(w | z) (Griffiths & Steyvers Eq. 2-3, `gibbs_log_likelihood`).
  Point estimate of the topics: beta_kw = (n_kw + eta) / (n_k + V eta) (Eq. 7).
* **Mean-field variational inference** (Blei et al. 2003 Sec. 5.3-5.4, in the
  form of Hoffman, Blei & Bach 2010, "Online learning for LDA", Eq. 2-6 run
  in batch): q(theta_d) = Dir(gamma_d), q(beta_k) = Dir(lambda_k),
  q(z_dn) = Categorical(phi_dn). One iteration (`vi_step`) does
  `inner_steps` rounds of the local coordinate updates

      phi_dnk ∝ exp(E[log theta_dk] + E[log beta_k,w_dn]),   gamma_dk = alpha + sum_n phi_dnk,

  then the global update lambda_kw = eta + sum_{d,n: w_dn = w} phi_dnk.
  Every update maximises the ELBO in its block, so `elbo` (with phi at its
  optimum given gamma and lambda) never decreases across iterations.
  Point estimate of the topics: E_q[beta_kw] = lambda_kw / sum_w lambda_kw.
  The ELBO is not concave: runs from different random lambda end in
  different local optima, so VI can be run from several initialisations at once
  (`vi_init_restarts`, one `vi_step` per restart under `jax.vmap`) and the
  restart with the highest ELBO is kept (`vi_best`).

Held-out evaluation (`fold_in`, `completion_log_likelihood`) is the same for
both methods: given point topics beta, each held-out document's theta is
estimated from its observed half by the variational fold-in (the gamma / phi
updates above with log beta fixed), then the held-out half is scored with
p(w) = sum_k theta_k beta_kw ("document completion", Wallach et al. 2009,
"Evaluation methods for topic models", Sec. 4).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln, logsumexp


# -- corpus ---------------------------------------------------------------------------------------------------

def corpus_arrays(documents, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Flatten a list of documents into token arrays.

    Args:
      documents: a sequence of D documents, each a sequence of int word ids
        (ids outside [0, vocab_size), e.g. -1 for an out-of-vocabulary word,
        are dropped).
      vocab_size: V.

    Returns:
      (words int32 [N], docs int32 [N]) with docs non-decreasing in [0, D).

    Raises:
      ValueError: no documents, or a document with no in-vocabulary word
        (LDA needs at least one word per document; the message names it).
    """
    if len(documents) == 0:
        raise ValueError("corpus_arrays needs at least one document")
    words, docs = [], []
    for i, doc in enumerate(documents):
        ids = np.asarray(doc, np.int64).reshape(-1)
        ids = ids[(ids >= 0) & (ids < vocab_size)]
        if ids.size == 0:
            raise ValueError(f"document {i} has no in-vocabulary word (vocabulary of {vocab_size} ids); "
                             "drop it or extend the vocabulary")
        words.append(ids)
        docs.append(np.full(ids.size, i))
    return np.concatenate(words).astype(np.int32), np.concatenate(docs).astype(np.int32)


def check_hyperparameters(num_topics: int, alpha: float, eta: float) -> None:
    """Raises ValueError unless num_topics >= 1 and alpha, eta > 0."""
    if num_topics < 1 or not alpha > 0 or not eta > 0:
        raise ValueError(f"LDA needs num_topics >= 1 and Dirichlet parameters alpha, eta > 0; "
                         f"got num_topics={num_topics}, alpha={alpha}, eta={eta}")


# -- generative process ----------------------------------------------------------------------------------------

def sample_topics(key: jax.Array, num_topics: int, vocab_size: int, eta: float) -> jax.Array:
    """beta_k ~ Dir(eta): float32 [K, V], rows summing to 1."""
    return jax.random.dirichlet(key, jnp.full((vocab_size,), eta, jnp.float32), (num_topics,))


def sample(topics: jax.Array, key: jax.Array, num_docs: int, length: int, alpha: float,
           return_topics: bool = False):
    """Documents of the LDA generative process given topics (Blei et al. 2003, Sec. 3).

    Args:
      topics: float [K, V] rows summing to 1 (beta).
      key: PRNG key.
      num_docs, length: D documents of `length` words each (static).
      alpha: symmetric Dirichlet parameter of theta.

    Returns:
      words int32 [num_docs, length] (and the topics z int32 [num_docs, length]
      when `return_topics`).
    """
    k_theta, k_z, k_w = jax.random.split(key, 3)
    k = topics.shape[0]
    theta = jax.random.dirichlet(k_theta, jnp.full((k,), alpha, jnp.float32), (num_docs,))
    z = jax.random.categorical(k_z, jnp.log(theta)[:, None, :], shape=(num_docs, length))
    w = jax.random.categorical(k_w, jnp.log(topics)[z])
    return (w.astype(jnp.int32), z.astype(jnp.int32)) if return_topics else w.astype(jnp.int32)


# -- collapsed Gibbs sampling --------------------------------------------------------------------------------------

def gibbs_counts(z: jax.Array, words: jax.Array, docs: jax.Array, num_docs: int, num_topics: int,
                 vocab_size: int) -> dict:
    """The count tables of an assignment: `{"z", "ndk" [D, K], "nkw" [K, V], "nk" [K]}` (int32)."""
    one = jnp.ones_like(z)
    ndk = jnp.zeros((num_docs, num_topics), jnp.int32).at[docs, z].add(one)
    nkw = jnp.zeros((num_topics, vocab_size), jnp.int32).at[z, words].add(one)
    return {"z": z.astype(jnp.int32), "ndk": ndk, "nkw": nkw, "nk": nkw.sum(1)}


def gibbs_init(key: jax.Array, words: jax.Array, docs: jax.Array, num_docs: int, num_topics: int,
               vocab_size: int) -> dict:
    """Uniformly random topic assignments and their counts."""
    z = jax.random.randint(key, words.shape, 0, num_topics)
    return gibbs_counts(z, words, docs, num_docs, num_topics, vocab_size)


def gibbs_sweep(state: dict, key: jax.Array, words: jax.Array, docs: jax.Array, alpha: float, eta: float) -> dict:
    """One sweep of collapsed Gibbs sampling (Griffiths & Steyvers 2004, Eq. 5): every token, in order.

    Args:
      state: `{"z" [N], "ndk" [D, K], "nkw" [K, V], "nk" [K]}` int32 (from `gibbs_init`).
      key: PRNG key of this sweep.
      words, docs: int32 [N].

    Returns:
      the new state; the counts stay equal to `gibbs_counts(new z)`.
    """
    v = state["nkw"].shape[1]
    u = jax.random.uniform(key, words.shape)

    def body(carry, inp):
        ndk, nkw, nk = carry
        w, d, z_old, ui = inp
        ndk = ndk.at[d, z_old].add(-1)
        nkw = nkw.at[z_old, w].add(-1)
        nk = nk.at[z_old].add(-1)
        p = (ndk[d] + alpha) * (nkw[:, w] + eta) / (nk + v * eta)
        cdf = jnp.cumsum(p)
        z_new = jnp.minimum(jnp.searchsorted(cdf, ui * cdf[-1], side="right"), p.shape[0] - 1).astype(jnp.int32)
        ndk = ndk.at[d, z_new].add(1)
        nkw = nkw.at[z_new, w].add(1)
        nk = nk.at[z_new].add(1)
        return (ndk, nkw, nk), z_new

    (ndk, nkw, nk), z = jax.lax.scan(body, (state["ndk"], state["nkw"], state["nk"]),
                                     (words, docs, state["z"], u))
    return {"z": z, "ndk": ndk, "nkw": nkw, "nk": nk}


def gibbs_log_likelihood(state: dict, eta: float) -> jax.Array:
    """log p(w | z) with beta integrated out (Griffiths & Steyvers 2004, Eq. 2): float32 [], nats."""
    k, v = state["nkw"].shape
    nkw = state["nkw"].astype(jnp.float32)
    return (k * (gammaln(v * eta) - v * gammaln(eta))
            + jnp.sum(gammaln(nkw + eta)) - jnp.sum(gammaln(state["nk"].astype(jnp.float32) + v * eta)))


def gibbs_topics(state: dict, eta: float) -> jax.Array:
    """Point estimate beta_kw = (n_kw + eta) / (n_k + V eta) (Griffiths & Steyvers Eq. 7): float32 [K, V]."""
    v = state["nkw"].shape[1]
    return (state["nkw"] + eta) / (state["nk"][:, None] + v * eta)


# -- mean-field variational inference ------------------------------------------------------------------------------

def _e_log_dirichlet(params: jax.Array) -> jax.Array:
    return digamma(params) - digamma(params.sum(-1, keepdims=True))


def vi_init(key: jax.Array, words: jax.Array, docs: jax.Array, num_docs: int, num_topics: int,
            vocab_size: int, alpha: float) -> dict:
    """lambda ~ Gamma(100, 1/100) (Hoffman et al. 2010's initialisation), gamma_d = alpha + N_d / K (Blei et al.
    Fig. 6). Returns `{"gamma" float32 [D, K], "lam" float32 [K, V]}`."""
    lam = jax.random.gamma(key, 100.0, (num_topics, vocab_size)) / 100.0
    n_d = jax.ops.segment_sum(jnp.ones_like(words, jnp.float32), docs, num_docs)
    gamma = jnp.broadcast_to(alpha + n_d[:, None] / num_topics, (num_docs, num_topics))
    return {"gamma": gamma.astype(jnp.float32), "lam": lam.astype(jnp.float32)}


def vi_init_restarts(key: jax.Array, words: jax.Array, docs: jax.Array, num_docs: int, num_topics: int,
                     vocab_size: int, alpha: float, num_restarts: int) -> dict:
    """`num_restarts` independent `vi_init`s (restart i from `jax.random.split(key, num_restarts)[i]`), stacked:
    `{"gamma" float32 [R, D, K], "lam" float32 [R, K, V]}`. Step them with `jax.vmap(vi_step)`.

    Raises:
      ValueError: num_restarts < 1.
    """
    if num_restarts < 1:
        raise ValueError(f"num_restarts must be an int >= 1, got {num_restarts!r}")
    keys = jax.random.split(key, num_restarts)
    return jax.vmap(lambda k: vi_init(k, words, docs, num_docs, num_topics, vocab_size, alpha))(keys)


def vi_best(states: dict, words: jax.Array, docs: jax.Array, alpha: float, eta: float) -> tuple[dict, jax.Array]:
    """The restart with the highest ELBO among stacked VI states (from `vi_init_restarts`).

    Returns:
      (the best state `{"gamma" [D, K], "lam" [K, V]}`, the ELBO of every restart float32 [R], nats).
    """
    elbos = jax.vmap(lambda s: elbo(s, words, docs, alpha, eta))(states)
    best = jnp.argmax(elbos)
    return jax.tree_util.tree_map(lambda a: a[best], states), elbos


def _local_step(gamma, log_beta, words, docs, alpha):
    """phi from gamma and log beta (E[log beta] for VI, log of point topics for fold-in), then gamma from phi."""
    logits = _e_log_dirichlet(gamma)[docs] + log_beta[:, words].T  # [N, K]
    phi = jax.nn.softmax(logits, -1)
    return alpha + jax.ops.segment_sum(phi, docs, gamma.shape[0]), phi


def vi_step(state: dict, words: jax.Array, docs: jax.Array, alpha: float, eta: float, inner_steps: int = 5) -> dict:
    """One batch iteration of mean-field VI: `inner_steps` (phi, gamma) rounds, then lambda (see module docstring)."""
    e_log_beta = _e_log_dirichlet(state["lam"])
    gamma = state["gamma"]
    for _ in range(inner_steps):
        gamma, phi = _local_step(gamma, e_log_beta, words, docs, alpha)
    _, phi = _local_step(gamma, e_log_beta, words, docs, alpha)  # phi optimal for the final gamma
    k, v = state["lam"].shape
    lam = eta + jax.ops.segment_sum(phi, words, v).T
    return {"gamma": gamma, "lam": lam}


def elbo(state: dict, words: jax.Array, docs: jax.Array, alpha: float, eta: float) -> jax.Array:
    """The evidence lower bound on log p(w) with phi at its optimum given gamma, lambda (Hoffman et al. 2010,
    Eq. 3): float32 [], nats.

    = sum_tokens log sum_k exp(E[log theta_dk] + E[log beta_kw])
      - sum_d KL(Dir(gamma_d) || Dir(alpha)) - sum_k KL(Dir(lambda_k) || Dir(eta)).
    """
    gamma, lam = state["gamma"], state["lam"]
    e_log_theta, e_log_beta = _e_log_dirichlet(gamma), _e_log_dirichlet(lam)
    tokens = jnp.sum(logsumexp(e_log_theta[docs] + e_log_beta[:, words].T, -1))

    def neg_kl(q, prior, e_log):  # E_q[log Dir(x | prior)] - E_q[log Dir(x | q)], summed over rows
        n = q.shape[-1]
        return jnp.sum(gammaln(n * prior) - n * gammaln(prior) - gammaln(q.sum(-1)) + gammaln(q).sum(-1)
                       + ((prior - q) * e_log).sum(-1))

    return tokens + neg_kl(gamma, alpha, e_log_theta) + neg_kl(lam, eta, e_log_beta)


def vi_topics(state: dict) -> jax.Array:
    """Point estimate E_q[beta] = lambda / sum_w lambda: float32 [K, V]."""
    return state["lam"] / state["lam"].sum(-1, keepdims=True)


# -- held-out evaluation (the same for both methods) --------------------------------------------------------------

def fold_in(topics: jax.Array, words: jax.Array, docs: jax.Array, num_docs: int, alpha: float,
            num_iters: int = 100) -> jax.Array:
    """Estimate theta of new documents with the topics fixed: the variational (gamma, phi) updates with
    log beta = log topics, `num_iters` rounds from gamma = alpha + N_d / K.

    Args:
      topics: float [K, V] point topics (rows summing to 1).
      words, docs: int32 [N] tokens of the documents' observed parts.

    Returns:
      theta float32 [num_docs, K] = gamma / sum gamma.
    """
    k = topics.shape[0]
    log_beta = jnp.log(topics)
    n_d = jax.ops.segment_sum(jnp.ones_like(words, jnp.float32), docs, num_docs)
    gamma = alpha + jnp.broadcast_to(n_d[:, None] / k, (num_docs, k))
    gamma = jax.lax.fori_loop(0, num_iters, lambda _, g: _local_step(g, log_beta, words, docs, alpha)[0], gamma)
    return gamma / gamma.sum(-1, keepdims=True)


def completion_log_likelihood(topics: jax.Array, theta: jax.Array, words: jax.Array, docs: jax.Array) -> jax.Array:
    """log p(w_dn) = log sum_k theta_dk beta_k,w_dn of held-out tokens: float32 [N], nats per token."""
    return jnp.log(jnp.einsum("nk,nk->n", theta[docs], topics[:, words].T))


def split_for_completion(words: np.ndarray, docs: np.ndarray):
    """Document completion split: in each document, tokens at even positions are observed and tokens at odd
    positions held out. Returns ((obs_words, obs_docs), (held_words, held_docs)), int32 arrays.

    Raises:
      ValueError: a document with fewer than 2 tokens (nothing to observe or to score).
    """
    words, docs = np.asarray(words), np.asarray(docs)
    starts = np.searchsorted(docs, docs, side="left")
    pos = np.arange(len(docs)) - starts
    counts = np.bincount(docs)
    if np.any(counts[np.unique(docs)] < 2):
        raise ValueError("document completion needs at least 2 tokens in every held-out document")
    obs = pos % 2 == 0
    return (words[obs], docs[obs]), (words[~obs], docs[~obs])
