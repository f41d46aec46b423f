"""Character n-gram baseline on tiny_shakespeare (interpolated Kneser-Ney or add-k); test bits per character.

    python -m experiments.ngram_shakespeare --workdir runs/ngram_shakespeare [--config.order=4 --config.smoothing=add_k]

The counts of the training split are the parameters (`gm_jax.models.ngram.fit`,
taken in NumPy at initialisation); there is no gradient training: the single
"training step" only records the training-batch NLL (nats per window) and
writes the checkpoint, so `gm_jax.load` restores the model like any other.
Evaluation is the exact NLL of the test split in consecutive windows of
`config.eval_window` characters. Writes `results.json` (`test_bits_per_char`,
`validation_bits_per_char`, ...) and `samples.txt`.

Reference: Chen & Goodman 1999 (interpolated Kneser-Ney is their best
smoothing method); the neural models of this project should beat this baseline.
"""
from __future__ import annotations

import jax
import ml_collections
import optax

from experiments.transformer_shakespeare import TextExperiment
from gm_jax import config as config_lib
from gm_jax.models import ngram


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


class Experiment(TextExperiment):
    name = "ngram_shakespeare"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.smoothing not in ngram.SMOOTHING:
            raise ValueError(f"config.smoothing={config.smoothing!r}; valid choices: {list(ngram.SMOOTHING)}")
        if not config.add_k > 0:
            raise ValueError(f"config.add_k must be > 0, got {config.add_k}")
        ngram.check_order(config.order, self.vocab_size)
        self.window = config.eval_window

    def init_params(self, key: jax.Array):
        """The n-gram count tables of the training split (`key` is unused: counting is deterministic)."""
        return ngram.fit(self.tokens("train"), self.vocab_size, self.config.order, self.config.smoothing)

    def optimizer(self) -> optax.GradientTransformation:
        return optax.identity()

    def token_log_probs(self, params, inputs, targets) -> jax.Array:
        c = self.config
        return ngram.token_log_probs(params, inputs, targets, self.vocab_size, c.order, c.smoothing, c.add_k)

    def update(self, state, batch: dict, keys: jax.Array, axis_name: str | None = None):
        """No parameter change: counts are fixed. Metrics: the batch NLL in nats per window."""
        from gm_jax.training import pmean

        loss, metrics = self.loss_fn(state.params, batch, keys)
        return state.replace(step=state.step + 1), pmean({"loss": loss, **metrics}, axis_name)

    def _sample(self, params, key, prompt, length, temperature, top_k, top_p):
        c = self.config
        return ngram.sample(params, key, prompt, length, self.vocab_size, c.order, c.smoothing, c.add_k,
                            temperature, top_k, top_p)

    def evaluate(self, params, key: jax.Array) -> dict:
        out = super().evaluate(params, key)
        out.update(order=self.config.order, smoothing=self.config.smoothing)
        return out


if __name__ == "__main__":
    from gm_jax.cli import main

    main("ngram_shakespeare")
