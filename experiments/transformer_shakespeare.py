"""GPT-style decoder-only Transformer on tiny_shakespeare characters; test bits per character.

    python -m experiments.transformer_shakespeare --workdir runs/transformer_shakespeare [--paper] [--config.X=...]

Trains on random windows of `block_size + 1` characters of the training split
(teacher forcing: targets are the inputs shifted by one), evaluates the exact
negative log-likelihood of the test split with a sliding window
(`gm_jax.data.text.windows`): windows of `block_size` characters started every
`eval_stride` characters, each character after the first of the split scored
exactly once (the final partial window too), from at least
`block_size - eval_stride` preceding characters (except in the first window;
`eval_stride = block_size` gives consecutive windows). Writes to the workdir:

* `results.json`: `test_bits_per_char`, `test_nats_per_char`,
  `validation_bits_per_char`, `test_chars` (characters scored), ...;
* `samples.txt`: samples drawn with the cached sampler from the prompt
  `config.sample_prompt`.

Sampling (`gm_jax.Model.sample(key, n, prompt=..., length=..., temperature=...,
top_k=..., top_p=...)`) returns int32 token ids [n, len(prompt) + length]
(prompt included); `experiment.vocab.decode(row)` gives the text. Neither
`length` nor the prompt is limited by `block_size`: the model conditions on at
most `block_size` tokens, and when the context is full it restarts from the
last `block_size // 2` (`gm_jax.models.transformer`); the limits are int32
positions (P + length <= 2**31 - 1) and the memory of the output. Prompt
characters outside the training vocabulary are a ValueError (the policy of
`gm_jax.data.text`). `Model.log_prob` takes token ids [N, T], T <= block_size + 1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gm_jax import config as config_lib
from gm_jax.config import Choice, Range
from gm_jax.distributions import nats_to_bits
from gm_jax.models import transformer
from gm_jax.recipes.sequences import COUNT, POSITIVE, TextExperiment


def get_config() -> ml_collections.ConfigDict:
    """CPU default: 4 layers, d = 128, 4 heads, context 128, learned positions (0.8M parameters)."""
    c = config_lib.base_config()
    c.block_size = 128
    c.dim = 128
    c.num_layers = 4
    c.num_heads = 4
    c.positions = "learned"  # learned | sinusoidal
    c.dropout = 0.0
    c.sampler = "cached"  # cached | naive (the same tokens; naive re-reads the context every step)
    c.num_steps = 3300  # 13.5M training characters (about 13 epochs)
    c.batch_size = 32
    c.learning_rate = 2e-3
    c.warmup_steps = 100
    c.weight_decay = 0.1  # AdamW, decoupled
    c.grad_clip = 1.0
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 64
    c.eval_stride = 0  # sliding-window evaluation step (0: block_size // 2); block_size = consecutive windows
    c.sample_prompt = "\n"
    c.sample_length = 500
    c.sample_temperature = 1.0
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """nanoGPT's character-level Shakespeare model (Karpathy, `config/train_shakespeare_char.py`).

    6 layers, 6 heads, d = 384, context 256, dropout 0.2, batch 64, AdamW
    (beta2 0.99, weight decay 0.1) at 1e-3 with 100 warm-up steps and cosine
    decay to 1e-4 over 5,000 steps, gradient clipping at 1; 10.7M parameters.
    Chosen over the base model of Vaswani et al. 2017 (Table 3), which is an
    encoder-decoder for WMT translation on sub-word tokens with no
    tiny_shakespeare setting: nanoGPT is the published decoder-only GPT on this
    very dataset and vocabulary (reported validation loss 1.47 nats/char,
    2.12 bits/char; a GPU run).
    """
    c = get_config()
    c.update(block_size=256, dim=384, num_layers=6, num_heads=6, dropout=0.2, num_steps=5000, batch_size=64,
             learning_rate=1e-3, warmup_steps=100, weight_decay=0.1, grad_clip=1.0)
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny model on synthetic text, for tests."""
    c = get_config()
    c.update(data_dir="synthetic", block_size=16, dim=16, num_layers=1, num_heads=2, num_steps=2, batch_size=4,
             warmup_steps=1, eval_batch_size=256, sample_length=8, log_every=1, checkpoint_every=2)
    return c


class Experiment(TextExperiment):
    name = "transformer_shakespeare"
    compute_dtypes = ("float32", "bfloat16")
    sample_methods = ("cached", "naive")
    schema = {**TextExperiment.schema, "sampler": Choice("cached", "naive"),
              "positions": Choice(*transformer.POSITIONS), "block_size": COUNT, "dim": COUNT, "num_layers": COUNT,
              "num_heads": COUNT, "dropout": Range(0.0, 1.0, hi_open=True), "warmup_steps": Range(0, integer=True),
              "weight_decay": Range(0.0), "grad_clip": POSITIVE, "eval_stride": Range(0, integer=True)}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.eval_stride > config.block_size:
            raise ValueError(f"config.eval_stride={config.eval_stride} must be in [0, block_size={config.block_size}] "
                             "(0: block_size // 2)")
        self.window = config.block_size
        self.eval_stride = int(config.eval_stride) or max(config.block_size // 2, 1)
        self.max_len = config.block_size + 1
        self.model = transformer.GPT(vocab_size=self.vocab_size, block_size=config.block_size, dim=config.dim,
                                     num_layers=config.num_layers, num_heads=config.num_heads,
                                     positions=config.positions, dropout=config.dropout, dtype=self.compute_dtype)

    def init_params(self, key: jax.Array):
        return transformer.init_params(self.model, key)

    def optimizer(self) -> optax.GradientTransformation:
        """AdamW, linear warm-up then cosine decay to 10%, global-norm clipping."""
        c = self.config
        schedule = optax.warmup_cosine_decay_schedule(0.0, c.learning_rate, min(c.warmup_steps, max(c.num_steps, 1)),
                                                      max(c.num_steps, c.warmup_steps + 1), c.learning_rate * 0.1)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip),
                           optax.adamw(schedule, b1=0.9, b2=0.99, weight_decay=c.weight_decay))

    def token_log_probs(self, params, inputs, targets) -> jax.Array:
        return transformer.token_log_probs(self.model, params, inputs, targets)

    def token_logits(self, params, inputs):
        return transformer.logits_fn(self.model, params, inputs).astype(jnp.float32)

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        if self.config.dropout > 0:
            # one dropout key per example, so none / pmap / sharded steps drop the same units
            logits = jax.vmap(lambda x, k: transformer.logits_fn(self.model, params, x[None], train=True,
                                                                  key=k)[0])(batch["inputs"], keys)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["targets"])
            return nll.sum(axis=-1).mean(), {"bits_per_char": nats_to_bits(nll.mean())}
        return super().loss_fn(params, batch, keys)

    def sample_tokens(self, params, key, prompt, length, temperature, top_k, top_p, method="cached"):
        fn = transformer.sample_cached if method == "cached" else transformer.sample_naive
        return fn(self.model, params, key, prompt, length, temperature, top_k, top_p)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("transformer_shakespeare")
