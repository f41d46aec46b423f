"""WaveNet on the Free Spoken Digit Dataset (8 kHz speech), globally conditioned on the digit and the speaker.

    python -m experiments.wavenet_digits --workdir runs/wavenet_digits [--paper] [--config.num_steps=...]

van den Oord et al. 2016 (`gm_jax.models.wavenet`) on 8-bit mu-law audio
(mu = 255, 256 classes, `gm_jax.data.audio`). Trains on random crops of
`config.crop_length` samples of the 2,700 training recordings (takes 5-49),
with teacher forcing; crops are placed inside the voiced part of each
recording (leading / trailing frames more than `config.silence_db` dB below
its loudest 20-ms frame are trimmed), so that they are not mostly silence;
recordings shorter than a crop are padded and the padding masked out.

Test metric: the exact NLL of the 300 test recordings (takes 0-4), each scored
whole from its first sample (zero context before it) given its digit and
speaker, in nats per sample (sum over all samples / number of samples) and
bits per sample. Baselines on the same samples (`gm_jax.evaluation.audio`): an
i.i.d. model (the add-one smoothed histogram of the training mu-law classes)
and a linear autoregressive model of order `config.ar_order` with Gaussian
noise on the companded (mu-law) amplitude, discretised to the 256 classes
(least squares on the training split); both in nats per sample.

Writes to the workdir: `results.json` (`test_nll_nats_per_sample`,
`test_nll_bits_per_sample`, the baselines, `receptive_field_samples` / `_ms`,
generated-audio checks: RMS vs the 5-95 percentile range of the real test
recordings, spectral flatness vs white noise, the share of near-silent
training crops, ...), `samples/digit_{d}.wav` (one generated recording per
digit, 16-bit PCM at 8 kHz) and `spectrograms.png` (generated vs real).

`Model.sample(key, n, digit=..., speaker=..., seconds=..., temperature=...)`
returns float32 waveforms [n, round(seconds * 8000)] in [-1, 1] at 8 kHz
(digit: int 0-9 or n of them; speaker: a name in `audio.SPEAKERS` or its index,
or n of them); `Model.log_prob(x)` takes float waveforms [N, T] in [-1, 1]
(data kind "audio"; mu-law quantised) and returns the exact log p(x) in nats,
the mixture over the 60 (digit, speaker) pairs with a uniform prior (the
training distribution of the labels): log p(x) = logsumexp_c log p(x | c) - log 60.
"""
from __future__ import annotations

import jax
import ml_collections
import optax

from gm_jax import config as config_lib
from gm_jax.config import Choice
from gm_jax.data import audio
from gm_jax.models import wavenet
from gm_jax.recipes.sequences import COUNT, AudioExperiment

def get_config() -> ml_collections.ConfigDict:
    """CPU default: residual 32 / skip 64 channels, 2 blocks of dilations 1..256 (receptive field 1,023
    samples = 128 ms), crops of 2,048 samples, batch 8."""
    c = config_lib.base_config()
    c.data_dir = ""  # the spoken_digits folder; "" = ../shared/data/spoken_digits beside the checkout
    c.layers_per_block = 9  # dilations 1, 2, ..., 256
    c.num_blocks = 2
    c.residual_channels = 32
    c.skip_channels = 64
    c.cond_dim = 16
    c.crop_length = 2048
    c.silence_db = -30.0  # voiced part: frames within 30 dB of the loudest 20-ms frame
    c.num_steps = 800  # 6,400 crops = 13.1M samples, about 1.4 passes over the 9.4M training samples
    c.batch_size = 8
    c.learning_rate = 2e-3
    c.warmup_steps = 50
    c.grad_clip = 1.0
    c.log_every = 50
    c.checkpoint_every = 400
    c.eval_batch_size = 8  # recordings per evaluation batch
    c.sampler = "cached"  # cached | naive (the same samples for the same key; naive is O(R) times slower)
    c.sample_seconds = 0.5  # length of the generated recordings written and measured
    c.sample_temperature = 1.0
    c.ar_order = 32  # order of the linear autoregressive baseline
    return c


def get_paper_config() -> ml_collections.ConfigDict:
    """van den Oord et al. 2016 ("WaveNet: A Generative Model for Raw Audio"), Sec. 2.3 / 3.1 (multi-speaker
    speech), through `wavenet.PAPER`: dilations 1, 2, ..., 512 repeated 3 times (receptive field 3,070
    samples, 384 ms at our 8 kHz; the paper's is about 300 ms at 16 kHz), 256 mu-law classes, global
    conditioning. The paper gives no channel widths: 32 residual / 512 skip channels are those of
    ibab/tensorflow-wavenet; the training settings stay the defaults (the paper states none).
    """
    c = get_config()
    c.update(**{k: wavenet.PAPER[k] for k in ("layers_per_block", "num_blocks", "residual_channels", "skip_channels")})
    return c


def get_test_config() -> ml_collections.ConfigDict:
    """Tiny WaveNet on synthetic recordings, for tests."""
    c = get_config()
    c.update(data_dir="synthetic", layers_per_block=3, num_blocks=1, residual_channels=8, skip_channels=8,
             cond_dim=4, crop_length=256, num_steps=2, batch_size=4, warmup_steps=1, sample_seconds=0.005,
             ar_order=4)
    return c


class Experiment(AudioExperiment):
    name = "wavenet_digits"
    sample_methods = ("cached", "naive")
    schema = {**AudioExperiment.schema, "sampler": Choice("cached", "naive"), "layers_per_block": COUNT,
              "num_blocks": COUNT, "residual_channels": COUNT, "skip_channels": COUNT, "cond_dim": COUNT}

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        self.model = wavenet.WaveNet(dilation_seq=wavenet.dilations(config.layers_per_block, config.num_blocks),
                                     residual_channels=config.residual_channels,
                                     skip_channels=config.skip_channels, num_digits=len(audio.DIGITS),
                                     num_speakers=len(audio.SPEAKERS), cond_dim=config.cond_dim)
        self.receptive_field = wavenet.receptive_field(self.model.dilation_seq)

    def init_params(self, key: jax.Array):
        return wavenet.init_params(self.model, key)

    def optimizer(self) -> optax.GradientTransformation:
        """Adam, linear warm-up then cosine decay to 10%, global-norm clipping."""
        c = self.config
        steps = max(c.num_steps, c.warmup_steps + 1)
        schedule = optax.warmup_cosine_decay_schedule(0.0, c.learning_rate, min(c.warmup_steps, steps - 1), steps,
                                                      c.learning_rate * 0.1)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip), optax.adam(schedule))

    def conditional_log_probs(self, params, x, digit, speaker):
        return wavenet.log_probs(self.model, params, x, digit, speaker)

    def conditional_logits(self, params, x, digit, speaker):
        return wavenet.conditional_logits(self.model, params, x, digit, speaker)

    def sample_codes(self, params, key, digit, speaker, length, temperature=1.0, sampler="cached"):
        fn = wavenet.sample_cached if sampler == "cached" else wavenet.sample_naive
        return fn(self.model, params, key, digit, speaker, length, temperature)

    def evaluate(self, params, key: jax.Array) -> dict:
        return {**super().evaluate(params, key), "receptive_field_samples": self.receptive_field,
                "receptive_field_ms": 1000.0 * self.receptive_field / audio.SAMPLE_RATE}


if __name__ == "__main__":
    from gm_jax.cli import main

    main("wavenet_digits")
