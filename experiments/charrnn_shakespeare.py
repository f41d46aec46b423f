"""Character-level LSTM (or vanilla RNN) language model on tiny_shakespeare; test bits per character.

    python -m experiments.charrnn_shakespeare --workdir runs/charrnn_shakespeare [--paper] [--config.cell=rnn]

Karpathy's char-rnn setting (2015) in JAX: an LSTM (Hochreiter & Schmidhuber
1997) over character embeddings, trained with teacher forcing on random
windows of `window + 1` characters (targets = inputs shifted by one), the
recurrence a `lax.scan` over time (`gm_jax.models.rnn`). Evaluation: exact NLL
of the test split in consecutive windows of `window` steps, each started from
the zero state; every character after the first is scored exactly once (the
tail by a last window ending at the final character). Sampling carries the
LSTM state (the prompt is read once). Writes `results.json`
(`test_bits_per_char`, `validation_bits_per_char`, ...) and `samples.txt`.
The default is sized for a 2-core CPU.
"""
from __future__ import annotations

import jax
import ml_collections
import optax

from gm_jax import config as config_lib
from gm_jax.config import Choice
from gm_jax.models import rnn
from gm_jax.recipes.sequences import COUNT, POSITIVE, TextExperiment


def get_config() -> ml_collections.ConfigDict:
    """CPU default: one LSTM layer of 256 units, embeddings of 64, windows of 100 characters."""
    c = config_lib.base_config()
    c.cell = "lstm"  # lstm | rnn
    c.hidden = 256
    c.num_layers = 1
    c.embed_dim = 64
    c.window = 100
    c.num_steps = 2500
    c.batch_size = 32
    c.learning_rate = 3e-3
    c.grad_clip = 1.0
    c.log_every = 100
    c.checkpoint_every = 500
    c.eval_batch_size = 128
    c.sample_prompt = "\n"
    c.sample_length = 500
    c.sample_temperature = 1.0
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """Karpathy's char-rnn on tiny_shakespeare ("The Unreasonable Effectiveness of Recurrent Neural
    Networks", 2015, the Shakespeare section; defaults of `karpathy/char-rnn` `train.lua`).

    The post's Shakespeare model is a 3-layer LSTM of 512 units; the rest is
    char-rnn's defaults: sequences of 50 characters, batches of 50, learning
    rate 2e-3, gradient clipping at 5, 50 epochs (about 20,000 steps of 2,500
    characters). char-rnn feeds one-hot characters: an embedding as wide as
    the vocabulary (65) spans the same first layer. Differences: char-rnn uses
    RMSprop with a step decay (here Adam with cosine decay) and truncated BPTT
    over consecutive batches (here independent random windows). Graves 2013
    (Sec. 3) uses the same LSTM language model on Wikipedia, not this corpus.
    """
    c = get_config()
    c.update(hidden=512, num_layers=3, embed_dim=65, window=50, batch_size=50, learning_rate=2e-3, grad_clip=5.0,
             num_steps=20_000)
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny LSTM on synthetic text, for tests."""
    c = get_config()
    c.update(data_dir="synthetic", hidden=16, embed_dim=8, window=16, num_steps=2, batch_size=4,
             eval_batch_size=256, sample_length=8, log_every=1, checkpoint_every=2)
    return c


class Experiment(TextExperiment):
    name = "charrnn_shakespeare"
    sample_methods = ("cached", "naive")
    schema = {**TextExperiment.schema, "cell": Choice(*rnn.CELLS), "hidden": COUNT, "num_layers": COUNT,
              "embed_dim": COUNT, "window": COUNT, "grad_clip": POSITIVE}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.window = config.window
        self.model = rnn.RNN(out_dim=self.vocab_size, hidden=config.hidden, num_layers=config.num_layers,
                             cell=config.cell, vocab_size=self.vocab_size, embed_dim=config.embed_dim)

    def init_params(self, key: jax.Array):
        return rnn.init_params(self.model, key)

    def optimizer(self) -> optax.GradientTransformation:
        """Adam with cosine decay to 10% and global-norm clipping."""
        c = self.config
        schedule = optax.cosine_decay_schedule(c.learning_rate, max(c.num_steps, 1), 0.1)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip), optax.adam(schedule))

    def token_log_probs(self, params, inputs, targets) -> jax.Array:
        return rnn.token_log_probs(self.model, params, inputs, targets)

    def token_logits(self, params, inputs):
        return rnn.conditional_logits(self.model, params, inputs)

    def sample_tokens(self, params, key, prompt, length, temperature, top_k, top_p, method="cached"):
        fn = rnn.sample_cached if method == "cached" else rnn.sample_naive
        return fn(self.model, params, key, prompt, length, temperature, top_k, top_p)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("charrnn_shakespeare")
