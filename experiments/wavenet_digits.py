"""WaveNet on the Free Spoken Digit Dataset (8 kHz speech), globally conditioned on the digit and the speaker.

    python -m experiments.wavenet_digits --workdir runs/wavenet_digits [--config.num_steps=...]

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
bits per sample. Baselines on the same samples (`baselines`): an i.i.d. model
(the add-one smoothed histogram of the training mu-law classes) and a linear
autoregressive model of order `config.ar_order` with Gaussian noise on the
companded (mu-law) amplitude, discretised to the 256 classes (least squares on
the training split); both in nats per sample.

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
(mu-law quantised) and returns the exact log p(x) in nats, the mixture over
the 60 (digit, speaker) pairs with a uniform prior (the training distribution
of the labels): log p(x) = logsumexp_c log p(x | c) - log 60.
"""
from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from scipy import signal, special

from gm_jax import config as config_lib
from gm_jax import sampling
from gm_jax.data import audio
from gm_jax.experiment import Experiment as BaseExperiment
from gm_jax.models import wavenet

SAMPLERS = ("fast", "naive")


def get_config() -> ml_collections.ConfigDict:
    """CPU default: residual 32 / skip 64 channels, 2 blocks of dilations 1..256 (receptive field 1,023
    samples = 128 ms), crops of 2,048 samples, batch 8 (about 9-15 minutes of training on 2 shared cores)."""
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
    c.sampler = "fast"  # fast | naive (the same samples for the same key; naive is O(R) times slower)
    c.sample_seconds = 0.5  # length of the generated recordings written and measured
    c.sample_temperature = 1.0
    c.ar_order = 32  # order of the linear autoregressive baseline
    return c


