"""The sentence family: latent-variable models of whole lines of text (the sentence VAE, its LM baseline).

`SentenceExperiment` holds the data wiring, the update, the evaluation and the
artifacts of `gm_jax.models.sentence_vae` on the lines of tiny_shakespeare:

* data: the lines of a split (`gm_jax.data.lines`: one line = one sentence,
  empty lines dropped, lines longer than `max_len - 1` characters dropped, none
  in tiny_shakespeare at 64), as token ids int32 [N, max_len]: the characters,
  the end-of-line token ("\\n", EOL), then EOL padding. The vocabulary is the
  training text's characters (the data setup, as `TextExperiment`'s), so data
  kind "tokens" with a fixed `data_shape = (max_len,)`: one row is one line;
  only the positions up to the first EOL are part of it (samples are padded
  with EOL after it). `check_data` also takes strings (one line each), encoded
  with a ValueError naming any character outside the vocabulary.
* update: one Adam step on -ELBO per line with the KL weight
  `kl_weight(state.step)` (annealing) and character dropout on the decoder's
  inputs, both drawn from the per-example keys (the same under none / pmap /
  sharded).
* `log_prob`: the IWAE bound with `config.num_iwae_samples` samples, a LOWER
  BOUND on log p(x) per line in nats (exact with `config.latent=False`).
* `evaluate`: on the test lines, the NLL bound (-IWAE) per character (nats,
  bits; a line's characters count its EOL) and per line, the negative ELBO, the
  KL per line and the reconstruction term; the baseline (the same decoder with z
  = 0 and no encoder) is the same experiment with `config.latent=False`, run
  separately (its figures are exact NLLs).
* artifacts: `samples.txt` (lines from z ~ N(0, I), sampled and greedy) and
  `homotopies.txt` (five homotopies between pairs of test lines, greedy and sampled with a
  fixed key).
"""
from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax import sampling
from gm_jax.config import Choice, Range
from gm_jax.data import lines as lines_data
from gm_jax.data import text as text_data
from gm_jax.data.pipeline import train_batches
from gm_jax.distributions import nats_to_bits
from gm_jax.evaluation import mean_over_dataset
from gm_jax.experiment import Experiment
from gm_jax.models import sentence_vae as svae
from gm_jax.training.steps import loss_update

COUNT = Range(1, integer=True)
POSITIVE = Range(0.0, lo_open=True)


