"""LSTM on JSB Chorales piano rolls (polyphonic): frame-wise independent Bernoulli over 88 keys given the past.

    python -m experiments.lstm_jsb --workdir runs/lstm_jsb [--paper] [--config.hidden=...]

The RNN baseline of Boulanger-Lewandowski et al. 2012: at each quarter-note
step t the LSTM (Hochreiter & Schmidhuber 1997) has read the frames v_<t
(starting from an all-zero start frame) and predicts
p(v_t | v_<t) = prod_k Bernoulli(v_tk; sigmoid(l_tk)). Trained on whole
chorales (padded to a common length, padding masked out), teacher forcing.
Test metric: the exact NLL in nats per time step, summed over all frames of
the 77 test chorales and divided by their number of frames (4,725).

Writes `results.json` (`test_nll_per_step_nats`, `validation_nll_per_step_nats`,
...), `samples/sample_{i}.mid` (MIDI, `config.step_seconds` per frame) and
`samples.png` (piano rolls of the samples). `Model.sample(key, n, length=64,
temperature=1.0)` returns uint8 [n, length, 88] piano rolls;
`Model.sample(key, n, prompt=frames, length=L)` continues a primer of {0, 1}
frames [P, 88] (or [n, P, 88]) and returns uint8 [n, P + L, 88], the primer
first. `Model.log_prob(x)` takes {0, 1} [N, T, 88] (data kind "binary") and
returns log p(v_1..v_T) in nats. `evaluate` continues the first `primer_bars`
bars (4 frames each) of a test chorale (`primed_*` in `results.json`:
log p(continuation | primer) in nats) and `write_artifacts` writes them as
`samples/primed_{i}.mid` (the primer and the continuation as two instruments)
and `primed.png`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from gm_jax import config as config_lib
from gm_jax.config import Choice
from gm_jax.data import music
from gm_jax.models import rnn
from gm_jax.recipes.sequences import COUNT, JSBExperiment


def get_config() -> ml_collections.ConfigDict:
    """CPU default: one LSTM layer of 200 units, whole chorales, batch 16."""
    c = config_lib.base_config()
    c.data_dir = ""  # the jsb_chorales folder; "" = ../shared/data/jsb_chorales beside the checkout
    c.cell = "lstm"  # lstm | rnn
    c.hidden = 200
    c.num_layers = 1
    c.num_steps = 1000  # 70 epochs of the 229 training chorales
    c.batch_size = 16
    c.learning_rate = 2e-3
    c.grad_clip = 1.0
    c.weight_decay = 1e-4
    c.log_every = 100
    c.checkpoint_every = 500
    c.eval_batch_size = 128
    c.sample_length = 64
    c.step_seconds = 0.5  # seconds per frame in the MIDI files (quarter notes at 120 bpm)
    c.primer_bars = 2  # primed generation in evaluate / write_artifacts: the first 2 bars of a test chorale
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """The LSTM of Bai, Kolter & Koltun 2018 ("An Empirical Evaluation of Generic Convolutional and Recurrent
    Networks for Sequence Modeling"), Table 1, JSB Chorales: 8.45 nats per time step (the RNN of
    Boulanger-Lewandowski et al. 2012, Table 1, on the same split and frames).

    Bai et al. size the recurrent baselines like their TCN (about 300K
    parameters on JSB) and do not list the LSTM's width in the main text: one
    layer of 256 units (0.38M parameters) is our choice near that budget. The
    training follows their released `poly_music` code: one chorale per batch,
    Adam at 1e-3, gradient clipping at 0.2, 100 epochs (22,900 steps); no
    weight decay.
    """
    c = get_config()
    c.update(hidden=256, num_layers=1, batch_size=1, learning_rate=1e-3, grad_clip=0.2, weight_decay=0.0,
             num_steps=22_900)
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny LSTM on synthetic chorales, for tests."""
    c = get_config()
    c.update(data_dir="synthetic", hidden=8, num_steps=2, batch_size=4, eval_batch_size=8, sample_length=8)
    return c


class Experiment(JSBExperiment):
    name = "lstm_jsb"
    sample_methods = ("cached", "naive")
    data_kind = "binary"
    data_shape = (None, music.NUM_KEYS)  # piano rolls [T, 88], T >= 1
    schema = {**JSBExperiment.schema, "cell": Choice(*rnn.CELLS), "hidden": COUNT, "num_layers": COUNT}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = rnn.RNN(out_dim=music.NUM_KEYS, hidden=config.hidden, num_layers=config.num_layers,
                             cell=config.cell)

    def pieces(self, split: str) -> list:
        return music.load_piano_rolls(split, self.config.data_dir or None)

    def init_params(self, key: jax.Array):
        return rnn.init_params(self.model, key, input_dim=music.NUM_KEYS)

    def inputs(self, x):
        return jnp.pad(x[:, :-1], ((0, 0), (1, 0), (0, 0)))  # the all-zero start frame first

    def step_log_probs(self, params, inputs, targets):
        return rnn.bernoulli_log_probs(self.model, params, inputs, targets)

    conditionals_kind = "bernoulli"  # the 88 keys of a time step: independent given the past

    def step_logits(self, params, inputs):
        return rnn.conditional_logits(self.model, params, inputs)

    def sample(self, params, key: jax.Array, num_samples: int, length=None, temperature=1.0, method=None,
               prompt=None) -> jax.Array:
        """Piano rolls uint8 [num_samples, P + length, 88] from the all-zero start frame and the primer
        `prompt` ({0, 1} [num_samples, P, 88] frames, kept as they are; None: P = 0), by `method`: "cached",
        the state carried, or "naive", the recurrence re-run; the same rolls for the same key."""
        start = jnp.zeros((num_samples, 1, music.NUM_KEYS), jnp.float32)
        if prompt is not None:
            start = jnp.concatenate([start, jnp.asarray(prompt, jnp.float32)], axis=1)
        fn = rnn.sample_cached if self.sample_method(method) == "cached" else rnn.sample_naive
        return fn(self.model, params, key, start, self.length(length), temperature, event="bernoulli")[:, 1:]


if __name__ == "__main__":
    from gm_jax.cli import main

    main("lstm_jsb")
