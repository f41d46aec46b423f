"""The sequence family: autoregressive models of text, music and audio.

Three bases, each holding the data wiring, the likelihood evaluation, the
sampling checks and the artifacts of its data; an experiment adds its model:

* `TextExperiment`: tiny_shakespeare characters (`gm_jax.data.text`): data kind
  "tokens" (the vocabulary of the training split), teacher forcing on random
  windows, exact test / validation bits per character in which every character
  after the first of a split is scored exactly once (`text.windows`, the final
  partial window included), prompted sampling with temperature / top-k / top-p,
  `samples.txt`. Used by `transformer_shakespeare`, `charrnn_shakespeare`,
  `ngram_shakespeare`.
* `JSBExperiment`: JSB Chorales pieces, whole and padded with a mask; exact
  NLL in nats per time step; primed generation (the first bars of a piece
  continued, log p(continuation | primer)); MIDI files and a piano-roll PNG of
  samples. Used by `lstm_jsb` (piano rolls, "binary" [T, 88]) and `melody_jsb`
  (soprano tokens).
* `AudioExperiment`: FSDD recordings as 8-bit mu-law classes, conditioned on
  the digit and the speaker; crops in the voiced part for training; exact NLL
  of whole test recordings against an i.i.d. and a linear AR baseline; checks
  of generated audio; WAV files and spectrograms. Used by `wavenet_digits`.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gm_jax import sampling
from gm_jax.config import Range
from gm_jax.data import audio, music
from gm_jax.data import text as text_data
from gm_jax.data.pipeline import train_batches
from gm_jax.distributions import nats_to_bits
from gm_jax.evaluation import audio as audio_eval
from gm_jax.evaluation import mean_over_dataset
from gm_jax.experiment import Experiment
from gm_jax.viz import audio as audio_viz
from gm_jax.viz import music as music_viz

POSITIVE = Range(0.0, lo_open=True)
COUNT = Range(1, integer=True)


# -- text ----------------------------------------------------------------------------------------------
class TextExperiment(Experiment):
    """tiny_shakespeare at the character level: vocabulary, windows, checks, bits/char evaluation.

    Subclasses set `window` (steps per evaluation window), optionally
    `eval_stride` (steps between evaluation windows; None: consecutive) and
    `max_len` (the longest sequence `log_prob` takes; None: any), and define
    `init_params`, `token_log_probs(params, inputs, targets)` (float32 [N, T]
    nats of targets given inputs up to each step), `token_logits(params, inputs)` (float32 [N, T, V],
    for `conditionals`) and `sample_tokens(params,
    key, prompt, length, temperature, top_k, top_p)` (int32 [N, P + length]).
    """

    data_kind = "tokens"
    data_shape = (None,)  # token ids [T]: the first one is the given context
    min_length = 2
    conditioning = ("prompt", "length", "temperature", "top_k", "top_p")
    schema = {"sample_length": COUNT, "sample_temperature": POSITIVE}
    window = 128
    eval_stride: int | None = None
    max_len: int | None = None
    # The character vocabulary (code points, sorted) of the training text: the data setup, so a model is
    # built (and a run loaded) without reading the text.
    setup_fields = ("data_dir",)
    setup_arrays = ("vocab",)

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.vocab = text_data.CharVocab("".join(map(chr, self.data_setup["vocab"].tolist())))
        self.vocab_size = self.num_values = self.vocab.size

    def compute_data_setup(self) -> dict[str, np.ndarray]:
        """{"vocab": uint32 [V] code points of the training text's distinct characters, sorted}."""
        chars = text_data.CharVocab.from_text(self._text("train")).chars
        return {"vocab": np.array([ord(c) for c in chars], np.uint32)}

    # -- data ---------------------------------------------------------------------
    def _text(self, split: str) -> str:
        return text_data.load_text(split, self.config.data_dir or None)

    def tokens(self, split: str) -> np.ndarray:
        """int32 [T] token ids of a split (unknown characters are an error; there are none)."""
        return self.vocab.encode(self._text(split))

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        return text_data.random_windows(self.tokens("train"), self.window, self.config.batch_size,
                                        self.config.seed, start_step, rows)

    # -- the model interface ----------------------------------------------------------
    def token_log_probs(self, params, inputs, targets) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must define token_log_probs")

    def token_logits(self, params, inputs) -> jax.Array:
        """float32 [N, T, V] logits of p(x_{t+1} | inputs_<=t) (for `conditionals`; log-probabilities count)."""
        raise NotImplementedError(f"{type(self).__name__} must define token_logits")

    def sample_tokens(self, params, key, prompt, length: int, temperature, top_k, top_p,
                      method: str = "cached") -> jax.Array:
        """int32 [N, P + length] tokens, the prompt first, drawn by the sampler `method` (of `sample_methods`)."""
        raise NotImplementedError(f"{type(self).__name__} must define sample_tokens")

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """Negative log-likelihood in nats per window (sum over its steps), averaged over the batch."""
        nll = -self.token_log_probs(params, batch["inputs"], batch["targets"])
        return nll.sum(axis=-1).mean(), {"bits_per_char": nats_to_bits(nll.mean())}

    def log_prob_per_position(self, params, x: jax.Array) -> jax.Array:
        """log p(x_t | x_<t) of tokens t = 1..T-1 of int [N, T], nats, float32 [N, T - 1] (the first token
        is the given context); sums to `log_prob`."""
        x = jnp.asarray(x, jnp.int32)
        return self.token_log_probs(params, x[:, :-1], x[:, 1:])

    conditionals_kind = "categorical"

    def conditionals(self, params, x: jax.Array) -> dict:
        """{"logits": float32 [N, T - 1, V]}: p(x_t | x_<t) of tokens t = 1..T-1 of int [N, T] (the positions
        of `log_prob_per_position`; targets `conditionals_targets(x)` = x[:, 1:])."""
        return {"logits": self.token_logits(params, jnp.asarray(x, jnp.int32)[:, :-1])}

    def conditionals_targets(self, x: jax.Array) -> jax.Array:
        """The tokens the conditionals predict: x[:, 1:] (the first token is the given context)."""
        return x[:, 1:]

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """Exact log p(x_1..x_{T-1} | x_0) for tokens int [N, T]: float32 [N], nats (sum of the per-step
        conditionals; the first token is the given context)."""
        x = jnp.asarray(x, jnp.int32)
        return self.token_log_probs(params, x[:, :-1], x[:, 1:]).sum(axis=-1)

    def check_data(self, x) -> jax.Array:
        """Token ids int [N, T], 2 <= T (<= `max_len`), values in [0, vocab size): int32 [N, T].

        Raises:
          ValueError: wrong rank or length, a non-integer dtype, or ids out of range.
        """
        x = super().check_data(x)
        if self.max_len and x.shape[1] > self.max_len:
            raise ValueError(f"x: {self.name} scores token ids [N, T] with T <= {self.max_len} (its context + 1); "
                             f"got shape {x.shape}")
        return x

    # -- sampling -----------------------------------------------------------------------
    def encode_prompt(self, prompt, num_samples: int) -> np.ndarray:
        """A prompt (str, or int ids [P] or [num_samples, P]) as int32 [num_samples, P], P >= 1.

        Raises:
          ValueError: an empty prompt, characters outside the vocabulary, or bad ids/shape.
        """
        if isinstance(prompt, str):
            if not prompt:
                raise ValueError("prompt must hold at least one character (e.g. '\\n')")
            ids = self.vocab.encode(prompt)  # ValueError for characters outside the vocabulary
        else:
            ids = np.asarray(prompt)
            if not np.issubdtype(ids.dtype, np.integer) or ids.ndim not in (1, 2) or ids.shape[-1] < 1:
                raise ValueError(f"prompt must be a string or int ids [P] / [num_samples, P]; got {ids.dtype} "
                                 f"{ids.shape}")
            if ids.min() < 0 or ids.max() >= self.vocab_size:
                raise ValueError(f"prompt ids must be in [0, {self.vocab_size}); got [{ids.min()}, {ids.max()}]")
        ids = np.asarray(ids, np.int32)
        if ids.ndim == 1:
            ids = np.broadcast_to(ids, (num_samples, len(ids)))
        if ids.shape[0] != num_samples:
            raise ValueError(f"prompt ids [N, P] need N = num_samples = {num_samples}; got {ids.shape}")
        return np.ascontiguousarray(ids)

    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """Check and fill the sampling arguments (see `sample`).

        `length` (new tokens) is an int in [1, 2**31 - 1 - P] (`sampling.MAX_POSITIONS`:
        positions are int32); models with a bounded context have no tighter limit
        (the Transformer's context slides, see `gm_jax.models.transformer`), and
        `gm_jax.Model.sample` refuses an output that would not fit in memory.

        Returns:
          prompt as int32 [num_samples, P], `length` wrapped in `sampling.Static`
          (it fixes the output shape under jit), temperature / top_k / top_p.

        Raises:
          ValueError: unknown names, an empty prompt or one with characters outside
            the vocabulary, length <= 0 or above the limit, temperature <= 0, top_k < 0,
            top_p outside (0, 1].
        """
        super().check_conditioning(num_samples, **conditioning)
        c = self.config
        prompt = self.encode_prompt(conditioning.get("prompt", c.sample_prompt), num_samples)
        length = conditioning.get("length", c.sample_length)
        temperature = conditioning.get("temperature", 1.0)
        top_k = conditioning.get("top_k", 0)
        top_p = conditioning.get("top_p", 1.0)
        sampling.check_sampling_args(length, temperature, top_k, top_p, given=prompt.shape[1])
        return {"prompt": prompt, "length": sampling.Static(length),
                "temperature": float(temperature), "top_k": int(top_k), "top_p": float(top_p)}

    def sample(self, params, key: jax.Array, num_samples: int, prompt=None, length=None, temperature=1.0,
               top_k=0, top_p=1.0, method=None) -> jax.Array:
        """Ancestral samples: int32 [num_samples, P + length] token ids, the prompt first.

        Args:
          prompt: int32 [num_samples, P] ids (None: `config.sample_prompt`); strings are encoded by
            `check_conditioning` (which `gm_jax.Model.sample` calls).
          length: new tokens, int or `sampling.Static` (None: `config.sample_length`); at most
            2**31 - 1 - P (see `check_conditioning`).
          temperature, top_k, top_p: see `gm_jax.sampling.filter_logits`.
          method: one of `sample_methods` (`Experiment.sample_method`); the same tokens for the same key.
        """
        if prompt is None:
            prompt = self.encode_prompt(self.config.sample_prompt, num_samples)
        length = sampling.static_value(length) if length is not None else self.config.sample_length
        return self.sample_tokens(params, key, jnp.asarray(prompt, jnp.int32), int(length), temperature, top_k,
                                  top_p, method=self.sample_method(method))

    # -- evaluation ---------------------------------------------------------------------
    @functools.cached_property
    def _jit_window_nll(self):
        """NLL of each window, nats [B] (jitted once: the parameters are an argument)."""
        @jax.jit
        def nll(params, batch):
            logp = self.token_log_probs(params, batch["inputs"], batch["targets"])
            return {"nll": -(logp * batch["mask"]).sum(axis=-1)}

        return nll

    def split_nll(self, params, split: str, max_windows: int | None = None) -> dict:
        """Exact NLL of a split in windows of `self.window` steps started every `self.eval_stride` steps
        (`gm_jax.data.text.windows`): every character after the first is scored exactly once, the
        `len(split) - 1` of them (`chars`). `max_windows`: only the first that many windows (a prefix of
        the split, each of its characters after the first scored once)."""
        data = text_data.windows(self.tokens(split), self.window, self.eval_stride)
        if max_windows is not None:
            data = {k: v[:max_windows] for k, v in data.items()}
        mean = mean_over_dataset(lambda batch, _: self._jit_window_nll(params, batch), data,
                                 self.config.eval_batch_size, jax.random.key(0))["nll"]
        chars = int(data["mask"].sum())
        total = mean * len(data["targets"])
        return {"nats_per_char": total / chars, "bits_per_char": nats_to_bits(total, chars), "chars": chars}

    def evaluate(self, params, key: jax.Array) -> dict:
        test = self.split_nll(params, "test")
        val = self.split_nll(params, "validation")
        return {"test_bits_per_char": test["bits_per_char"], "test_nats_per_char": test["nats_per_char"],
                "test_chars": test["chars"], "validation_bits_per_char": val["bits_per_char"],
                "eval_window": self.window, "eval_stride": self.eval_stride or self.window,
                "vocab_size": self.vocab_size}

    num_progress_samples = 4  # texts of `config.sample_length` characters from `config.sample_prompt`

    def validate(self, params, key: jax.Array) -> dict:
        """`val_bits_per_char` and `val_nats_per_char` of the first `config.num_validation_examples` evaluation
        windows of the validation split (a prefix of it, scored as `evaluate` scores the whole split)."""
        val = self.split_nll(params, "validation", self.config.num_validation_examples)
        return {"val_bits_per_char": val["bits_per_char"], "val_nats_per_char": val["nats_per_char"]}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        """`samples.txt`: 4 samples of `config.sample_length` characters from `config.sample_prompt`."""
        cond = self.check_conditioning(4, length=self.config.sample_length,
                                       temperature=self.config.sample_temperature)
        tokens = self.jit_sample(params, key, 4, **cond)
        texts = [self.vocab.decode(row) for row in np.asarray(tokens)]
        sep = "\n" + "=" * 60 + "\n"
        (Path(workdir) / "samples.txt").write_text(
            f"# {self.name}: 4 samples, prompt {self.config.sample_prompt!r}, temperature "
            f"{self.config.sample_temperature}{sep}" + sep.join(texts) + "\n")


# -- music ---------------------------------------------------------------------------------------------
class JSBExperiment(Experiment):
    """JSB Chorales: whole pieces padded to a common length with masks, masked NLL, evaluation, MIDI / PNG.

    Subclasses set `data_kind` / `data_shape` (/ `num_values`) and `steps_per_bar`, and define
    `pieces(split)` (a list of arrays [T_i, ...]), `init_params`, `inputs(x)` (what the model reads before
    each step: a start symbol, then x_0 .. x_{T-2}), `step_log_probs(params, inputs, targets)` (float32
    [N, T] nats), `step_logits(params, inputs)` and `conditionals_kind` (for `conditionals`),
    `sample(params, key, n, length=None, temperature=1.0, method=None, prompt=None)` (the primer first when
    `prompt` is given, through `gm_jax.sampling.ancestral` with the primer's positions given) and
    `to_rolls(samples)` (piano rolls [N, T, 88] of samples, for the artifacts).

    Primed generation ("start with a small amount of initial notes; the model generates the next note,
    which is used as input again"): `sample(..., prompt=primer)` continues the first frames of a piece
    (`encode_primer` checks them), `continuation_log_prob` scores log p(continuation | primer), and
    `evaluate` / `write_artifacts` continue the first `config.primer_bars` bars of a test chorale
    (`primed_generation`).
    """

    conditioning = ("prompt", "length", "temperature")
    schema = {"sample_length": COUNT, "step_seconds": POSITIVE, "grad_clip": POSITIVE,
              "weight_decay": Range(0.0), "primer_bars": COUNT}
    resumable_keys = Experiment.resumable_keys + ("primer_bars",)
    steps_per_bar = 4  # time steps of one 4/4 bar in the data (quarter-note frames; 16 for 16th notes)
    num_primed_samples = 4  # continuations of the test primer in `evaluate` / `write_artifacts`

    def pieces(self, split: str) -> list:
        raise NotImplementedError(f"{type(self).__name__} must define pieces")

    def inputs(self, x) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must define inputs")

    def step_log_probs(self, params, inputs, targets) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must define step_log_probs")

    def step_logits(self, params, inputs) -> jax.Array:
        """float32 [N, T, D] logits of p(x_t | inputs_<=t) (for `conditionals`, of `conditionals_kind`)."""
        raise NotImplementedError(f"{type(self).__name__} must define step_logits")

    def to_rolls(self, samples) -> np.ndarray:
        """Piano rolls uint8 [N, T, 88] of samples (default: the samples are piano rolls)."""
        return np.asarray(samples)

    def _max_len(self) -> int:
        return max(len(p) for s in music.SPLITS for p in self.pieces(s))

    def arrays(self, split: str) -> dict:
        """{"x": pieces padded to the longest piece of all splits [N, L, ...], "mask": float32 [N, L]}."""
        x, mask = music.pad_sequences(self.pieces(split), self._max_len())
        return {"x": x, "mask": mask}

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        return train_batches(self.arrays("train"), self.config.batch_size, self.config.seed, start_step, rows)

    def optimizer(self) -> optax.GradientTransformation:
        """AdamW with cosine decay to 10% and global-norm clipping."""
        c = self.config
        schedule = optax.cosine_decay_schedule(c.learning_rate, max(c.num_steps, 1), 0.1)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip),
                           optax.adamw(schedule, weight_decay=c.weight_decay))

    def masked_nll(self, params, x, mask) -> jax.Array:
        """NLL per piece (sum over its real steps), float32 [N], nats."""
        lp = self.step_log_probs(params, self.inputs(x), x)
        return -(lp * mask).sum(-1)

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """NLL in nats per chorale (sum over its steps), averaged over the batch."""
        nll = self.masked_nll(params, batch["x"], batch["mask"])
        return nll.mean(), {"nll_per_step": nll.sum() / batch["mask"].sum()}

    def log_prob_per_position(self, params, x: jax.Array) -> jax.Array:
        """log p(x_t | x_<t) of every time step t = 0..T-1 (from the start symbol), nats, float32 [N, T];
        sums to `log_prob`."""
        return self.step_log_probs(params, self.inputs(x), x)

    def conditionals(self, params, x: jax.Array) -> dict:
        """{"logits": float32 [N, T, D]}: p(x_t | x_<t) of every time step t = 0..T-1 (from the start symbol),
        the positions of `log_prob_per_position` (D: 88 Bernoulli keys or the melody classes)."""
        return {"logits": self.step_logits(params, self.inputs(x))}

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """Exact log p(x_0..x_{T-1}) of whole sequences (every step predicted, from the start symbol): [N] nats."""
        return -self.masked_nll(params, x, jnp.ones(x.shape[:2], jnp.float32))

    @functools.cached_property
    def _jit_masked_nll(self):
        """`masked_nll` jitted once (the parameters are an argument)."""
        return jax.jit(self.masked_nll)

    def split_nll(self, params, split: str, max_pieces: int | None = None) -> tuple[float, int]:
        """(NLL in nats per time step over every real step of a split, the number of those steps);
        `max_pieces`: of its first that many pieces only."""
        data = self.arrays(split)
        if max_pieces is not None:
            data = {k: v[:max_pieces] for k, v in data.items()}
        mean = mean_over_dataset(lambda batch, _: {"nll": self._jit_masked_nll(params, batch["x"], batch["mask"])},
                                 data, self.config.eval_batch_size, jax.random.key(0))["nll"]
        return mean * len(data["mask"]) / float(data["mask"].sum()), int(data["mask"].sum())

    def evaluate(self, params, key: jax.Array) -> dict:
        """The test / validation NLL per time step and the primed-generation metrics (`primed_generation`)."""
        test, steps = self.split_nll(params, "test")
        val, _ = self.split_nll(params, "valid")
        primed = self.primed_generation(params, key)
        return {"test_nll_per_step_nats": test, "validation_nll_per_step_nats": val, "test_steps": steps,
                **primed["metrics"]}

    num_progress_samples = 4  # pieces of `config.sample_length` steps, written as one piano-roll image

    def validate(self, params, key: jax.Array) -> dict:
        """`val_nll_per_step_nats`: `evaluate`'s NLL per time step on the first `config.num_validation_examples`
        pieces of the validation split ("valid")."""
        return {"val_nll_per_step_nats": self.split_nll(params, "valid", self.config.num_validation_examples)[0]}

    def encode_primer(self, prompt, num_samples: int) -> np.ndarray:
        """A primer, the first time steps of a piece in the data's own form, as [num_samples, P, ...].

        Args:
          prompt: melody tokens int [P] or [num_samples, P] in [0, `num_values`) (data kind "tokens";
            `gm_jax.data.music.melody_tokens` turns MIDI pitches into tokens), or piano-roll frames
            int / bool {0, 1} [P, 88] or [num_samples, P, 88] (data kind "binary"); P >= 1. One primer is
            used for every sample.

        Returns:
          int32 [num_samples, P] tokens or uint8 [num_samples, P, 88] frames.

        Raises:
          ValueError: a wrong shape or dtype, an empty primer (P = 0), values out of range (a note outside
            the melody's classes or the piano's {0, 1} frames), or a leading axis other than num_samples.
        """
        frame = tuple(self.data_shape[1:])  # () for tokens, (88,) for piano-roll frames
        tokens = self.data_kind == "tokens"
        dims = "".join(f", {d}" for d in frame)
        lo, hi_pitch = music.MELODY_PITCHES[0], music.MELODY_PITCHES[-1]
        values = (f"melody tokens in [0, {self.num_values}) (0 = rest, 1 + pitch - {lo} for MIDI pitches "
                  f"{lo}..{hi_pitch}; music.melody_tokens converts pitches)" if tokens
                  else "piano-roll frames of integer or bool {0, 1} values")
        what = f"prompt: {self.name} is primed with {values}, an array [P{dims}] or [num_samples, P{dims}] with P >= 1"
        p = np.asarray(prompt)
        if p.ndim not in (1 + len(frame), 2 + len(frame)) or p.shape[p.ndim - len(frame):] != frame:
            raise ValueError(f"{what}; got shape {p.shape}")
        if not (np.issubdtype(p.dtype, np.integer) or p.dtype == bool):
            raise ValueError(f"{what}; got dtype {p.dtype}")
        if p.shape[p.ndim - len(frame) - 1] == 0 or p.size == 0:
            raise ValueError(f"{what}; got an empty primer, shape {p.shape}")
        hi = self.num_values if tokens else 2
        if p.min() < 0 or p.max() >= hi:
            bad = sorted(set(p[(p < 0) | (p >= hi)].astype(np.int64).tolist()))
            raise ValueError(f"{what}; got values out of range: {bad[:10]}")
        p = p.astype(np.int32 if tokens else np.uint8)
        if p.ndim == 1 + len(frame):
            p = np.broadcast_to(p, (num_samples, *p.shape))
        if p.shape[0] != num_samples:
            raise ValueError(f"{what}: a [num_samples, P{dims}] primer needs num_samples = {num_samples} rows; "
                             f"got shape {p.shape}")
        return np.ascontiguousarray(p)

    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """prompt (optional: the first time steps, see `encode_primer`; None: from the start symbol alone),
        length (new time steps, an int in [1, 2**31 - 2 - P]: positions are int32 and the start step is one
        of them; wrapped in `sampling.Static`: it fixes the output shape) and temperature (> 0). The
        recurrent models have no other limit; `gm_jax.Model.sample` refuses an output that would not fit
        in memory.

        Raises:
          ValueError: unknown names, a bad primer (`encode_primer`), length <= 0 or above the limit, or
            temperature <= 0.
        """
        super().check_conditioning(num_samples, **conditioning)
        out = {}
        if conditioning.get("prompt") is not None:
            out["prompt"] = self.encode_primer(conditioning["prompt"], num_samples)
        length = conditioning.get("length", self.config.sample_length)
        temperature = conditioning.get("temperature", 1.0)
        given = 1 + (out["prompt"].shape[1] if out else 0)  # the start step and the primer
        sampling.check_sampling_args(length, temperature, 0, 1.0, given=given)
        return {**out, "length": sampling.Static(length), "temperature": float(temperature)}

    def continuation_log_prob(self, params, x, primer_steps: int) -> jax.Array:
        """log p(x_P..x_{T-1} | x_0..x_{P-1}) in nats, float32 [N], of whole sequences x [N, T, ...] in the
        data's form (from the start symbol, as `log_prob`): the continuation of a primer of P =
        `primer_steps` steps, the sum of `log_prob_per_position` over t >= P (by the chain rule,
        `log_prob(x) - log_prob(x[:, :P])`). Jitted (`jit_log_prob_per_position`).

        Raises:
          ValueError: `primer_steps` not an int in [1, T - 1] (the primer and at least one step after it).
        """
        x = jnp.asarray(x)
        if isinstance(primer_steps, bool) or not isinstance(primer_steps, (int, np.integer)) \
                or not 1 <= primer_steps < x.shape[1]:
            raise ValueError(f"primer_steps must be an int in [1, T - 1] = [1, {x.shape[1] - 1}] (the primer and "
                             f"at least one step after it), got {primer_steps!r}")
        return self.jit_log_prob_per_position(params, x)[:, int(primer_steps):].sum(-1)

    def primed_generation(self, params, key: jax.Array) -> dict:
        """Continue the first `config.primer_bars` bars of a test chorale, and score the continuations.

        The primer is the first P = `primer_bars * steps_per_bar` steps (4/4 bars counted from the first
        step, a pickup included) of the first test chorale at least P + `config.sample_length` steps long
        (else the longest, with P and the continuation shortened to fit). `num_primed_samples`
        continuations of L = `config.sample_length` steps are drawn (temperature 1, the key
        `fold_in(key, 1)`), and the chorale's true next L steps and each sampled continuation are scored
        given the primer (log p(continuation | primer), the terms `continuation_log_prob` sums); the true
        continuation is also scored from the start symbol alone (no primer), so the difference is what the
        primer tells the model.

        Returns:
          {"metrics": {the `primed_*` numbers of results.json; log-probabilities in nats}, "truth": the
          chorale's first P + L steps [P + L, ...], "samples": [num_primed_samples, P + L, ...]} (data form;
          P = metrics["primer_steps"]).
        """
        c = self.config
        pieces = self.pieces("test")
        want = c.primer_bars * self.steps_per_bar
        index = next((i for i, x in enumerate(pieces) if len(x) >= want + c.sample_length),
                     int(np.argmax([len(x) for x in pieces])))
        piece = np.asarray(pieces[index])
        p = min(want, len(piece) - 1)
        length = min(c.sample_length, len(piece) - p)
        n = self.num_primed_samples
        cond = self.check_conditioning(n, prompt=piece[:p], length=length)
        samples = np.asarray(self.jit_sample(params, jax.random.fold_in(key, 1), n, **cond))
        truth = piece[:p + length].astype(samples.dtype)
        alone = np.concatenate([truth[p:], np.zeros_like(truth[:p])])  # the continuation first, then padding
        # one batch, one compiled program: log p(x_t | x_<t) of the chorale, the continuation alone (causal: the
        # padding after it does not count) and the samples; `continuation_log_prob` sums the same terms
        per = np.asarray(self.jit_log_prob_per_position(params, jnp.asarray(np.stack([truth, alone, *samples]))))
        lp = per[[0, *range(2, 2 + n)], p:].sum(-1)
        unprimed = per[1, :length].sum()
        metrics = {"primed_test_piece": index, "primer_steps": p, "primed_continuation_steps": length,
                   "primed_true_continuation_log_prob_nats": float(lp[0]),
                   "primed_true_continuation_nll_per_step_nats": float(-lp[0] / length),
                   "unprimed_true_continuation_log_prob_nats": float(unprimed),
                   "primed_sample_continuation_log_prob_nats": float(lp[1:].mean()),
                   "primed_samples_keep_primer": bool(np.array_equal(samples[:, :p],
                                                                     np.broadcast_to(truth[:p], samples[:, :p].shape)))}
        return {"metrics": metrics, "truth": truth, "samples": samples}

    def length(self, length) -> int:
        """`length` (int, `sampling.Static` or None: `config.sample_length`) as an int."""
        return int(sampling.static_value(length) if length is not None else self.config.sample_length)

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        """`samples/sample_{i}.mid` (`config.step_seconds` per frame) and `samples.png` of 4 samples; the
        primed continuations of a test chorale (`primed_generation`, the same key as `evaluate`):
        `samples/primed_{i}.mid` and `samples/primed_true.mid` (the chorale itself), each with the primer
        and the continuation as two instruments named "primer" and "continuation" and a "continuation"
        marker where it starts, and `primed.png` (a line at the end of the primer)."""
        n = 4
        rolls = self.to_rolls(self.jit_sample(params, key, n))
        out = Path(workdir) / "samples"
        out.mkdir(exist_ok=True)
        step = self.config.step_seconds
        for i, roll in enumerate(rolls):
            music_viz.roll_to_midi(roll, out / f"sample_{i}.mid", step_seconds=step)
        music_viz.save_piano_roll_png(Path(workdir) / "samples.png", list(rolls),
                                      [f"{self.name} sample {i}" for i in range(n)])
        primed = self.primed_generation(params, key)
        p = primed["metrics"]["primer_steps"]
        truth, continued = self.to_rolls(primed["truth"][None])[0], self.to_rolls(primed["samples"])
        music_viz.roll_to_midi(truth, out / "primed_true.mid", step_seconds=step, primer_steps=p)
        for i, roll in enumerate(continued):
            music_viz.roll_to_midi(roll, out / f"primed_{i}.mid", step_seconds=step, primer_steps=p)
        piece = primed["metrics"]["primed_test_piece"]
        music_viz.save_piano_roll_png(
            Path(workdir) / "primed.png", [truth, *continued],
            [f"{self.name}: test chorale {piece}, its first {p} steps (primer) and true continuation"]
            + [f"primed sample {i}" for i in range(len(continued))], primer_steps=p)


