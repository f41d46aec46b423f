"""GPT-style decoder-only Transformer on tiny_shakespeare characters; test bits per character.

    python -m experiments.transformer_shakespeare --workdir runs/transformer_shakespeare [--config.num_steps=...]

Trains on random windows of `block_size + 1` characters of the training split
(teacher forcing: targets are the inputs shifted by one), evaluates the exact
negative log-likelihood of the test split with a sliding window
(`gm_jax.data.text.windows`): windows of `block_size` characters started every
`eval_stride` characters, each character after the first of the split scored
once, from at least `block_size - eval_stride` preceding characters (except in
the first window; `eval_stride = block_size` gives consecutive windows). Writes
to the workdir:

* `results.json`: `test_bits_per_char`, `test_nats_per_char`,
  `validation_bits_per_char`, `test_chars` (characters scored), ...;
* `samples.txt`: samples drawn with the cached sampler from the prompt
  `config.sample_prompt`.

Published reference: nanoGPT's character-level Shakespeare model (6 layers,
6 heads, d = 384, context 256, 10.7M parameters, GPU) reaches a validation
loss of 1.47 nats/char (2.12 bits/char). The default here (0.8M parameters,
3,300 steps, AdamW weight decay 0.1) is sized for a 2-core CPU: test 2.299
bits/char (validation 2.061) after 1,430 s of training (1,449 s in all),
measured with seed 0. Weight decay 0.01 gave 2.319 (validation 2.076), and
1,500 steps 2.392. Scoring with more context does not help this model
(eval_stride 32 / 16 give 2.321 / 2.321 for the weight-decay-0.01 model).

Sampling (`gm_jax.Model.sample(key, n, prompt=..., length=..., temperature=...,
top_k=..., top_p=...)`) returns int32 token ids [n, len(prompt) + length]
(prompt included); `experiment.vocab.decode(row)` gives the text. Prompt
characters outside the training vocabulary are a ValueError (the policy of
`gm_jax.data.text`).

This module also holds `TextExperiment`, the base of the other
tiny_shakespeare experiments (`charrnn_shakespeare`, `ngram_shakespeare`).
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
from gm_jax.data import text as text_data
from gm_jax.evaluation import mean_over_dataset
from gm_jax.experiment import Experiment as BaseExperiment
from gm_jax.models import transformer

SAMPLERS = ("cached", "naive")


def get_config() -> ml_collections.ConfigDict:
    """CPU default: 4 layers, d = 128, 4 heads, context 128, learned positions."""
    c = config_lib.base_config()
    c.block_size = 128
    c.dim = 128
    c.num_layers = 4
    c.num_heads = 4
    c.positions = "learned"  # learned | sinusoidal
    c.dropout = 0.0
    c.sampler = "cached"  # cached | naive (the same tokens; naive re-reads the context every step)
    c.num_steps = 3300  # 13.5M training characters (about 13 epochs); 1,405 s on 2 cores
    c.batch_size = 32
    c.learning_rate = 2e-3
    c.warmup_steps = 100
    c.weight_decay = 0.1  # AdamW, decoupled (0.01 gave 2.319 test bits/char, 0.1 gave 2.299)
    c.grad_clip = 1.0
    c.log_every = 100
    c.checkpoint_every = 1000
    c.eval_batch_size = 64
    c.eval_stride = 0  # sliding-window evaluation step (0: block_size // 2); block_size = consecutive windows
    c.sample_prompt = "\n"
    c.sample_length = 500
    c.sample_temperature = 1.0
    return c


class TextExperiment(BaseExperiment):
    """tiny_shakespeare at the character level: vocabulary, windows, checks, bits/char evaluation.

    Subclasses define `init_params`, `token_log_probs(params, inputs, targets)`
    (float32 [N, T] nats), `_sample(params, key, prompt, length, temperature,
    top_k, top_p)` and `max_len` (longest sequence `log_prob` takes, or None).
    """

    data_max = 0  # unused: data are token ids in [0, vocab.size)
    conditioning = ("prompt", "length", "temperature", "top_k", "top_p")
    window = 128  # steps per evaluation window
    eval_stride: int | None = None  # steps between evaluation windows (None: window, i.e. consecutive)
    max_len: int | None = None

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.vocab = text_data.CharVocab.from_text(self._text("train"))
        self.vocab_size = self.vocab.size

    # -- data ---------------------------------------------------------------------
    def _text(self, split: str) -> str:
        return text_data.load_text(split, self.config.data_dir or None)

    def tokens(self, split: str) -> np.ndarray:
        """int32 [T] token ids of a split (unknown characters are an error; there are none)."""
        return self.vocab.encode(self._text(split))

    def train_batches(self, start_step: int = 0):
        return text_data.random_windows(self.tokens("train"), self.window, self.config.batch_size,
                                        self.config.seed, start_step)

    # -- the model interface ----------------------------------------------------------
    def token_log_probs(self, params, inputs, targets) -> jax.Array:
        raise NotImplementedError

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """Negative log-likelihood in nats per window (sum over its steps), averaged over the batch."""
        nll = -self.token_log_probs(params, batch["inputs"], batch["targets"])
        per_char = nll.mean()
        return nll.sum(axis=-1).mean(), {"bits_per_char": per_char / np.log(2.0)}

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """Exact log p(x_1..x_{T-1} | x_0) for tokens int [N, T]: float32 [N], nats (sum of the per-step
        conditionals; the first token is the given context)."""
        x = jnp.asarray(x, jnp.int32)
        return self.token_log_probs(params, x[:, :-1], x[:, 1:]).sum(axis=-1)

    def check_data(self, x) -> jax.Array:
        """Token ids int [N, T] with 2 <= T (<= max_len) and values in [0, vocab size).

        Raises:
          ValueError: wrong rank or length, a non-integer dtype, or ids out of range.
        """
        x_np = np.asarray(x)
        what = f"{self.name} expects int token ids [N, T] with T >= 2 and values in [0, {self.vocab_size})"
        if x_np.ndim != 2 or x_np.shape[1] < 2 or (self.max_len and x_np.shape[1] > self.max_len):
            limit = f" and T <= {self.max_len}" if self.max_len else ""
            raise ValueError(f"{what}{limit}; got shape {x_np.shape}")
        if not np.issubdtype(x_np.dtype, np.integer):
            raise ValueError(f"{what}; got dtype {x_np.dtype}")
        if x_np.size and (x_np.min() < 0 or x_np.max() >= self.vocab_size):
            raise ValueError(f"{what}; got values in [{x_np.min()}, {x_np.max()}]")
        return jnp.asarray(x_np, jnp.int32)

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

        Returns:
          prompt as int32 [num_samples, P], `length` wrapped in `sampling.Static`
          (it fixes the output shape under jit), temperature / top_k / top_p.

        Raises:
          ValueError: unknown names, an empty prompt or one with characters outside
            the vocabulary, length <= 0, temperature <= 0, top_k < 0, top_p outside (0, 1].
        """
        super().check_conditioning(num_samples, **conditioning)
        c = self.config
        prompt = conditioning.get("prompt", c.sample_prompt)
        length = conditioning.get("length", c.sample_length)
        temperature = conditioning.get("temperature", 1.0)
        top_k = conditioning.get("top_k", 0)
        top_p = conditioning.get("top_p", 1.0)
        sampling.check_sampling_args(length, temperature, top_k, top_p)
        return {"prompt": self.encode_prompt(prompt, num_samples), "length": sampling.Static(length),
                "temperature": float(temperature), "top_k": int(top_k), "top_p": float(top_p)}

    def sample(self, params, key: jax.Array, num_samples: int, prompt=None, length=None, temperature=1.0,
               top_k=0, top_p=1.0) -> jax.Array:
        """Ancestral samples: int32 [num_samples, P + length] token ids, the prompt first.

        Args:
          prompt: int32 [num_samples, P] ids (None: `config.sample_prompt`); strings are encoded by
            `check_conditioning` (which `gm_jax.Model.sample` calls).
          length: new tokens, int or `sampling.Static` (None: `config.sample_length`).
          temperature, top_k, top_p: see `gm_jax.sampling.filter_logits`.
        """
        if prompt is None:
            prompt = self.encode_prompt(self.config.sample_prompt, num_samples)
        length = sampling.static_value(length) if length is not None else self.config.sample_length
        return self._sample(params, key, jnp.asarray(prompt, jnp.int32), int(length), temperature, top_k, top_p)

    # -- evaluation ---------------------------------------------------------------------
    def split_nll(self, params, split: str) -> dict:
        """Exact NLL of a split in windows of `self.window` steps started every `self.eval_stride` steps
        (`gm_jax.data.text.windows`: each character after the first is scored once)."""
        data = text_data.windows(self.tokens(split), self.window, self.eval_stride)

        @jax.jit
        def nll(batch, _):
            logp = self.token_log_probs(params, batch["inputs"], batch["targets"])
            return {"nll": -(logp * batch["mask"]).sum(axis=-1)}

        mean = mean_over_dataset(nll, data, self.config.eval_batch_size, jax.random.key(0))["nll"]
        chars = int(data["mask"].sum())
        total = mean * len(data["targets"])
        return {"nats_per_char": total / chars, "bits_per_char": text_data.bits_per_char(total, chars),
                "chars": chars}

    def evaluate(self, params, key: jax.Array) -> dict:
        test = self.split_nll(params, "test")
        val = self.split_nll(params, "validation")
        return {"test_bits_per_char": test["bits_per_char"], "test_nats_per_char": test["nats_per_char"],
                "test_chars": test["chars"], "validation_bits_per_char": val["bits_per_char"],
                "eval_window": self.window, "eval_stride": self.eval_stride or self.window,
                "vocab_size": self.vocab_size}

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        cond = self.check_conditioning(4, length=self.config.sample_length,
                                       temperature=self.config.sample_temperature)
        tokens = jax.jit(self.sample, static_argnums=2)(params, key, 4, **cond)
        texts = [self.vocab.decode(row) for row in np.asarray(tokens)]
        sep = "\n" + "=" * 60 + "\n"
        (Path(workdir) / "samples.txt").write_text(
            f"# {self.name}: 4 samples, prompt {self.config.sample_prompt!r}, temperature "
            f"{self.config.sample_temperature}{sep}" + sep.join(texts) + "\n")


