"""LSTM on the soprano line of JSB Chorales (monophonic): a categorical over 22 pitches plus rest per 16th note.

    python -m experiments.melody_jsb --workdir runs/melody_jsb

The soprano voice of Coconet's SATB version of the chorales
(`Jsb16thSeparated.json`, same 229/76/77 split) as melody tokens (0 = rest,
1.. = MIDI 60..81; `gm_jax.data.music`). The LSTM reads a start token and then
the melody and predicts each 16th-note step with a softmax (teacher forcing,
whole chorales padded and masked). Test metric: exact NLL in nats per time step
over the 18,900 test steps. Writes `results.json` (`test_nll_per_step_nats`,
...), `samples/sample_{i}.mid` and `samples.png`.

`Model.sample(key, n, length=128, temperature=1.0)` returns melody tokens
int32 [n, length]; `Model.log_prob(tokens)` takes int tokens [N, T] in
[0, 23) and returns log p(x_0..x_{T-1}) (from the start token), in nats.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments.lstm_jsb import JSBExperiment
from gm_jax import config as config_lib
from gm_jax import sampling
from gm_jax.data import music
from gm_jax.models import rnn

START = music.MELODY_CLASSES  # input-only start token


def get_config() -> ml_collections.ConfigDict:
    """CPU default: one LSTM layer of 128 units over 16th-note steps (a few minutes on 2 cores)."""
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
    return c


class Experiment(JSBExperiment):
    name = "melody_jsb"
    data_max = music.MELODY_CLASSES - 1

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = rnn.RNN(out_dim=music.MELODY_CLASSES, hidden=config.hidden, num_layers=config.num_layers,
                             cell=config.cell, vocab_size=music.MELODY_CLASSES + 1, embed_dim=config.embed_dim)

    def pieces(self, split: str) -> list:
        return music.load_melodies(split, self.config.data_dir or None)

    def init_params(self, key: jax.Array):
        return rnn.init_params(self.model, key)

    def _inputs(self, x):
        return jnp.pad(x[:, :-1], ((0, 0), (1, 0)), constant_values=START)

    def step_log_probs(self, params, inputs, targets):
        return rnn.token_log_probs(self.model, params, inputs, targets)

    def check_data(self, x) -> jax.Array:
        """Melody tokens int [N, T] (T >= 1) in [0, 23).

        Raises:
          ValueError: wrong rank, dtype or values.
        """
        x_np = np.asarray(x)
        what = f"{self.name} expects melody tokens int [N, T] with values in [0, {music.MELODY_CLASSES})"
        if x_np.ndim != 2 or x_np.shape[1] < 1:
            raise ValueError(f"{what}; got shape {x_np.shape}")
        if not np.issubdtype(x_np.dtype, np.integer):
            raise ValueError(f"{what}; got dtype {x_np.dtype}")
        if x_np.size and (x_np.min() < 0 or x_np.max() >= music.MELODY_CLASSES):
            raise ValueError(f"{what}; got values in [{x_np.min()}, {x_np.max()}]")
        return jnp.asarray(x_np, jnp.int32)

    def sample(self, params, key: jax.Array, num_samples: int, length=None, temperature=1.0) -> jax.Array:
        """Melody tokens int32 [num_samples, length] from the start token (ancestral, state carried)."""
        length = int(sampling.static_value(length) if length is not None else self.config.sample_length)
        start = jnp.full((num_samples, 1), START, jnp.int32)
        return rnn.sample_tokens(self.model, params, key, start, length, temperature)[:, 1:]

    def sample_rolls(self, params, key, n):
        tokens = np.asarray(jax.jit(self.sample, static_argnums=2)(params, key, n))
        return np.stack([music.melody_to_roll(t) for t in tokens])


if __name__ == "__main__":
    from gm_jax.cli import main

    main("melody_jsb")
