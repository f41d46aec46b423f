# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # gm_jax quickstart
#
# One tour of the notebook API: create or load a model of each family, sample from it (the cached and the
# naive autoregressive samplers side by side), score test data in nats and bits/dim, draw a per-pixel
# log-probability map, walk a VAE's latent space, generate text from a prompt, write a melody to MIDI, and
# train a small run and load it back.
#
# Everything goes through `gm_jax.create(name, **config_overrides)` (fresh parameters),
# `gm_jax.load(workdir)` (a trained run) and the `gm_jax.Model` handle they return
# (`.sample`, `.log_prob`, `.log_prob_per_position`, `.conditionals`).
#
# **Trained or not.** A model is loaded from `runs/<name>` when you have trained that experiment there
# (`gm-jax train pixelcnn_mnist --workdir runs/pixelcnn_mnist`, or
# `python -m experiments.pixelcnn_mnist --workdir runs/pixelcnn_mnist`); otherwise it is created with fresh,
# untrained parameters, and its samples are noise. Each section names the command that trains its model
# (the README's *Results* table gives the time each takes on a 2-core CPU).
#
# This file is kept as a jupytext percent script, `examples/quickstart.py`, beside
# `examples/quickstart.ipynb`; edit the script and regenerate the notebook with
# `jupytext --to ipynb examples/quickstart.py`.

# %% tags=["parameters"]
import os

# TINY: every model at the size of its experiment's `get_test_config()` (networks of a few thousand
# parameters at most), untrained, on the real data; the test suite runs the notebook this way
# (GM_JAX_QUICKSTART_TINY=1). False, the default: the default-size models, trained where runs/<name> exists.
TINY = os.environ.get("GM_JAX_QUICKSTART_TINY", "0") == "1"

# %%
import importlib
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import gm_jax
from gm_jax.distributions import nats_to_bits

# The checkout's runs/ folder (the notebook runs from examples/ in Jupyter).
ROOT = Path.cwd().parent if Path.cwd().name == "examples" else Path.cwd()
RUNS = ROOT / "runs"


def tiny_overrides(name: str) -> dict:
    """The config overrides that shrink `name` to its test size (`experiments.<name>.get_test_config()`),
    keeping the real data and the default evaluation batch (`data_dir`, `eval_batch_size`); {} unless TINY."""
    if not TINY:
        return {}
    default = gm_jax.get_config(name)
    test = importlib.import_module(f"experiments.{name}").get_test_config()
    return {k: v for k, v in test.items() if k not in ("data_dir", "eval_batch_size") and v != default[k]}


def get_model(name: str, **overrides) -> gm_jax.Model:
    """The trained run in runs/<name> if there is one (and not TINY), else a fresh model."""
    run = RUNS / name
    if not TINY and not overrides and (run / "config.json").exists():
        model = gm_jax.load(run)
    else:
        model = gm_jax.create(name, **tiny_overrides(name), **overrides)
    print(model, "(trained)" if model.step else "(untrained: samples are noise)")
    return model