class Experiment(BaseExperiment):
    name = "wavenet_digits"
    data_shape = (None,)  # float waveforms [T] in [-1, 1]
    data_max = 1
    conditioning = ("digit", "speaker", "seconds", "temperature")

    def __init__(self, config: ml_collections.ConfigDict):
        super().__init__(config)
        if config.sampler not in SAMPLERS:
            raise ValueError(f"config.sampler={config.sampler!r}; valid choices: {list(SAMPLERS)}")
        if config.crop_length < 2:
            raise ValueError(f"config.crop_length must be >= 2, got {config.crop_length}")
        self.model = wavenet.WaveNet(dilation_seq=wavenet.dilations(config.layers_per_block, config.num_blocks),
                                     residual_channels=config.residual_channels,
                                     skip_channels=config.skip_channels, num_digits=len(audio.DIGITS),
                                     num_speakers=len(audio.SPEAKERS), cond_dim=config.cond_dim)
        self.receptive_field = wavenet.receptive_field(self.model.dilation_seq)
        self._cache = {}

    # -- data -----------------------------------------------------------------------------
    def recordings(self, split: str) -> dict:
        """`audio.load_recordings(split)` plus `codes` (int32 mu-law classes per recording) and `voiced` bounds."""
        if split not in self._cache:
            d = dict(audio.load_recordings(split, self.config.data_dir or None))
            d["codes"] = [audio.mu_law_encode(a) for a in d["audio"]]
            d["voiced"] = np.array([audio.voiced_bounds(a, self.config.silence_db) for a in d["audio"]], np.int64)
            self._cache[split] = d
        return self._cache[split]

    def crop_starts(self, rng: np.random.Generator, idx: np.ndarray, split: str = "train") -> np.ndarray:
        """Start of the crop of each recording `idx` (int [B]), inside its voiced part.

        A voiced part at least `crop_length` long: the crop lies inside it, uniformly. A shorter one: the
        crop covers it (start uniform among those that do, within the recording).
        """
        d, n = self.recordings(split), self.config.crop_length
        starts = np.zeros(len(idx), np.int64)
        for j, i in enumerate(idx):
            a, b = d["voiced"][i]
            length = len(d["codes"][i])
            if b - a >= n:
                lo, hi = a, b - n
            else:
                lo, hi = max(0, b - n), max(0, min(a, length - n))
                lo = min(lo, hi)
            starts[j] = rng.integers(lo, hi + 1)
        return starts

    def crops(self, step: int, split: str = "train") -> dict:
        """Batch `step`: `x` int32 [B, crop_length] mu-law classes, `mask` float32 [B, crop_length] (0 on
        padding past the end of a short recording), `digit`, `speaker` int32 [B]. A function of (seed, step)."""
        d, n, bsz = self.recordings(split), self.config.crop_length, self.config.batch_size
        rng = np.random.default_rng([self.config.seed, step])
        idx = rng.integers(0, len(d["codes"]), bsz)
        starts = self.crop_starts(rng, idx, split)
        x = np.full((bsz, n), wavenet.START_CLASS, np.int32)
        mask = np.zeros((bsz, n), np.float32)
        for j, (i, s) in enumerate(zip(idx, starts)):
            seg = d["codes"][i][s: s + n]
            x[j, : len(seg)] = seg
            mask[j, : len(seg)] = 1.0
        return {"x": x, "mask": mask, "digit": d["digit"][idx], "speaker": d["speaker"][idx]}

    def train_batches(self, start_step: int = 0):
        step = start_step
        while True:
            yield self.crops(step)
            step += 1

    def silent_crop_share(self, num_batches: int, threshold_db: float = -30.0) -> dict:
        """Share of training crops (batches 0 .. num_batches - 1, as trained on) that are near-silent.

        Near-silent: the crop's RMS (over its real samples) is more than |threshold_db| dB below the loudest
        20-ms frame of its recording. Also the share under an absolute RMS of 0.005 (-46 dBFS), and the same
        shares for crops placed uniformly in the whole recording (what the voiced placement avoids).
        """
        d, n = self.recordings("train"), self.config.crop_length
        peak = np.array([audio.frame_rms(a).max() for a in d["audio"]])
        rel, ab, rel_u, ab_u = [], [], [], []
        for step in range(num_batches):
            rng = np.random.default_rng([self.config.seed, step])
            idx = rng.integers(0, len(d["audio"]), self.config.batch_size)
            starts = self.crop_starts(rng, idx)
            uni = np.random.default_rng([self.config.seed, step, 1])
            for i, s in zip(idx, starts):
                a = d["audio"][i]
                u = uni.integers(0, max(0, len(a) - n) + 1)
                for seg, r_list, a_list in ((a[s: s + n], rel, ab), (a[u: u + n], rel_u, ab_u)):
                    rms = float(np.sqrt(np.mean(np.square(seg, dtype=np.float64))))
                    r_list.append(rms < peak[i] * 10 ** (threshold_db / 20))
                    a_list.append(rms < 0.005)
        return {"silent_crop_share": float(np.mean(rel)), "silent_crop_share_abs_rms_lt_0.005": float(np.mean(ab)),
                "silent_crop_share_if_uniform_crops": float(np.mean(rel_u)),
                "silent_crop_share_if_uniform_crops_abs": float(np.mean(ab_u)),
                "silent_crop_threshold_db": threshold_db, "silent_crops_checked": len(rel)}

    # -- model ------------------------------------------------------------------------------
    def init_params(self, key: jax.Array):
        return wavenet.init_params(self.model, key)

    def optimizer(self) -> optax.GradientTransformation:
        """Adam, linear warm-up then cosine decay to 10%, global-norm clipping."""
        c = self.config
        steps = max(c.num_steps, c.warmup_steps + 1)
        schedule = optax.warmup_cosine_decay_schedule(0.0, c.learning_rate, min(c.warmup_steps, steps - 1), steps,
                                                      c.learning_rate * 0.1)
        return optax.chain(optax.clip_by_global_norm(c.grad_clip), optax.adam(schedule))

    def loss_fn(self, params, batch: dict, keys: jax.Array):
        """NLL in nats per crop (sum over its real samples), averaged over the batch."""
        lp = wavenet.log_probs(self.model, params, batch["x"], batch["digit"], batch["speaker"])
        nll = -(lp * batch["mask"]).sum(-1)
        return nll.mean(), {"nats_per_sample": nll.sum() / batch["mask"].sum()}

    def check_data(self, x) -> jax.Array:
        """Float waveforms [N, T] (T >= 1) with values in [-1, 1]; returned as mu-law classes int32 [N, T].

        Raises:
          ValueError: wrong rank, a non-float dtype, or values outside [-1, 1].
        """
        x_np = np.asarray(x)
        what = f"{self.name} expects float waveforms [N, T] with values in [-1, 1] (8 kHz)"
        if x_np.ndim != 2 or x_np.shape[1] < 1:
            raise ValueError(f"{what}; got shape {x_np.shape}")
        if not np.issubdtype(x_np.dtype, np.floating):
            raise ValueError(f"{what}; got dtype {x_np.dtype}")
        if x_np.size and (np.nanmin(x_np) < -1 or np.nanmax(x_np) > 1 or not np.all(np.isfinite(x_np))):
            raise ValueError(f"{what}; got values in [{np.min(x_np)}, {np.max(x_np)}]")
        return jnp.asarray(audio.mu_law_encode(x_np))

    def log_prob(self, params, x: jax.Array, key: jax.Array = None) -> jax.Array:
        """Exact log p(x) in nats, float32 [N], of mu-law classes int [N, T] (what `check_data` returns; float
        waveforms are encoded here), marginalising the 60 (digit, speaker) pairs under a uniform prior."""
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.floating):
            x = audio.mu_law_encode(x)
        digits, speakers = np.meshgrid(np.arange(len(audio.DIGITS)), np.arange(len(audio.SPEAKERS)), indexing="ij")
        pairs = jnp.asarray(np.stack([digits.ravel(), speakers.ravel()], 1), jnp.int32)

        def cond_lp(pair):
            lab = jnp.broadcast_to(pair, (x.shape[0], 2))
            return wavenet.log_probs(self.model, params, x, lab[:, 0], lab[:, 1]).sum(-1)

        lps = jax.lax.map(cond_lp, pairs)  # [60, N]
        return jax.scipy.special.logsumexp(lps, axis=0) - math.log(len(pairs))

    def conditional_log_prob(self, params, x, digit, speaker) -> jax.Array:
        """log p(x | digit, speaker) in nats, float32 [N], of mu-law classes int32 [N, T] and labels int32 [N]."""
        return wavenet.log_probs(self.model, params, x, digit, speaker).sum(-1)

    # -- sampling -----------------------------------------------------------------------------
    def check_conditioning(self, num_samples: int, **conditioning) -> dict:
        """digit (int 0-9, or num_samples of them; default i mod 10), speaker (name or index 0-5, or
        num_samples of them; default "jackson"), seconds (> 0, default `config.sample_seconds`; static) and
        temperature (> 0).

        Raises:
          ValueError: unknown names; a digit outside 0-9 or an unknown speaker (listing the valid ones);
            a wrong number of labels; seconds <= 0 or under one sample; temperature <= 0.
        """
        super().check_conditioning(num_samples, **conditioning)
        digit = conditioning.get("digit", None)
        speaker = conditioning.get("speaker", "jackson")
        seconds = conditioning.get("seconds", self.config.sample_seconds)
        temperature = conditioning.get("temperature", 1.0)
        digits = np.arange(num_samples) % 10 if digit is None else self._labels(digit, num_samples, "digit",
                                                                                audio.check_digit)
        speakers = self._labels(speaker, num_samples, "speaker", audio.speaker_id)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0 \
                or round(seconds * audio.SAMPLE_RATE) < 1:
            raise ValueError(f"seconds must be a positive number (at least one sample at {audio.SAMPLE_RATE} Hz), "
                             f"got {seconds!r}")
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        return {"digit": np.asarray(digits, np.int32), "speaker": np.asarray(speakers, np.int32),
                "seconds": sampling.Static(float(seconds)), "temperature": float(temperature)}

    @staticmethod
    def _labels(value, n: int, what: str, check) -> np.ndarray:
        if isinstance(value, (str, int, np.integer)) and not isinstance(value, bool):
            return np.full(n, check(value), np.int32)
        values = list(np.asarray(value, dtype=object).ravel()) if not isinstance(value, str) else [value]
        if len(values) != n:
            raise ValueError(f"{what} must be one value or num_samples = {n} of them, got {len(values)}")
        return np.array([check(v.item() if isinstance(v, np.generic) else v) for v in values], np.int32)

    def sample_codes(self, params, key, num_samples: int, digit=None, speaker=None, seconds=None,
                     temperature=1.0, sampler=None) -> jax.Array:
        """Mu-law classes int32 [num_samples, round(seconds * 8000)] (see `sample`)."""
        if digit is None:
            digit = jnp.arange(num_samples, dtype=jnp.int32) % 10
        if speaker is None:
            speaker = jnp.full((num_samples,), audio.SPEAKERS.index("jackson"), jnp.int32)
        seconds = sampling.static_value(seconds) if seconds is not None else self.config.sample_seconds
        length = max(1, round(float(seconds) * audio.SAMPLE_RATE))
        fn = wavenet.sample_fast if (sampler or self.config.sampler) == "fast" else wavenet.sample_naive
        return fn(self.model, params, key, digit, speaker, length, temperature)

    def sample(self, params, key: jax.Array, num_samples: int, digit=None, speaker=None, seconds=None,
               temperature=1.0) -> jax.Array:
        """Generated waveforms: float32 [num_samples, round(seconds * 8000)] in [-1, 1] at 8 kHz.

        Args:
          digit, speaker: int32 [num_samples] labels (`check_conditioning` turns ints / names into these;
            defaults: digits i mod 10, speaker jackson).
          seconds: float or `sampling.Static` (None: `config.sample_seconds`).
          temperature: float > 0, the logits are divided by it.
        """
        return audio.mu_law_decode(self.sample_codes(params, key, num_samples, digit, speaker, seconds,
                                                     temperature))

    # -- evaluation ------------------------------------------------------------------------------
    def split_nll(self, params, split: str = "test") -> dict:
        """Exact NLL of every recording of a split, whole, given its labels: nats per sample over the split."""
        d = self.recordings(split)
        order = np.argsort([len(c) for c in d["codes"]])
        fn = jax.jit(lambda p, x, m, dg, sp: (wavenet.log_probs(self.model, p, x, dg, sp) * m).sum())
        total, count = 0.0, 0
        bsz = self.config.eval_batch_size
        for s in range(0, len(order), bsz):
            idx = order[s: s + bsz]
            length = max(len(d["codes"][i]) for i in idx)
            length = -(-length // 2048) * 2048  # few distinct shapes to compile
            x = np.full((len(idx), length), wavenet.START_CLASS, np.int32)
            mask = np.zeros((len(idx), length), np.float32)
            for j, i in enumerate(idx):
                x[j, : len(d["codes"][i])] = d["codes"][i]
                mask[j, : len(d["codes"][i])] = 1
            total -= float(fn(params, x, mask, d["digit"][idx], d["speaker"][idx]))
            count += int(mask.sum())
        return {"nats_per_sample": total / count, "samples": count, "recordings": len(order)}

    def baselines(self) -> dict:
        """The i.i.d. histogram baseline and the linear AR baseline, test NLL in nats per sample."""
        train, test = self.recordings("train"), self.recordings("test")
        counts = np.bincount(np.concatenate(train["codes"]), minlength=audio.NUM_CLASSES) + 1.0
        logp = np.log(counts / counts.sum())
        test_codes = np.concatenate(test["codes"])
        iid = float(-logp[test_codes].mean())
        ar = linear_ar_baseline(train["codes"], test["codes"], self.config.ar_order)
        return {"iid_entropy_nats_per_sample": iid, "linear_ar_nll_nats_per_sample": ar["nll"],
                "linear_ar_order": self.config.ar_order, "linear_ar_noise_std_companded": ar["sigma"],
                "linear_ar_model": ar["model"],
                "iid_model": "add-one smoothed histogram of the 256 training mu-law classes"}

    def generate(self, params, key) -> np.ndarray:
        """One recording of `config.sample_seconds` for every (digit, speaker): float32 [10, 6, T]."""
        digits = np.repeat(np.arange(10), len(audio.SPEAKERS)).astype(np.int32)
        speakers = np.tile(np.arange(len(audio.SPEAKERS)), 10).astype(np.int32)
        fn = jax.jit(self.sample, static_argnums=2)
        x = fn(params, key, len(digits), digits, speakers, sampling.Static(float(self.config.sample_seconds)),
               self.config.sample_temperature)
        return np.asarray(x).reshape(10, len(audio.SPEAKERS), -1)

    def evaluate(self, params, key: jax.Array) -> dict:
        c = self.config
        test = self.split_nll(params, "test")
        out = {"test_nll_nats_per_sample": test["nats_per_sample"],
               "test_nll_bits_per_sample": test["nats_per_sample"] / math.log(2),
               "test_samples": test["samples"], "test_recordings": test["recordings"],
               "test_nll_marginal_upper_bound_nats_per_sample":
                   test["nats_per_sample"] + test["recordings"] * math.log(60) / test["samples"],
               "receptive_field_samples": self.receptive_field,
               "receptive_field_ms": 1000.0 * self.receptive_field / audio.SAMPLE_RATE,
               "num_params": int(sum(p.size for p in jax.tree_util.tree_leaves(params)))}
        out.update(self.baselines())
        out["test_nll_below_both_baselines"] = bool(
            out["test_nll_nats_per_sample"] < min(out["iid_entropy_nats_per_sample"],
                                                  out["linear_ar_nll_nats_per_sample"]))
        out.update(self.silent_crop_share(c.num_steps))
        gen = self.generate(params, key)
        self._generated = gen
        out.update(audio_checks(gen.reshape(-1, gen.shape[-1]), self.recordings("test")["audio"], key))
        return out

    def write_artifacts(self, params, key: jax.Array, workdir: Path) -> None:
        import soundfile

        gen = getattr(self, "_generated", None)
        if gen is None:
            gen = self.generate(params, key)
        out = Path(workdir) / "samples"
        out.mkdir(exist_ok=True)
        jackson = audio.SPEAKERS.index("jackson")
        for digit in range(10):
            soundfile.write(out / f"digit_{digit}.wav", gen[digit, jackson], audio.SAMPLE_RATE, subtype="PCM_16")
        test = self.recordings("test")
        real = [next(a for a, dg, sp in zip(test["audio"], test["digit"], test["speaker"])
                     if dg == digit and sp == jackson) for digit in range(10)]
        save_spectrograms(Path(workdir) / "spectrograms.png", list(gen[:, jackson]), real,
                          title=f"{self.name}: generated (top) vs real test recordings (bottom), speaker jackson")


# -- baselines and audio checks -------------------------------------------------------------------
def _companded(codes: np.ndarray) -> np.ndarray:
    return 2.0 * np.asarray(codes, np.float64) / audio.MU - 1.0


def _ar_design(y: np.ndarray, order: int) -> np.ndarray:
    """[T, order] previous values y_{t-1} .. y_{t-order}, zero-amplitude class (128) before the start."""
    pad = np.full(order, _companded(np.array([wavenet.START_CLASS]))[0])
    yp = np.concatenate([pad, y])
    win = np.lib.stride_tricks.sliding_window_view(yp, order)[: len(y)]  # yp[t .. t+order-1] = y_{t-order}..y_{t-1}
    return win[:, ::-1]


def linear_ar_baseline(train_codes, test_codes, order: int) -> dict:
    """Linear AR(order) on the companded amplitude y = 2 q / 255 - 1 with Gaussian noise, discretised to the
    256 mu-law classes: P(q | past) = Phi((e_{q+1} - m) / s) - Phi((e_q - m) / s), e_q = (2 q - 1) / 255 - 1,
    the outer edges at -inf / +inf; m = b + sum_k a_k y_{t-k}. Least squares on train, s = residual std.

    Returns:
      {"nll": test NLL in nats per sample, "sigma": s, "model": description}.
    """
    xtx = np.zeros((order + 1, order + 1))
    xty = np.zeros(order + 1)
    for c in train_codes:
        y = _companded(c)
        X = np.concatenate([_ar_design(y, order), np.ones((len(y), 1))], 1)
        xtx += X.T @ X
        xty += X.T @ y
    w = np.linalg.solve(xtx + 1e-6 * np.eye(order + 1), xty)
    sse, n = 0.0, 0
    for c in train_codes:
        y = _companded(c)
        r = y - np.concatenate([_ar_design(y, order), np.ones((len(y), 1))], 1) @ w
        sse += float(r @ r)
        n += len(y)
    sigma = math.sqrt(sse / n)
    total, count = 0.0, 0
    for c in test_codes:
        y = _companded(c)
        m = np.concatenate([_ar_design(y, order), np.ones((len(y), 1))], 1) @ w
        lo = np.where(c == 0, -np.inf, (2.0 * c - 1.0) / audio.MU - 1.0)
        hi = np.where(c == audio.MU, np.inf, (2.0 * c + 1.0) / audio.MU - 1.0)
        total -= float(_log_diff_ndtr((hi - m) / sigma, (lo - m) / sigma).sum())
        count += len(c)
    return {"nll": total / count, "sigma": sigma,
            "model": f"linear AR({order}) on the companded mu-law amplitude, Gaussian noise discretised to the "
                     f"256 classes, least squares on the training split"}


def _log_diff_ndtr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(a) - Phi(b)) for a > b, stable in both tails."""
    # use the upper tail where both are positive: Phi(a) - Phi(b) = Phi(-b) - Phi(-a)
    flip = b > 0
    a2, b2 = np.where(flip, -b, a), np.where(flip, -a, b)
    la, lb = special.log_ndtr(a2), special.log_ndtr(b2)
    return la + np.log1p(-np.exp(np.minimum(lb - la, -1e-300)))


def spectral_flatness(x: np.ndarray) -> float:
    """Wiener entropy of the Welch power spectrum (256-sample Hann segments, DC excluded): geometric mean /
    arithmetic mean, in (0, 1]; 1 for a flat (white) spectrum."""
    _, pxx = signal.welch(np.asarray(x, np.float64), fs=audio.SAMPLE_RATE, nperseg=min(256, len(x)))
    pxx = pxx[1:] + 1e-20
    return float(np.exp(np.mean(np.log(pxx))) / np.mean(pxx))


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(np.asarray(x, np.float64)))))


def audio_checks(generated: np.ndarray, real: list, key: jax.Array) -> dict:
    """RMS and spectral flatness of generated recordings [N, T] vs the real test recordings and white noise."""
    real_rms = np.array([rms(a) for a in real])
    gen_rms = np.array([rms(a) for a in generated])
    lo, hi = np.percentile(real_rms, [5, 95])
    gen_flat = np.array([spectral_flatness(a) for a in generated])
    real_flat = np.array([spectral_flatness(a) for a in real])
    noise = np.asarray(jax.random.normal(jax.random.fold_in(key, 7), generated.shape)) * max(gen_rms.mean(), 1e-3)
    noise_flat = np.array([spectral_flatness(a) for a in noise])
    return {"generated_rms_median": float(np.median(gen_rms)), "generated_rms_min": float(gen_rms.min()),
            "generated_rms_max": float(gen_rms.max()),
            "real_test_rms_p5": float(lo), "real_test_rms_p95": float(hi),
            "real_test_rms_min": float(real_rms.min()), "real_test_rms_max": float(real_rms.max()),
            "generated_rms_share_in_real_p5_p95": float(np.mean((gen_rms >= lo) & (gen_rms <= hi))),
            "generated_rms_median_in_real_p5_p95": bool(lo <= np.median(gen_rms) <= hi),
            "generated_spectral_flatness_median": float(np.median(gen_flat)),
            "generated_spectral_flatness_max": float(gen_flat.max()),
            "real_test_spectral_flatness_median": float(np.median(real_flat)),
            "white_noise_spectral_flatness_median": float(np.median(noise_flat)),
            "generated_flatness_below_white_noise": bool(np.median(gen_flat) < np.median(noise_flat)),
            "generated_recordings": int(len(generated)),
            "generated_seconds_each": generated.shape[1] / audio.SAMPLE_RATE}


def save_spectrograms(path: Path, generated: list, real: list, title: str = "") -> Path:
    """Log-power spectrograms (dB), one column per digit: generated on the top row, real on the bottom row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(generated)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 5), squeeze=False)
    for row, clips in enumerate((generated, real)):
        for i, x in enumerate(clips):
            f, t, sxx = signal.spectrogram(np.asarray(x, np.float64), fs=audio.SAMPLE_RATE, nperseg=256,
                                           noverlap=192)
            ax = axes[row][i]
            ax.pcolormesh(t, f / 1000.0, 10 * np.log10(sxx + 1e-10), shading="auto", vmin=-100, vmax=-20)
            ax.set_title(f"{'generated' if row == 0 else 'real'} {i}", fontsize=8)
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_ylabel("kHz", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    from gm_jax.cli import main

    main("wavenet_digits")