def sentence_config(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The family's fields (CPU-sized defaults) added to `c`."""
    c.max_len = 64  # positions per line: up to 63 characters + the end-of-line token
    c.hidden = 191
    c.latent_dim = 13
    c.embed_dim = 64
    c.z_inputs = True  # z concatenated to every decoder input (besides z -> the initial state)
    c.latent = True  # False: the baseline, the same decoder with z = 0 and no encoder
    c.kl_schedule = "sigmoid"  # sigmoid | linear | none
    c.kl_anneal_steps = 1000
    c.word_dropout = 0.4  # share of decoder inputs replaced by UNK during training
    c.grad_clip = 1.0
    c.num_iwae_samples = 10  # k of the test bound
    c.sample_temperature = 1.0
    c.homotopy_points = 5
    return c


class SentenceExperiment(Experiment):
    data_kind = "tokens"
    data_shape = (64,)  # set from config.max_len
    conditioning = ("temperature",)
    schema = {"max_len": Range(2, integer=True), "hidden": COUNT, "latent_dim": COUNT, "embed_dim": COUNT,
              "z_inputs": Choice(True, False), "latent": Choice(True, False),
              "kl_schedule": Choice(*svae.SCHEDULES), "kl_anneal_steps": COUNT, "word_dropout": Range(0.0, 1.0),
              "grad_clip": POSITIVE, "num_iwae_samples": COUNT, "sample_temperature": POSITIVE,
              "homotopy_points": Range(2, integer=True)}
    resumable_keys = Experiment.resumable_keys + ("homotopy_points", "num_iwae_samples")
    setup_fields = ("data_dir",)
    setup_arrays = ("vocab",)

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.vocab = text_data.CharVocab("".join(map(chr, self.data_setup["vocab"].tolist())))
        self.num_values = self.vocab.size
        self.data_shape = (config.max_len,)
        self.eol = int(self.vocab.encode(lines_data.EOL)[0])
        self.log_prob_needs_key = bool(config.latent)
        self.model = svae.SentenceVAE(vocab_size=self.vocab.size, hidden=config.hidden, latent_dim=config.latent_dim,
                                      embed_dim=config.embed_dim, z_inputs=config.z_inputs, latent=config.latent)
        self._arrays = {}

    def compute_data_setup(self) -> dict[str, np.ndarray]:
        """{"vocab": uint32 [V] code points of the training text's distinct characters, sorted}."""
        chars = text_data.CharVocab.from_text(self._text("train")).chars
        return {"vocab": np.array([ord(ch) for ch in chars], np.uint32)}

    # -- data ---------------------------------------------------------------------------
    def _text(self, split: str) -> str:
        return text_data.load_text(split, self.config.data_dir or None)

    def lines(self, split: str) -> tuple[list[str], int]:
        """(the lines of a split kept, the number dropped as too long)."""
        return lines_data.split_lines(self._text(split), self.config.max_len)

    def arrays(self, split: str) -> dict:
        """{"x": int32 [N, max_len]} of a split's lines (cached)."""
        if split not in self._arrays:
            self._arrays[split] = {"x": lines_data.encode_lines(self.vocab, self.lines(split)[0], self.config.max_len)}
        return self._arrays[split]

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        return train_batches(self.arrays("train"), self.config.batch_size, self.config.seed, start_step, rows)

    def check_data(self, x) -> jax.Array:
        """Lines as token ids int [N, max_len] (`data_shape`), or as strings (one line each, without "\\n").

        Raises:
          ValueError: a string with characters outside the vocabulary (named), a "\\n" or more than
            max_len - 1 characters; ids of the wrong shape, dtype or range.
        """
        if isinstance(x, str):
            x = [x]
        if isinstance(x, (list, tuple)) and x and all(isinstance(s, str) for s in x):
            x = lines_data.encode_lines(self.vocab, x, self.config.max_len)
        return super().check_data(x)

    # -- model -----------------------------------------------------------------------------
    def init_params(self, key: jax.Array):
        return svae.init_params(self.model, key)

    def optimizer(self) -> optax.GradientTransformation:
        """Adam with cosine decay to 10% and global-norm clipping."""
        c = self.config
        schedule = optax.cosine_decay_schedule(c.learning_rate, max(c.num_steps, 1), 0.1)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip), optax.adam(schedule))

    def _loss(self, params, batch: dict, keys: jax.Array, beta=1.0, train: bool = True):
        c = self.config
        x = batch["x"]
        eps = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 0), (c.latent_dim,)))(keys)
        drop = None
        if train and c.word_dropout > 0:
            drop = jax.vmap(lambda k: svae.word_dropout_mask(jax.random.fold_in(k, 1), x.shape[1:],
                                                             c.word_dropout))(keys)
        out = svae.neg_elbo(self.model, params, x, eps, self.eol, beta, drop)
        metrics = {"neg_elbo": out["neg_elbo"].mean(), "kl": out["kl"].mean(), "recon": out["recon"].mean(),
                   "bits_per_char": nats_to_bits(out["neg_elbo"].sum() / out["chars"].sum())}
        return out["loss"].mean(), metrics

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """-ELBO per line (KL weight 1, with character dropout), averaged over the batch."""
        return self._loss(params, batch, keys)

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """One optimizer step on recon + beta_t KL, beta_t = `kl_weight(state.step)` (the annealing)."""
        c = self.config
        beta = svae.kl_weight(state.step, c.kl_schedule, c.kl_anneal_steps)
        state, metrics = loss_update(functools.partial(self._loss, beta=beta))(state, batch, keys, axis_name)
        return state, {**metrics, "kl_weight": beta}

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """A LOWER BOUND on log p(x) per line, nats float32 [N]: the IWAE estimate with `config.num_iwae_samples`
        samples (exact log p(x) with `config.latent=False`)."""
        key = jax.random.key(0) if key is None else key
        return svae.iwae_log_prob(self.model, params, x, key, self.config.num_iwae_samples, self.eol)

    def log_prob_per_position(self, params, x, **conditioning):
        raise NotImplementedError(f"{self.name}: log p(x) of the sentence VAE marginalises over z, so it has no "
                                  "per-position terms log p(x_t | x_<t) (the decoder is autoregressive only given z)")

    def conditionals(self, params, x, **conditioning):
        raise NotImplementedError(f"{self.name}: the per-character conditionals exist only given z (see "
                                  "gm_jax.models.sentence_vae.decoder_logits), not for the marginal p(x)")

    # -- sampling ---------------------------------------------------------------------------
    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """temperature (> 0; default `config.sample_temperature`).

        Raises:
          ValueError: unknown names or temperature <= 0.
        """
        super().check_conditioning(num_samples, **conditioning)
        temperature = conditioning.get("temperature", self.config.sample_temperature)
        sampling.check_sampling_args(self.config.max_len, temperature, 0, 1.0)
        return {"temperature": float(temperature)}

    def sample(self, params, key: jax.Array, num_samples: int, temperature=None) -> jax.Array:
        """Lines int32 [num_samples, max_len]: z ~ N(0, I), then characters until EOL (EOL padding after it)."""
        temperature = self.config.sample_temperature if temperature is None else temperature
        return svae.sample(self.model, params, key, num_samples, self.config.max_len, self.eol, temperature)

    def decode_lines(self, tokens) -> list[str]:
        """The strings of lines int [N, max_len] (up to their EOL)."""
        return [self.vocab.decode(row).split(lines_data.EOL)[0] for row in np.asarray(tokens)]

    # -- evaluation -------------------------------------------------------------------------
    @functools.cached_property
    def _jit_line_metrics(self):
        @functools.partial(jax.jit, static_argnums=3)
        def metrics(params, x, key, iwae: bool):
            eps = jax.random.normal(jax.random.fold_in(key, 0), (x.shape[0], self.config.latent_dim))
            out = svae.neg_elbo(self.model, params, x, eps, self.eol)
            res = {k: out[k] for k in ("neg_elbo", "recon", "kl", "chars")}
            if iwae:
                res["nll_bound"] = -svae.iwae_log_prob(self.model, params, x, jax.random.fold_in(key, 1),
                                                       self.config.num_iwae_samples, self.eol)
            return res

        return metrics

    def split_metrics(self, params, split: str, key, max_lines: int | None = None, iwae: bool = True) -> dict:
        """Means per line of a split's (first `max_lines`) lines: neg_elbo, recon, kl, chars (and nll_bound)."""
        data = self.arrays(split)
        if max_lines is not None:
            data = {k: v[:max_lines] for k, v in data.items()}
        out = mean_over_dataset(lambda batch, k: self._jit_line_metrics(params, batch["x"], k, iwae), data,
                                self.config.eval_batch_size, key)
        return {**out, "lines": len(data["x"])}

    def evaluate(self, params, key: jax.Array) -> dict:
        c = self.config
        test = self.split_metrics(params, "test", key)
        val = self.split_metrics(params, "validation", jax.random.fold_in(key, 1), iwae=False)
        chars = test["chars"]
        bound = "exact NLL (no latent)" if not c.latent else f"-IWAE bound, k = {c.num_iwae_samples} (>= the NLL)"
        return {"latent": bool(c.latent), "test_nll_kind": bound,
                "test_nll_bound_nats_per_char": test["nll_bound"] / chars,
                "test_nll_bound_bits_per_char": nats_to_bits(test["nll_bound"] / chars),
                "test_nll_bound_nats_per_line": test["nll_bound"],
                "test_neg_elbo_nats_per_char": test["neg_elbo"] / chars,
                "test_neg_elbo_bits_per_char": nats_to_bits(test["neg_elbo"] / chars),
                "test_neg_elbo_nats_per_line": test["neg_elbo"], "test_recon_nats_per_line": test["recon"],
                "test_kl_nats_per_line": test["kl"], "test_lines": test["lines"],
                "test_chars": int(round(chars * test["lines"])), "test_lines_dropped": self.lines("test")[1],
                "validation_neg_elbo_bits_per_char": nats_to_bits(val["neg_elbo"] / val["chars"]),
                "validation_kl_nats_per_line": val["kl"], "max_len": c.max_len, "vocab_size": self.vocab.size,
                "chars_note": "characters per line count the end-of-line token"}

    num_progress_samples = 8

    def validate(self, params, key: jax.Array) -> dict:
        """The negative ELBO (bits/char) and KL per line of the first `num_validation_examples` validation lines."""
        val = self.split_metrics(params, "validation", key, self.config.num_validation_examples, iwae=False)
        return {"val_neg_elbo_bits_per_char": nats_to_bits(val["neg_elbo"] / val["chars"]),
                "val_kl_nats_per_line": val["kl"]}

    def homotopy_pairs(self, num_pairs: int = 5) -> tuple[list[str], list[str]]:
        """`num_pairs` pairs of test lines of 20-50 characters, evenly spaced through the split."""
        lines = [s for s in self.lines("test")[0] if 20 <= len(s) <= 50] or self.lines("test")[0]
        idx = np.linspace(0, len(lines) - 1, 2 * num_pairs).astype(int)
        return [lines[i] for i in idx[0::2]], [lines[i] for i in idx[1::2]]

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        """`samples.txt` (10 sampled lines and 5 greedy ones from z ~ N(0, I)) and `homotopies.txt`."""
        c, workdir = self.config, Path(workdir)
        sampled = self.decode_lines(self.jit_sample(params, key, 10, temperature=c.sample_temperature))
        greedy = self.decode_lines(jax.jit(functools.partial(
            svae.sample, self.model, num_samples=5, max_len=c.max_len, eol=self.eol, greedy=True))(
                params=params, key=jax.random.fold_in(key, 1)))
        (workdir / "samples.txt").write_text(
            f"# {self.name}: lines from z ~ N(0, I); 10 sampled at temperature {c.sample_temperature}\n"
            + "\n".join(sampled) + "\n# 5 greedy (most probable character at each step)\n" + "\n".join(greedy) + "\n")
        if not c.latent:
            return
        a, b = self.homotopy_pairs()
        xa = jnp.asarray(lines_data.encode_lines(self.vocab, a, c.max_len))
        xb = jnp.asarray(lines_data.encode_lines(self.vocab, b, c.max_len))
        homotopy = jax.jit(functools.partial(svae.homotopy, self.model, num_points=c.homotopy_points, eol=self.eol),
                           static_argnames="greedy")
        greedy = np.asarray(homotopy(params, xa, xb, greedy=True))
        drawn = np.asarray(homotopy(params, xa, xb, key=jax.random.fold_in(key, 2), greedy=False))
        ts = np.linspace(0, 1, c.homotopy_points)
        blocks = []
        for i in range(len(a)):
            rows = [f"  t={t:.2f}  greedy: {g}\n          sampled: {d}"
                    for t, g, d in zip(ts, self.decode_lines(greedy[i]), self.decode_lines(drawn[i]))]
            blocks.append(f"FROM: {a[i]}\nTO:   {b[i]}\n" + "\n".join(rows))
        (workdir / "homotopies.txt").write_text(
            f"# {self.name}: decodes of z_t = (1 - t) z_1 + t z_2 between the posterior means of two test lines "
            "(Bowman et al. 2016, Sec. 5.3): greedy (the most probable character at each step), and sampled at "
            "temperature 1 with one fixed key for every t (so only z changes along a row)\n\n"
            + "\n\n".join(blocks) + "\n")