def timed(fn, *args, **kwargs):
    """(fn(...), seconds), waiting for JAX's asynchronous result."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


print(f"TINY={TINY}, jax {jax.__version__} on {jax.devices()[0].platform}, runs from {RUNS}")

# %% [markdown]
# ## The experiments
#
# Every module of the `experiments` package is an experiment name: `gm_jax.experiment_names()` lists them,
# `gm-jax list` prints them with the first line of their docstring.

# %%
from gm_jax.command import experiment_description

for name in gm_jax.experiment_names():
    print(f"{name:26s} {experiment_description(name)}")

# %% [markdown]
# ## An autoregressive image model: cached vs naive sampling
#
# A PixelCNN draws a 28×28 binary image one pixel at a time. `method="naive"` re-runs the whole network on
# the image for every pixel; `method="cached"` runs each layer only where the new pixel changes it. Both
# draw pixel *i* with `fold_in(key, i)`, so the same key gives the same images. Each sampler is compiled on
# its first call, so we time the second.
#
# Train it: `gm-jax train pixelcnn_mnist --workdir runs/pixelcnn_mnist` (about 8 minutes on a 2-core CPU).

# %%
pixelcnn = get_model("pixelcnn_mnist")
key = jax.random.key(0)
n = 16
times = {}
for method in ("cached", "naive"):
    pixelcnn.sample(key, n, method=method)  # compile
    samples, times[method] = timed(pixelcnn.sample, key, n, method=method)
    if method == "cached":
        cached = samples
print(f"{n} images: cached {times['cached']:.3f} s, naive {times['naive']:.3f} s "
      f"({times['naive'] / times['cached']:.1f}x)")
np.testing.assert_array_equal(np.asarray(cached), np.asarray(samples))
print("identical samples from the same key:", True)

fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for ax, img in zip(axes.flat, np.asarray(cached)):
    ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
    ax.axis("off")
fig.suptitle(f"pixelcnn_mnist samples (step {pixelcnn.step})")
plt.show()

# %% [markdown]
# ## Scoring test data
#
# `Model.log_prob(x)` is log p(x) per example in nats (exact for the PixelCNN). Divided by the number of
# dimensions and ln 2 it is bits/dim. The experiment's own data loader, `experiment.load(split, limit)`,
# reads the test images (binarized MNIST, uint8 {0, 1} [N, 28, 28, 1]) from the local TFDS folder.

# %%
test = pixelcnn.experiment.load("test", limit=8)["image"]
log_p = pixelcnn.log_prob(test)
print("images:", test.shape, test.dtype)
print("log p(x), nats:", np.round(np.asarray(log_p), 1))
print(f"mean NLL {-log_p.mean():.2f} nats = {nats_to_bits(-log_p.mean(), 28 * 28):.4f} bits/dim")

# %% [markdown]
# ## Where the model is surprised: a per-pixel log-probability map
#
# For an autoregressive model, `Model.log_prob_per_position(x)` gives log p(x_i | x_<i) of every pixel
# ([N, 28, 28, 1], nats); its sum over the pixels is `log_prob`. A trained model is surprised (bright)
# mostly at the edges of the strokes.

# %%
per_pixel = pixelcnn.log_prob_per_position(test)
np.testing.assert_allclose(per_pixel.sum(axis=(1, 2, 3)), log_p, rtol=1e-4)

fig, axes = plt.subplots(2, 4, figsize=(8, 4.3))
for i in range(4):
    axes[0, i].imshow(test[i, ..., 0], cmap="gray")
    im = axes[1, i].imshow(-nats_to_bits(per_pixel[i, ..., 0]), cmap="magma")
    axes[0, i].set_title(f"{nats_to_bits(-log_p[i]):.0f} bits")
    for ax in axes[:, i]:
        ax.axis("off")
fig.colorbar(im, ax=axes[1], shrink=0.8, label="-log2 p(x_i | x_<i), bits")
plt.show()

# %% [markdown]
# `Model.conditionals(x)` gives the distributions themselves: for this binary PixelCNN the Bernoulli logits
# of every pixel given the pixels before it (`model.experiment.conditionals_kind` names the family:
# "bernoulli", "categorical" or PixelCNN++'s "discretized_logistic_mixture"). Their sigmoid is the model's
# guess of each pixel before seeing it.

# %%
conditionals = pixelcnn.conditionals(test)
print(pixelcnn.experiment.conditionals_kind, {k: v.shape for k, v in conditionals.items()})
fig, axes = plt.subplots(1, 4, figsize=(8, 2.2))
for i, ax in enumerate(axes):
    ax.imshow(jax.nn.sigmoid(conditionals["logits"][i, ..., 0]), cmap="gray", vmin=0, vmax=1)
    ax.set_title("p(x_i = 1 | x_<i)", fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## A latent-variable model: interpolating in a VAE's latent space
#
# The VAE's handle samples (`sample`) and estimates log p(x) by importance sampling (`log_prob(x, key=...)`,
# the IWAE bound). Its encoder and decoder are the Flax module's `encode` and `decode` methods
# (`gm_jax.models.vae.VAE`), reached through `model.experiment.model`: encode two test images, walk the line
# between their posterior means, and decode each point (Bernoulli means, i.e. pixel probabilities).
#
# Train it: `python3 dev.py run` (or `gm-jax train vae_mnist --workdir runs/vae_mnist`; about 9 minutes).

# %%
from gm_jax.models import vae as vae_lib

vae = get_model("vae_mnist")
print("IWAE log p(x), nats:", np.round(np.asarray(vae.log_prob(test[:4], key=jax.random.key(1))), 1))


def encode(x):
    mean, _ = vae.experiment.model.apply({"params": vae.params}, jnp.asarray(x, jnp.float32),
                                         method=vae_lib.VAE.encode)
    return mean


def decode(z):
    return jax.nn.sigmoid(vae.experiment.model.apply({"params": vae.params}, z, method=vae_lib.VAE.decode))


z0, z1 = encode(test[:2])
t = jnp.linspace(0.0, 1.0, 9)[:, None]
row = decode((1 - t) * z0 + t * z1)  # [9, 28, 28, 1] in [0, 1]

fig, axes = plt.subplots(1, 11, figsize=(11, 1.4))
for ax, img, title in zip(axes, [test[0], *row, test[1]], ["x0", *[f"{v:.2f}" for v in t[:, 0]], "x1"]):
    ax.imshow(np.asarray(img)[..., 0], cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Text: generate from a prompt
#
# A character-level Transformer on tiny Shakespeare. `sample` takes the prompt as a string (or token ids)
# and `length` new characters, plus `temperature`, `top_k`, `top_p`; the KV-cache sampler is the default
# (`method="naive"` gives the same text, slower). The vocabulary decodes the ids. `log_prob_per_position`
# scores a test passage character by character.
#
# Train it: `gm-jax train transformer_shakespeare --workdir runs/transformer_shakespeare` (about 25 minutes);
# `charrnn_shakespeare` is an LSTM with the same interface (about 4 minutes).

# %%
gpt = get_model("transformer_shakespeare")
ids = gpt.sample(jax.random.key(2), 2, prompt="ROMEO:", length=64 if TINY else 300, temperature=0.8)
for text in (gpt.experiment.vocab.decode(row) for row in np.asarray(ids)):
    print(text, "\n" + "-" * 40)

# The Transformer scores at most its context + 1 characters at once (experiment.max_len).
passage = gpt.experiment.tokens("test")[None, :gpt.experiment.max_len]  # int32 [1, T]
per_char = gpt.log_prob_per_position(passage)  # [1, T - 1]: each character after the first
print(f"test passage: {nats_to_bits(-per_char.mean()):.3f} bits/char")

# %% [markdown]
# ## Music: a melody to MIDI
#
# `melody_jsb` is an LSTM over the soprano lines of the JSB Chorales (16th notes; 22 pitches and a rest).
# `gm_jax.viz.samples.write_samples` writes samples in their data's form, the same writer as
# `gm-jax sample runs/melody_jsb -n 2 --out melody.mid`: one MIDI file per sample.
#
# Train it: `gm-jax train melody_jsb --workdir runs/melody_jsb` (about 3 minutes).

# %%
import pretty_midi
from IPython.display import Audio, display

from gm_jax.viz.samples import write_samples

melody = get_model("melody_jsb")
tokens = melody.sample(jax.random.key(3), 2, length=64)  # int32 [2, 64]
out_dir = Path(tempfile.mkdtemp(prefix="gm_jax_quickstart_"))
midi_files = write_samples(melody.experiment, melody.params, tokens, out_dir / "melody.mid")
print("wrote", *midi_files)

roll = melody.experiment.to_rolls(tokens)[0]  # {0, 1} [64, 88] piano roll, key k = MIDI pitch 21 + k
keys = np.flatnonzero(roll.any(axis=0))
lo, hi = (keys.min() - 2, keys.max() + 3) if keys.size else (0, 88)  # the melody's range
plt.figure(figsize=(8, 2))
plt.imshow(roll[:, lo:hi].T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
           extent=(-0.5, len(roll) - 0.5, lo + 20.5, hi + 20.5))
plt.xlabel("16th note")
plt.ylabel("MIDI pitch")
plt.show()

display(Audio(pretty_midi.PrettyMIDI(str(midi_files[0])).synthesize(fs=8000), rate=8000))

# %% [markdown]
# ## A flow and an energy-based model on 2-D toy data
#
# A RealNVP flow has an exact density: `log_prob` on a grid is its density map. An energy-based model has no
# tractable normaliser, so its handle has no `log_prob` (it raises `NotImplementedError`); it samples by
# Langevin dynamics, and `experiment.energy(params, x)` gives the unnormalised energy.
#
# Train them: `gm-jax train realnvp_toy --workdir runs/realnvp_toy`,
# `gm-jax train ebm_toy --workdir runs/ebm_toy` (about a minute on a 2-core CPU).

# %%
flow = get_model("realnvp_toy")
ebm = get_model("ebm_toy")
lim = 4.0
g = np.linspace(-lim, lim, 80, dtype=np.float32)
grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)  # [6400, 2], rows = y

density = np.exp(np.asarray(flow.log_prob(grid))).reshape(80, 80)  # p(x), [80, 80]
energy = np.asarray(jax.jit(ebm.experiment.energy)(ebm.params, jnp.asarray(grid))).reshape(80, 80)
rng = np.random.default_rng(0)

fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
panels = [(flow, density, "RealNVP: p(x), samples"), (ebm, -energy, "EBM: -E(x), Langevin samples")]
for i, (model, background, title) in enumerate(panels):
    data = model.experiment.draw_data(rng, 500)  # float32 [500, 2], the training distribution
    axes[2 * i].scatter(*data.T, s=2)
    axes[2 * i].set_title(f"{model.experiment.name} data: {model.config.problem}")
    axes[2 * i + 1].imshow(background, origin="lower", extent=(-lim, lim, -lim, lim), cmap="viridis")
    axes[2 * i + 1].scatter(*np.asarray(model.sample(jax.random.key(4 + i), 500)).T, s=1, c="w")
    axes[2 * i + 1].set_title(title)
for ax in axes:
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## Train a run and load it: a GAN
#
# `gm_jax.training.loop.train_and_evaluate(experiment, workdir)` is what `gm-jax train NAME --workdir DIR`
# runs: it trains (resuming from the newest checkpoint if the workdir holds one), evaluates and writes
# `config.json`, `checkpoints/`, `metrics.jsonl`, `results.json` and figures. `gm_jax.load(workdir)` then
# returns the same `Model` handle as `create`. A GAN defines a sampler but no density.
#
# Here a GAN on a ring of 8 Gaussians, trained in a temporary directory (the full default run takes about
# 15 s on a 2-core CPU; TINY trains 50 steps of a tiny one). From a shell:
# `gm-jax train gan_toy --workdir runs/gan_toy`, then `gm-jax sample runs/gan_toy --out ring.png`.
# Training writes its figures with matplotlib's file backend, so this section comes last.

# %%
from IPython.display import Image

from gm_jax.training.loop import train_and_evaluate

workdir = out_dir / "gan_toy"
overrides = {**tiny_overrides("gan_toy"), "num_steps": 50} if TINY else {}
results = train_and_evaluate(gm_jax.build("gan_toy", **overrides), workdir)
print({k: results[k] for k in ("step", "modes_covered", "num_modes", "high_quality_fraction", "train_wall_s")})
print("the run:", sorted(p.name for p in workdir.iterdir()))

gan = gm_jax.load(workdir)  # the newest intact checkpoint
points = gan.sample(jax.random.key(6), 1000)  # float32 [1000, 2]
print(gan, "samples:", points.shape, points.dtype)
display(Image(str(workdir / "training.png")))  # samples at step 0 and at each checkpoint