# -- audio ---------------------------------------------------------------------------------------------
class AudioExperiment(Experiment):
    """FSDD spoken digits as mu-law classes, conditioned on (digit, speaker): crops, NLL, baselines, audio.

    The handle's data are float waveforms [T] in [-1, 1] at 8 kHz (data kind "audio"); the model sees
    their mu-law classes. Subclasses define `init_params`, `conditional_log_probs(params, x, digit,
    speaker)` (float32 [N, T] nats of mu-law classes int32 [N, T] given labels int32 [N]),
    `conditional_logits(params, x, digit, speaker)` (float32 [N, T, 256], for `conditionals`) and
    `sample_codes(params, key, digit, speaker, length, temperature, sampler)` (int32 [N, length]).
    Config fields used: crop_length, silence_db, sample_seconds, sample_temperature, ar_order,
    sampler, eval_batch_size.
    """

    data_kind = "audio"
    data_shape = (None,)
    conditioning = ("digit", "speaker", "seconds", "temperature")
    schema = {"crop_length": Range(2, integer=True), "silence_db": Range(hi=0.0), "sample_seconds": POSITIVE,
              "sample_temperature": POSITIVE, "ar_order": COUNT, "grad_clip": POSITIVE,
              "warmup_steps": Range(0, integer=True)}
    num_pairs = len(audio.DIGITS) * len(audio.SPEAKERS)

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self._cache = {}

    # -- the model interface ------------------------------------------------------------
    def conditional_log_probs(self, params, x, digit, speaker) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must define conditional_log_probs")

    def conditional_logits(self, params, x, digit, speaker) -> jax.Array:
        """float32 [N, T, 256] logits of p(x_t | x_<t, digit, speaker) of mu-law classes int32 [N, T]."""
        raise NotImplementedError(f"{type(self).__name__} must define conditional_logits")

    def sample_codes(self, params, key, digit, speaker, length: int, temperature=1.0, sampler=None) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} must define sample_codes")

    # -- data -----------------------------------------------------------------------------
    def recordings(self, split: str) -> dict:
        """`audio.coded_recordings(split)`: the recordings with mu-law `codes` and `voiced` bounds (cached)."""
        if split not in self._cache:
            self._cache[split] = audio.coded_recordings(split, self.config.data_dir or None, self.config.silence_db)
        return self._cache[split]

    def crops(self, step: int, split: str = "train", rows: slice | None = None) -> dict:
        """Training batch `step` (`audio.voiced_crops`): `x` int32 [B, crop_length], `mask`, `digit`, `speaker`
        (the crops of `rows` only, when given)."""
        c = self.config
        return audio.voiced_crops(self.recordings(split), c.crop_length, c.batch_size, c.seed, step, rows)

    def train_batches(self, start_step: int = 0, rows: slice | None = None):
        step = start_step
        while True:
            yield self.crops(step, rows=rows)
            step += 1

    def silent_crop_share(self, num_batches: int, threshold_db: float = -30.0) -> dict:
        """`evaluation.audio.silent_crop_share` of the training crops of batches 0 .. num_batches - 1."""
        c = self.config
        return audio_eval.silent_crop_share(self.recordings("train"), c.crop_length, c.batch_size, c.seed,
                                            num_batches, threshold_db)

    # -- likelihood -------------------------------------------------------------------------
    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """NLL in nats per crop (sum over its real samples), averaged over the batch."""
        lp = self.conditional_log_probs(params, batch["x"], batch["digit"], batch["speaker"])
        nll = -(lp * batch["mask"]).sum(-1)
        return nll.mean(), {"nats_per_sample": nll.sum() / batch["mask"].sum()}

    def log_prob_per_position(self, params, x: jax.Array, digit=None, speaker=None) -> jax.Array:
        """log p(x_t | x_<t, digit, speaker) of every sample t, nats, float32 [N, T] (float waveforms are
        mu-law quantised, int mu-law classes taken as they are); sums to log p(x | digit, speaker).
        `digit` and `speaker` (int32 [N], from `check_score_conditioning`) are required: the marginal
        `log_prob` over the 60 label pairs has no per-sample terms."""
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.floating):
            x = audio.mu_law_encode(x)
        return self.conditional_log_probs(params, x, digit, speaker)

    conditionals_kind = "categorical"

    def conditionals(self, params, x: jax.Array, digit=None, speaker=None) -> dict:
        """{"logits": float32 [N, T, 256]}: p(x_t | x_<t, digit, speaker) over the 256 mu-law classes of every
        sample t (the positions of `log_prob_per_position`; x and the labels as there)."""
        return {"logits": self.conditional_logits(params, self.conditionals_targets(x), digit, speaker)}

    def conditionals_targets(self, x: jax.Array) -> jax.Array:
        """The mu-law classes int32 [N, T] of x (float waveforms quantised, int classes as they are)."""
        x = jnp.asarray(x)
        return audio.mu_law_encode(x) if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.int32)

    def check_score_conditioning(self, num_examples: int, **conditioning) -> dict:
        """`digit` (0-9) and `speaker` (name or index), each one value or [N] of them; both required.

        Raises:
          ValueError: a missing or unknown name, or a bad value (listing the valid ones).
        """
        unknown = sorted(set(conditioning) - {"digit", "speaker"})
        if unknown or set(conditioning) != {"digit", "speaker"}:
            raise ValueError(f"{self.name}.log_prob_per_position and .conditionals need digit and speaker (the marginal over labels "
                             f"has no per-sample terms), got {sorted(conditioning)}")
        return {"digit": _labels(conditioning["digit"], num_examples, "digit", audio.check_digit),
                "speaker": _labels(conditioning["speaker"], num_examples, "speaker", audio.speaker_id)}

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """Exact log p(x) in nats, float32 [N], of float waveforms [N, T] in [-1, 1] (mu-law quantised; int
        mu-law classes are taken as they are), marginalising the 60 (digit, speaker) pairs under a uniform
        prior (the training distribution of the labels): logsumexp_c log p(x | c) - log 60."""
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.floating):
            x = audio.mu_law_encode(x)
        digits, speakers = np.meshgrid(np.arange(len(audio.DIGITS)), np.arange(len(audio.SPEAKERS)), indexing="ij")
        pairs = jnp.asarray(np.stack([digits.ravel(), speakers.ravel()], 1), jnp.int32)

        def cond_lp(pair):
            lab = jnp.broadcast_to(pair, (x.shape[0], 2))
            return self.conditional_log_probs(params, x, lab[:, 0], lab[:, 1]).sum(-1)

        lps = jax.lax.map(cond_lp, pairs)  # [60, N]
        return jax.scipy.special.logsumexp(lps, axis=0) - math.log(len(pairs))

    def conditional_log_prob(self, params, x, digit, speaker) -> jax.Array:
        """log p(x | digit, speaker) in nats, float32 [N], of mu-law classes int32 [N, T] and labels int32 [N]."""
        return self.conditional_log_probs(params, x, digit, speaker).sum(-1)

    # -- sampling -----------------------------------------------------------------------------
    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """digit (int 0-9, or num_samples of them; default i mod 10), speaker (name or index 0-5, or
        num_samples of them; default "jackson"), seconds (> 0 and at most `sampling.MAX_POSITIONS` samples,
        about 74.6 hours at 8 kHz: positions are int32; default `config.sample_seconds`; static) and
        temperature (> 0). `gm_jax.Model.sample` also refuses an output that would not fit in memory.

        Raises:
          ValueError: unknown names; a digit outside 0-9 or an unknown speaker (listing the valid ones);
            a wrong number of labels; seconds <= 0, under one sample or above the limit; temperature <= 0.
        """
        super().check_conditioning(num_samples, **conditioning)
        digit = conditioning.get("digit", None)
        speaker = conditioning.get("speaker", "jackson")
        seconds = conditioning.get("seconds", self.config.sample_seconds)
        temperature = conditioning.get("temperature", 1.0)
        digits = np.arange(num_samples) % 10 if digit is None else _labels(digit, num_samples, "digit",
                                                                           audio.check_digit)
        speakers = _labels(speaker, num_samples, "speaker", audio.speaker_id)
        limit = sampling.MAX_POSITIONS / audio.SAMPLE_RATE
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
                or not 1 <= round(seconds * audio.SAMPLE_RATE) <= sampling.MAX_POSITIONS:
            raise ValueError(f"seconds must be a positive number (at least one sample at {audio.SAMPLE_RATE} Hz, "
                             f"at most {limit:,.0f} s: positions are int32), got {seconds!r}")
        sampling.check_sampling_args(round(seconds * audio.SAMPLE_RATE), temperature, 0, 1.0)
        return {"digit": np.asarray(digits, np.int32), "speaker": np.asarray(speakers, np.int32),
                "seconds": sampling.Static(float(seconds)), "temperature": float(temperature)}

    def codes(self, params, key, num_samples: int, digit=None, speaker=None, seconds=None,
              temperature=1.0, sampler=None) -> jax.Array:
        """Mu-law classes int32 [num_samples, round(seconds * 8000)] (see `sample`; `sampler`: "cached" or
        "naive", default `config.sampler`)."""
        if digit is None:
            digit = jnp.arange(num_samples, dtype=jnp.int32) % 10
        if speaker is None:
            speaker = jnp.full((num_samples,), audio.SPEAKERS.index("jackson"), jnp.int32)
        seconds = sampling.static_value(seconds) if seconds is not None else self.config.sample_seconds
        length = max(1, round(float(seconds) * audio.SAMPLE_RATE))
        return self.sample_codes(params, key, digit, speaker, length, temperature, self.sample_method(sampler))

    def sample(self, params, key: jax.Array, num_samples: int, digit=None, speaker=None, seconds=None,
               temperature=1.0, method=None) -> jax.Array:
        """Generated waveforms: float32 [num_samples, round(seconds * 8000)] in [-1, 1] at 8 kHz.

        Args:
          digit, speaker: int32 [num_samples] labels (`check_conditioning` turns ints / names into these;
            defaults: digits i mod 10, speaker jackson).
          seconds: float or `sampling.Static` (None: `config.sample_seconds`).
          temperature: float > 0, the logits are divided by it.
          method: "cached" | "naive" (default `config.sampler`); the same waveform for the same key.
        """
        return audio.mu_law_decode(self.codes(params, key, num_samples, digit, speaker, seconds, temperature,
                                              self.sample_method(method)))

    # -- evaluation ------------------------------------------------------------------------------
    @functools.cached_property
    def _jit_masked_log_prob(self):
        """Summed log p(x | digit, speaker) over the real samples of a padded batch, jitted once."""
        return jax.jit(lambda p, x, m, dg, sp: (self.conditional_log_probs(p, x, dg, sp) * m).sum())

    def split_nll(self, params, split: str = "test", max_recordings: int | None = None) -> dict:
        """Exact NLL of every recording of a split, whole (zero context before it), given its labels: nats per
        sample over the split (`max_recordings`: over its first that many recordings only)."""
        fn = self._jit_masked_log_prob
        total, count = 0.0, 0
        d = self.recordings(split)
        if max_recordings is not None:
            d = {k: v[:max_recordings] for k, v in d.items()}
        for b in audio.padded_batches(d, self.config.eval_batch_size):
            total -= float(fn(params, b["x"], b["mask"], b["digit"], b["speaker"]))
            count += int(b["mask"].sum())
        return {"nats_per_sample": total / count, "samples": count, "recordings": len(d["codes"])}

    def baselines(self) -> dict:
        """The i.i.d. histogram baseline and the linear AR baseline, test NLL in nats per sample."""
        train, test = self.recordings("train"), self.recordings("test")
        ar = audio_eval.linear_ar_baseline(train["codes"], test["codes"], self.config.ar_order)
        return {"iid_entropy_nats_per_sample": audio_eval.iid_baseline(train["codes"], test["codes"]),
                "linear_ar_nll_nats_per_sample": ar["nll"], "linear_ar_order": self.config.ar_order,
                "linear_ar_noise_std_companded": ar["sigma"], "linear_ar_model": ar["model"],
                "iid_model": "add-one smoothed histogram of the 256 training mu-law classes"}

    def generate(self, params, key) -> np.ndarray:
        """One recording of `config.sample_seconds` for every (digit, speaker): float32 [10, 6, T]."""
        digits = np.repeat(np.arange(10), len(audio.SPEAKERS)).astype(np.int32)
        speakers = np.tile(np.arange(len(audio.SPEAKERS)), 10).astype(np.int32)
        x = self.jit_sample(params, key, len(digits), digits, speakers,
                            sampling.Static(float(self.config.sample_seconds)), self.config.sample_temperature)
        return np.asarray(x).reshape(10, len(audio.SPEAKERS), -1)

    def evaluate(self, params, key: jax.Array) -> dict:
        test = self.split_nll(params, "test")
        out = {"test_nll_nats_per_sample": test["nats_per_sample"],
               "test_nll_bits_per_sample": nats_to_bits(test["nats_per_sample"]),
               "test_samples": test["samples"], "test_recordings": test["recordings"],
               "test_nll_marginal_upper_bound_nats_per_sample":
                   test["nats_per_sample"] + test["recordings"] * math.log(self.num_pairs) / test["samples"],
               "num_params": int(sum(p.size for p in jax.tree_util.tree_leaves(params)))}
        out.update(self.baselines())
        out["test_nll_below_both_baselines"] = bool(
            out["test_nll_nats_per_sample"] < min(out["iid_entropy_nats_per_sample"],
                                                  out["linear_ar_nll_nats_per_sample"]))
        out.update(self.silent_crop_share(self.config.num_steps))
        gen = self.generate(params, key)
        self._generated = gen
        out.update(audio_eval.audio_checks(gen.reshape(-1, gen.shape[-1]), self.recordings("test")["audio"], key))
        return out

    num_progress_samples = 2  # recordings of `config.sample_seconds` (digits 0 and 1, speaker jackson)

    def validate(self, params, key: jax.Array) -> dict:
        """`val_nll_nats_per_sample` and `val_nll_bits_per_sample`: `evaluate`'s exact NLL given the labels, on
        the first `config.num_validation_examples` recordings of the test split (FSDD has no validation
        split, and the training recordings are all trained on)."""
        val = self.split_nll(params, "test", self.config.num_validation_examples)
        return {"val_nll_nats_per_sample": val["nats_per_sample"],
                "val_nll_bits_per_sample": nats_to_bits(val["nats_per_sample"])}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        """`samples/digit_{d}.wav` (speaker jackson, 16-bit PCM at 8 kHz) and `spectrograms.png` (generated vs
        a real test recording of each digit, jackson's where the split has one)."""
        gen = getattr(self, "_generated", None)
        if gen is None:
            gen = self.generate(params, key)
        out = Path(workdir) / "samples"
        out.mkdir(exist_ok=True)
        jackson = audio.SPEAKERS.index("jackson")
        for digit in range(10):
            audio_viz.save_wav(out / f"digit_{digit}.wav", gen[digit, jackson], audio.SAMPLE_RATE)
        test = self.recordings("test")
        pairs = list(zip(test["audio"], test["digit"], test["speaker"]))
        real = [next((a for a, dg, sp in pairs if dg == digit and sp == jackson),
                     next((a for a, dg, _ in pairs if dg == digit), np.zeros(1, np.float32))) for digit in range(10)]
        audio_viz.save_spectrograms(Path(workdir) / "spectrograms.png", list(gen[:, jackson]), real,
                                    audio.SAMPLE_RATE,
                                    title=f"{self.name}: generated (top) vs real test recordings (bottom), speaker "
                                          "jackson")


def _labels(value, n: int, what: str, check) -> np.ndarray:
    """One label (or n of them) checked by `check` as int32 [n]."""
    if isinstance(value, (str, int, np.integer)) and not isinstance(value, bool):
        return np.full(n, check(value), np.int32)
    values = list(np.asarray(value, dtype=object).ravel()) if not isinstance(value, str) else [value]
    if len(values) != n:
        raise ValueError(f"{what} must be one value or num_samples = {n} of them, got {len(values)}")
    return np.array([check(v.item() if isinstance(v, np.generic) else v) for v in values], np.int32)
