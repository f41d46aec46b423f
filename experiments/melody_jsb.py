"""LSTM on the soprano line of JSB Chorales (monophonic): a categorical over 22 pitches plus rest per 16th note.

    python -m experiments.melody_jsb --workdir runs/melody_jsb [--paper]

The soprano voice of Coconet's SATB version of the chorales
(`Jsb16thSeparated.json`, same 229/76/77 split) as melody tokens (0 = rest,
1.. = MIDI 60..81; `gm_jax.data.music`). The LSTM reads a start token and then
the melody and predicts each 16th-note step with a softmax (teacher forcing,
whole chorales padded and masked). Test metric: exact NLL in nats per time step
over the 18,900 test steps. Writes `results.json` (`test_nll_per_step_nats`,
...), `samples/sample_{i}.mid` and `samples.png`.

`Model.sample(key, n, length=128, temperature=1.0)` returns melody tokens
int32 [n, length]; `Model.sample(key, n, prompt=tokens, length=L)` continues a
primer of melody tokens int [P] (or [n, P]) in [0, 23) and returns int32
[n, P + L], the primer first (`music.melody_tokens` turns MIDI pitches into
tokens). `Model.log_prob(tokens)` takes int tokens [N, T] in [0, 23) (data
kind "tokens") and returns log p(x_0..x_{T-1}) (from the start token), in
nats. `evaluate` continues the first `primer_bars` bars (16 steps each) of a
test chorale (`primed_*` in `results.json`: log p(continuation | primer) in
nats) and `write_artifacts` writes them as `samples/primed_{i}.mid` (the primer
and the continuation as two instruments) and `primed.png`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gm_jax import config as config_lib
from gm_jax.config import Choice
from gm_jax.data import music
from gm_jax.models import rnn
from gm_jax.recipes.sequences import COUNT, JSBExperiment

START = music.MELODY_CLASSES  # input-only start token


def get_config() -> ml_collections.ConfigDict:
    """CPU default: one LSTM layer of 128 units over 16th-note steps."""
    c = config_lib.base_config()
    c.data_dir = ""  # the jsb_chorales folder; "" = ../shared/data/jsb_chorales beside the checkout
    c.cell = "lstm"
    c.hidden = 128
    c.num_layers = 1
    c.embed_dim = 32
    c.num_steps = 1000  # 70 epochs of the 229 training chorales
    c.batch_size = 16
    c.learning_rate = 3e-3
    c.grad_clip = 1.0
    c.weight_decay = 1e-4
    c.log_every = 100
    c.checkpoint_every = 500
    c.eval_batch_size = 128
    c.sample_length = 128
    c.step_seconds = 0.125  # a 16th note at 120 bpm
    c.primer_bars = 2  # primed generation in evaluate / write_artifacts: the first 2 bars of a test chorale
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """No paper reports this task (the soprano line of Coconet's 16th-note chorales, Huang et al. 2017, as a
    monophonic sequence); the paper config takes the LSTM training setting of Bai et al. 2018 for JSB
    Chorales (Table 1; see `lstm_jsb.get_paper_config`): one chorale per batch, Adam at 1e-3, gradient
    clipping at 0.2, 100 epochs (22,900 steps), with one layer of 256 units; the embedding (32) is ours.
    """
    c = get_config()
    c.update(hidden=256, num_layers=1, batch_size=1, learning_rate=1e-3, grad_clip=0.2, weight_decay=0.0,
             num_steps=22_900)
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny LSTM on synthetic chorales, for tests."""
    c = get_config()
    c.update(data_dir="synthetic", hidden=8, embed_dim=4, num_steps=2, batch_size=4, eval_batch_size=8,
             sample_length=8)
    return c


class Experiment(JSBExperiment):
    name = "melody_jsb"
    sample_methods = ("cached", "naive")
    data_kind = "tokens"
    data_shape = (None,)  # melody tokens [T], T >= 1
    num_values = music.MELODY_CLASSES
    steps_per_bar = 16  # 16th notes in a 4/4 bar
    schema = {**JSBExperiment.schema, "cell": Choice(*rnn.CELLS), "hidden": COUNT, "num_layers": COUNT,
              "embed_dim": COUNT}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = rnn.RNN(out_dim=music.MELODY_CLASSES, hidden=config.hidden, num_layers=config.num_layers,
                             cell=config.cell, vocab_size=music.MELODY_CLASSES + 1, embed_dim=config.embed_dim)

    def pieces(self, split: str) -> list:
        return music.load_melodies(split, self.config.data_dir or None)

    def init_params(self, key: jax.Array):
        return rnn.init_params(self.model, key)

    def inputs(self, x):
        return jnp.pad(x[:, :-1], ((0, 0), (1, 0)), constant_values=START)

    def step_log_probs(self, params, inputs, targets):
        return rnn.token_log_probs(self.model, params, inputs, targets)

    conditionals_kind = "categorical"

    def step_logits(self, params, inputs):
        return rnn.conditional_logits(self.model, params, inputs)

    def sample(self, params, key: jax.Array, num_samples: int, length=None, temperature=1.0, method=None,
               prompt=None) -> jax.Array:
        """Melody tokens int32 [num_samples, P + length] from the start token and the primer `prompt` (int32
        [num_samples, P] tokens, kept as they are; None: P = 0), by `method`: "cached", the state carried,
        or "naive", the recurrence re-run; the same tokens for the same key."""
        start = jnp.full((num_samples, 1), START, jnp.int32)
        if prompt is not None:
            start = jnp.concatenate([start, jnp.asarray(prompt, jnp.int32)], axis=1)
        fn = rnn.sample_cached if self.sample_method(method) == "cached" else rnn.sample_naive
        return fn(self.model, params, key, start, self.length(length), temperature)[:, 1:]

    def to_rolls(self, samples) -> np.ndarray:
        return np.stack([music.melody_to_roll(t) for t in np.asarray(samples)])


if __name__ == "__main__":
    from gm_jax.cli import main

    main("melody_jsb")
