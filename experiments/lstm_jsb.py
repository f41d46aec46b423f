"""LSTM on JSB Chorales piano rolls (polyphonic): frame-wise independent Bernoulli over 88 keys given the past.

    python -m experiments.lstm_jsb --workdir runs/lstm_jsb [--config.hidden=...]

The RNN baseline of Boulanger-Lewandowski et al. 2012: at each quarter-note
step t the LSTM (Hochreiter & Schmidhuber 1997) has read the frames v_<t
(starting from an all-zero start frame) and predicts
p(v_t | v_<t) = prod_k Bernoulli(v_tk; sigmoid(l_tk)). Trained on whole
chorales (padded to a common length, padding masked out), teacher forcing.
Test metric: the exact NLL in nats per time step, summed over all frames of
the 77 test chorales and divided by their number of frames (4,725).
Published: LSTM 8.45 nats per time step (Bai et al. 2018, Table 1).

Writes `results.json` (`test_nll_per_step_nats`, `validation_nll_per_step_nats`,
...), `samples/sample_{i}.mid` (MIDI, `config.step_seconds` per frame) and
`samples.png` (piano rolls of the samples). `Model.sample(key, n, length=64,
temperature=1.0)` returns uint8 [n, length, 88] piano rolls; `Model.log_prob(x)`
takes uint8 {0, 1} [N, T, 88] and returns log p(v_1..v_T) in nats.

This module also holds `JSBExperiment`, the base of `melody_jsb`.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax import config as config_lib
from gm_jax import sampling
from gm_jax.data import music
from gm_jax.data.pipeline import train_batches
from gm_jax.evaluation import mean_over_dataset
from gm_jax.experiment import Experiment as BaseExperiment
from gm_jax.models import rnn


def get_config() -> ml_collections.ConfigDict:
    """CPU default: one LSTM layer of 200 units, whole chorales, batch 16 (a few minutes on 2 cores)."""
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
    return c


class JSBExperiment(BaseExperiment):
    """Shared parts of the JSB experiments: padded whole pieces with masks, masked NLL, evaluation."""

    conditioning = ("length", "temperature")

    def pieces(self, split: str) -> list:
        raise NotImplementedError

    def step_log_probs(self, params, inputs, targets) -> jax.Array:
        """float32 [N, T] nats."""
        raise NotImplementedError

    def _max_len(self) -> int:
        return max(len(p) for s in music.SPLITS for p in self.pieces(s))

    def arrays(self, split: str) -> dict:
        x, mask = music.pad_sequences(self.pieces(split), self._max_len())
        return {"x": x, "mask": mask}

    def train_batches(self, start_step: int = 0):
        return train_batches(self.arrays("train"), self.config.batch_size, self.config.seed, start_step)

    def optimizer(self) -> optax.GradientTransformation:
        """AdamW with cosine decay to 10% and global-norm clipping."""
        c = self.config
        schedule = optax.cosine_decay_schedule(c.learning_rate, max(c.num_steps, 1), 0.1)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip),
                           optax.adamw(schedule, weight_decay=c.weight_decay))

    def _inputs(self, x):
        """Inputs read before each step: the start symbol, then x_0 .. x_{T-2}."""
        raise NotImplementedError

    def masked_nll(self, params, x, mask) -> jax.Array:
        """NLL per piece (sum over its real steps), float32 [N], nats."""
        lp = self.step_log_probs(params, self._inputs(x), x)
        return -(lp * mask).sum(-1)

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """NLL in nats per chorale (sum over its steps), averaged over the batch."""
        nll = self.masked_nll(params, batch["x"], batch["mask"])
        return nll.mean(), {"nll_per_step": nll.sum() / batch["mask"].sum()}

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """Exact log p(x_0..x_{T-1}) of whole sequences (every step predicted, from the start symbol): [N] nats."""
        return -self.masked_nll(params, x, jnp.ones(x.shape[:2], jnp.float32))

    def split_nll(self, params, split: str) -> float:
        data = self.arrays(split)

        @jax.jit
        def nll(batch, _):
            return {"nll": self.masked_nll(params, batch["x"], batch["mask"])}

        mean = mean_over_dataset(nll, data, self.config.eval_batch_size, jax.random.key(0))["nll"]
        return mean * len(data["mask"]) / float(data["mask"].sum()), int(data["mask"].sum())

    def evaluate(self, params, key: jax.Array) -> dict:
        test, steps = self.split_nll(params, "test")
        val, _ = self.split_nll(params, "valid")
        return {"test_nll_per_step_nats": test, "validation_nll_per_step_nats": val, "test_steps": steps}

    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """length (>= 1, wrapped in `sampling.Static`: it fixes the output shape) and temperature (> 0).

        Raises:
          ValueError: unknown names, length <= 0 or temperature <= 0.
        """
        super().check_conditioning(num_samples, **conditioning)
        length = conditioning.get("length", self.config.sample_length)
        temperature = conditioning.get("temperature", 1.0)
        sampling.check_sampling_args(length, temperature, 0, 1.0)
        return {"length": sampling.Static(length), "temperature": float(temperature)}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        n = 4
        rolls = np.asarray(self.sample_rolls(params, key, n))
        out = Path(workdir) / "samples"
        out.mkdir(exist_ok=True)
        for i, roll in enumerate(rolls):
            music.roll_to_midi(roll, out / f"sample_{i}.mid", step_seconds=self.config.step_seconds)
        music.save_piano_roll_png(Path(workdir) / "samples.png", list(rolls),
                                  [f"{self.name} sample {i}" for i in range(n)])

    def sample_rolls(self, params, key, n):
        raise NotImplementedError


class Experiment(JSBExperiment):
    name = "lstm_jsb"
    data_shape = (None, music.NUM_KEYS)
    data_max = 1

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = rnn.RNN(out_dim=music.NUM_KEYS, hidden=config.hidden, num_layers=config.num_layers,
                             cell=config.cell)

    def pieces(self, split: str) -> list:
        return music.load_piano_rolls(split, self.config.data_dir or None)

    def init_params(self, key: jax.Array):
        return rnn.init_params(self.model, key, input_dim=music.NUM_KEYS)

    def _inputs(self, x):
        return jnp.pad(x[:, :-1], ((0, 0), (1, 0), (0, 0)))  # the all-zero start frame first

    def step_log_probs(self, params, inputs, targets):
        return rnn.bernoulli_log_probs(self.model, params, inputs, targets)

    def check_data(self, x) -> jax.Array:
        """Piano rolls {0, 1} [N, T, 88] (T >= 1), integer or bool dtype.

        Raises:
          ValueError: wrong shape, dtype or values.
        """
        x_np = np.asarray(x)
        what = f"{self.name} expects piano rolls of shape [N, T, {music.NUM_KEYS}] with values in {{0, 1}}"
        if x_np.ndim != 3 or x_np.shape[2] != music.NUM_KEYS or x_np.shape[1] < 1:
            raise ValueError(f"{what}; got shape {x_np.shape}")
        if not (np.issubdtype(x_np.dtype, np.integer) or x_np.dtype == bool):
            raise ValueError(f"{what} and an integer or bool dtype; got {x_np.dtype}")
        if x_np.size and (x_np.min() < 0 or x_np.max() > 1):
            raise ValueError(f"{what}; got values in [{x_np.min()}, {x_np.max()}]")
        return jnp.asarray(x_np, jnp.float32)

    def sample(self, params, key: jax.Array, num_samples: int, length=None, temperature=1.0) -> jax.Array:
        """Piano rolls uint8 [num_samples, length, 88] from the all-zero start frame."""
        length = int(sampling.static_value(length) if length is not None else self.config.sample_length)
        start = jnp.zeros((num_samples, 1, music.NUM_KEYS), jnp.float32)
        return rnn.sample_bernoulli(self.model, params, key, start, length, temperature)[:, 1:]

    def sample_rolls(self, params, key, n):
        return jax.jit(self.sample, static_argnums=2)(params, key, n)


if __name__ == "__main__":
    from gm_jax.cli import main

    main("lstm_jsb")
