"""Character n-gram baseline on tiny_shakespeare (interpolated Kneser-Ney or add-k); test bits per character.

    python -m experiments.ngram_shakespeare --workdir runs/ngram_shakespeare [--config.order=4 --config.smoothing=add_k]

The counts of the training split are the parameters (`gm_jax.models.ngram.fit`,
taken in NumPy at initialisation); there is no gradient training: the single
"training step" only records the training-batch NLL (nats per window) and
writes the checkpoint, so `gm_jax.load` restores the model like any other.
Evaluation is the exact NLL of the test split in consecutive windows of
`config.eval_window` characters, every character after the first scored
exactly once. Writes `results.json` (`test_bits_per_char`,
`validation_bits_per_char`, ...) and `samples.txt`. The neural models of this
project should beat this baseline.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax import config as config_lib
from gm_jax.config import Choice
from gm_jax.data import text as text_data
from gm_jax.models import ngram
from gm_jax.recipes.sequences import COUNT, POSITIVE, TextExperiment
from gm_jax.training.steps import pmean


def get_config() -> ml_collections.ConfigDict:
    """Default: 5-gram (4 characters of context, the largest whose ids fit int32), interpolated Kneser-Ney."""
    c = config_lib.base_config()
    c.order = 5
    c.smoothing = "kneser_ney"  # kneser_ney | add_k
    c.add_k = 0.1  # pseudo-count of add-k smoothing
    c.eval_window = 1024
    c.num_steps = 1  # no gradient training (see the module docstring)
    c.batch_size = 16
    c.log_every = 1
    c.checkpoint_every = 1
    c.eval_batch_size = 16
    c.sample_prompt = "\n"
    c.sample_length = 500
    c.sample_temperature = 1.0
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Chen & Goodman 1998 ("An Empirical Study of Smoothing Techniques for Language Modeling"), interpolated
    Kneser-Ney (Sec. 2.7 / 3: their best method), here a character 5-gram: the default config.

    The paper studies word n-grams up to order 5 with modified (three-discount)
    Kneser-Ney; this is the one-discount interpolated variant at the largest
    character order whose ids fit int32, which the paper leaves open for characters.
    """
    return get_config()


def get_test_config() -> ml_collections.ConfigDict:
    """Trigram on synthetic text, for tests."""
    c = get_config()
    c.update(data_dir="synthetic", order=3, eval_window=64, batch_size=4, eval_batch_size=64, sample_length=8)
    return c


class Experiment(TextExperiment):
    name = "ngram_shakespeare"
    sample_methods = ("cached", "naive")
    schema = {**TextExperiment.schema, "smoothing": Choice(*ngram.SMOOTHING), "add_k": POSITIVE, "order": COUNT,
              "eval_window": COUNT}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        ngram.check_order(config.order, self.vocab_size)
        self.window = config.eval_window

    jit_init = False  # the parameters are the count tables of the data setup: nothing to compile

    @property
    def setup_arrays(self) -> tuple[str, ...]:
        """The vocabulary and the count tables of `ngram.fit` ("m{m}_ids", "m{m}_counts", "m{m}_discount"
        for the orders m it keeps): counting is the fit, so the tables are the data setup."""
        orders = range(1, self.config.order + 1) if self.config.smoothing == "kneser_ney" else [self.config.order]
        return ("vocab", *(f"m{m}_{k}" for m in orders for k in ("ids", "counts", "discount")))

    setup_fields = ("data_dir", "order", "smoothing")

    def compute_data_setup(self) -> dict[str, np.ndarray]:
        setup = super().compute_data_setup()
        vocab = text_data.CharVocab("".join(map(chr, setup["vocab"].tolist())))
        tables = ngram.fit(vocab.encode(self._text("train")), vocab.size, self.config.order, self.config.smoothing)
        setup.update({f"{m}_{k}": np.asarray(v) for m, t in tables.items() for k, v in t.items()})
        return setup

    def init_params(self, key: jax.Array):
        """The n-gram count tables of the training split (`ngram.fit`, kept in the data setup; `key` is
        unused: counting is deterministic)."""
        s = self.data_setup
        orders = sorted({name.split("_")[0] for name in s if name != "vocab"})
        return {m: {k: jnp.asarray(s[f"{m}_{k}"]) for k in ("ids", "counts", "discount")} for m in orders}

    def optimizer(self) -> optax.GradientTransformation:
        return optax.identity()

    def token_log_probs(self, params, inputs, targets) -> jax.Array:
        c = self.config
        return ngram.token_log_probs(params, inputs, targets, self.vocab_size, c.order, c.smoothing, c.add_k)

    def token_logits(self, params, inputs):
        """The log-probabilities log p(x_{t+1} | x_<=t) as logits (`ngram.next_token_probs`)."""
        c = self.config
        return jnp.log(ngram.next_token_probs(params, inputs, self.vocab_size, c.order, c.smoothing, c.add_k))

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """No parameter change: counts are fixed. Metrics: the batch NLL in nats per window."""
        loss, metrics = self.loss_fn(state.params, batch, keys)
        return state.replace(step=state.step + 1), pmean({"loss": loss, **metrics}, axis_name)

    def sample_tokens(self, params, key, prompt, length, temperature, top_k, top_p, method="cached"):
        c = self.config
        fn = ngram.sample_cached if method == "cached" else ngram.sample_naive
        return fn(params, key, prompt, length, self.vocab_size, c.order, c.smoothing, c.add_k, temperature, top_k,
                  top_p)

    def evaluate(self, params, key: jax.Array) -> dict:
        return {**super().evaluate(params, key), "order": self.config.order, "smoothing": self.config.smoothing}


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ngram_shakespeare")