class Experiment(TextExperiment):
    name = "transformer_shakespeare"

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.sampler not in SAMPLERS:
            raise ValueError(f"config.sampler={config.sampler!r}; valid choices: {list(SAMPLERS)}")
        self.window = config.block_size
        if not 0 <= config.eval_stride <= config.block_size:
            raise ValueError(f"config.eval_stride={config.eval_stride} must be in [0, block_size={config.block_size}] "
                             "(0: block_size // 2)")
        self.eval_stride = int(config.eval_stride) or max(config.block_size // 2, 1)
        self.max_len = config.block_size + 1
        self.data_shape = (config.block_size + 1,)
        self.model = transformer.GPT(vocab_size=self.vocab_size, block_size=config.block_size, dim=config.dim,
                                     num_layers=config.num_layers, num_heads=config.num_heads,
                                     positions=config.positions, dropout=config.dropout)

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

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        if self.config.dropout > 0:
            # one dropout key per example, so none / pmap / sharded steps drop the same units
            logits = jax.vmap(lambda x, k: transformer.logits_fn(self.model, params, x[None], train=True,
                                                                  key=k)[0])(batch["inputs"], keys)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["targets"])
            return nll.sum(axis=-1).mean(), {"bits_per_char": nll.mean() / np.log(2.0)}
        return super().loss_fn(params, batch, keys)

    def _sample(self, params, key, prompt, length, temperature, top_k, top_p):
        return transformer.sample(self.model, params, key, prompt, length, temperature, top_k, top_p,
                                  cached=self.config.sampler == "cached")


if __name__ == "__main__":
    from gm_jax.cli import main

    main("transformer_shakespeare")
