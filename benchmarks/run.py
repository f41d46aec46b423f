"""Benchmark the train steps and samplers of the registered entries.

    python -m benchmarks.run [--only NAME ...] [--out DIR] [--repeats N] [--quick]

For each entry of `ENTRIES` it times, after compilation (one warm-up call
excluded), in the steady state:

* the train step in **examples/s** under each available parallel mode
  (`none`; also `pmap` and `sharded` when `jax.local_device_count() > 1`),
  each timing a block of `--steps-per-timing` steps on real batches ended by
  `jax.block_until_ready`;
* the jitted sampler `experiment.sample(params, key, num_samples)` in
  **samples/s**, each timing one call ended by `jax.block_until_ready`;

reporting the median over `--repeats` timings, the median seconds per call
(per step, or per sampler call), batch size / num_samples, the devices and
the jax version. See `benchmarks.harness` for details.

Writes `OUT/benchmarks.json` (`{"environment", "settings", "records"}`) and
`OUT/benchmarks.md` (a markdown table, also printed to stdout); progress goes
to stderr. A measurement that raises is recorded with its `"error"` and the
run goes on; the exit status is then 1. One that cannot run on this host
(a batch not divisible by the device count) is recorded as `"skipped"`.

To benchmark a new model add an `Entry` to `ENTRIES`, e.g.

    Entry(name="my_model", experiment="my_model", overrides={},
          sample_sizes=(64,), quick_overrides={"batch_size": 8})
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

from benchmarks import flops
from benchmarks.harness import Entry, environment, failures, markdown_report, parallel_modes, run_entry
from gm_jax.training.loop import write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DEFAULT_REPEATS, QUICK_REPEATS = 10, 3
DEFAULT_STEPS_PER_TIMING, QUICK_STEPS_PER_TIMING = 10, 2

_QUICK_VAE = {"hidden": (32,), "latent_dim": 4, "batch_size": 8}
_QUICK_DCGAN = {"z_dim": 8, "g_channels": (8, 4), "d_channels": (4, 8), "batch_size": 8}
_QUICK_GPT = {"dim": 16, "num_layers": 1, "num_heads": 2, "block_size": 16, "batch_size": 4}


def _TEXT_256(experiment, n: int) -> dict:
    """Sampler arguments of the text models: 256 new characters after a newline prompt."""
    return experiment.check_conditioning(n, prompt="\n", length=256)


def _translator_inputs(experiment, n: int) -> dict:
    """A translator's inputs: `make_input` of n blank 28x28 images."""
    return {"inputs": experiment.make_input(np.zeros((n, 28, 28, 1), np.uint8))}


def _ffjord_nfe(experiment, params, key, n: int) -> dict:
    """The function evaluations of the sampler's backward solve (`gm_jax.models.ffjord`)."""
    _, nfe = jax.jit(lambda p, k: experiment.cnf.sample(p, k, n, experiment.cnf_shape, experiment.solver("eval")))(
        params, key)
    return {"nfe": int(nfe)}


ENTRIES: list[Entry] = [
    Entry(name="vae_mnist", experiment="vae_mnist", overrides={},
          sample_sizes=(64, 1024), quick_overrides=_QUICK_VAE, quick_sample_sizes=(8,)),
    Entry(name="vae_mnist_conv", experiment="vae_mnist", overrides={"architecture": "conv", "hidden": (32, 64)},
          sample_sizes=(64, 1024), quick_overrides={**_QUICK_VAE, "hidden": (4, 8)}, quick_sample_sizes=(8,)),
    Entry(name="dcgan_mnist", experiment="dcgan_mnist", overrides={},
          sample_sizes=(64, 1024), quick_overrides=_QUICK_DCGAN, quick_sample_sizes=(8,)),
    Entry(name="dcgan_mnist_plain", experiment="dcgan_mnist",
          overrides={"clusters": 0, "pack": 4, "d_channels": (32, 64)},  # unconditional, PacGAN D, the old default
          sample_sizes=(64, 1024), quick_overrides={**_QUICK_DCGAN, "clusters": 0}, quick_sample_sizes=(8,)),
    Entry(name="cgan_mnist", experiment="cgan_mnist", overrides={},
          sample_sizes=(64, 1024), quick_overrides=_QUICK_DCGAN, quick_sample_sizes=(8,),
          conditioning=lambda experiment, n: {"labels": np.arange(n, dtype=np.int32) % 10}),
    Entry(name="ebgan_mnist", experiment="ebgan_mnist", overrides={},
          sample_sizes=(64, 1024), quick_overrides={**_QUICK_DCGAN, "code_dim": 4}, quick_sample_sizes=(8,)),
    # Translators: a train step updates D, G and the content-loss-only baseline G; the sampler translates inputs.
    Entry(name="srgan_mnist", experiment="srgan_mnist", overrides={}, sample_sizes=(64, 1024),
          quick_overrides={"g_features": 8, "num_blocks": 1, "d_channels": (4, 8), "d_dense": 16, "batch_size": 8},
          quick_sample_sizes=(8,), conditioning=_translator_inputs),
    Entry(name="pix2pix_mnist", experiment="pix2pix_mnist", overrides={}, sample_sizes=(64, 1024),
          quick_overrides={"g_channels": (4, 8, 8), "dropout_layers": 1, "d_channels": (4, 8, 8), "batch_size": 8},
          quick_sample_sizes=(8,), conditioning=_translator_inputs),
    Entry(name="gan_toy_ring8", experiment="gan_toy", overrides={},
          sample_sizes=(2500,), quick_overrides={"g_hidden": (8,), "d_hidden": (8,), "batch_size": 8},
          quick_sample_sizes=(8,)),
    # PixelCNN family and PixelRNN: samplers timed here are the cached ones (16 samples); naive vs cached with
    # the speed-up ratio: `python -m benchmarks.pixelcnn_sampling`.
    Entry(name="pixelcnn_mnist", experiment="pixelcnn_mnist", overrides={}, sample_sizes=(16,),
          quick_overrides={"features": 4, "num_layers": 1, "output_features": 4, "batch_size": 8},
          quick_sample_sizes=(2,)),
    Entry(name="gated_pixelcnn_mnist", experiment="gated_pixelcnn_mnist", overrides={}, sample_sizes=(16,),
          quick_overrides={"features": 4, "num_layers": 1, "output_features": 4, "batch_size": 8},
          quick_sample_sizes=(2,)),
    Entry(name="pixelcnn_pp_mnist", experiment="pixelcnn_pp_mnist", overrides={}, sample_sizes=(16,),
          quick_overrides={"features": 4, "num_mixtures": 2, "batch_size": 8}, quick_sample_sizes=(2,)),
    Entry(name="pixelrnn_row_mnist", experiment="pixelrnn_row_mnist", overrides={}, sample_sizes=(16,),
          flops=flops.experiment_train_flops,
          quick_overrides={"features": 4, "num_layers": 1, "output_features": 4, "batch_size": 8},
          quick_sample_sizes=(2,)),
    Entry(name="pixelrnn_diag_mnist", experiment="pixelrnn_diag_mnist", overrides={}, sample_sizes=(16,),
          flops=flops.experiment_train_flops,
          quick_overrides={"features": 4, "num_layers": 1, "output_features": 4, "batch_size": 8},
          quick_sample_sizes=(2,)),
    # Sequence models: train examples are windows (x window length = tokens/s); samplers draw 256 new
    # tokens per sample. Cached vs uncached Transformer generation with the speed-up ratio:
    # `python -m benchmarks.sequence_sampling`.
    Entry(name="transformer_shakespeare", experiment="transformer_shakespeare", overrides={}, sample_sizes=(1, 8),
          quick_overrides=_QUICK_GPT, quick_sample_sizes=(2,), conditioning=_TEXT_256),
    Entry(name="transformer_shakespeare_uncached", experiment="transformer_shakespeare",
          overrides={"sampler": "naive"}, sample_sizes=(1, 8), quick_overrides=_QUICK_GPT, quick_sample_sizes=(2,),
          conditioning=_TEXT_256),
    Entry(name="charrnn_shakespeare", experiment="charrnn_shakespeare", overrides={}, sample_sizes=(1, 8),
          flops=flops.experiment_train_flops,
          quick_overrides={"hidden": 16, "embed_dim": 8, "window": 16, "batch_size": 4}, quick_sample_sizes=(2,),
          conditioning=_TEXT_256),
    Entry(name="ngram_shakespeare", experiment="ngram_shakespeare", overrides={}, sample_sizes=(1, 8),
          quick_overrides={"order": 2, "batch_size": 4}, quick_sample_sizes=(2,), conditioning=_TEXT_256),
    Entry(name="lstm_jsb", experiment="lstm_jsb", overrides={}, sample_sizes=(1, 8),
          flops=flops.experiment_train_flops,
          quick_overrides={"hidden": 8, "batch_size": 4}, quick_sample_sizes=(2,),
          conditioning=lambda experiment, n: experiment.check_conditioning(n, length=256)),
    Entry(name="melody_jsb", experiment="melody_jsb", overrides={}, sample_sizes=(1, 8),
          flops=flops.experiment_train_flops,
          quick_overrides={"hidden": 8, "batch_size": 4}, quick_sample_sizes=(2,),
          conditioning=lambda experiment, n: experiment.check_conditioning(n, length=256)),
    # WaveNet: a train example is a crop of `crop_length` (2,048) audio samples (x 2,048 = audio samples/s);
    # the sampler (the fast queue sampler) draws recordings of 1 s at 8 kHz, so samples/s = seconds of audio
    # per second. Naive vs fast with the speed-up ratio: `python -m benchmarks.wavenet_sampling`.
    Entry(name="wavenet_digits", experiment="wavenet_digits", overrides={}, sample_sizes=(1, 8),
          quick_overrides={"layers_per_block": 3, "num_blocks": 1, "residual_channels": 8, "skip_channels": 8,
                           "crop_length": 256, "batch_size": 4},
          quick_sample_sizes=(2,),
          conditioning=lambda experiment, n: experiment.check_conditioning(n, seconds=1.0)),
    # VQ-VAE: one train-step record per stage (1: the VQ-VAE, 2: the prior on the frozen encoder's codes); the
    # sampler draws the 7x7 codes with the prior's cached sampler and decodes them.
    Entry(name="vqvae_mnist", experiment="vqvae_mnist", overrides={}, sample_sizes=(16, 64),
          quick_overrides={"hidden": 4, "num_codes": 4, "code_dim": 2, "prior_features": 4, "prior_layers": 1,
                           "prior_kernel_size": 3, "prior_output_features": 4, "batch_size": 8},
          quick_sample_sizes=(2,)),
    # PixelVAE: the sampler draws z ~ N(0, I), then the pixels with the Gated PixelCNN decoder's cached sampler.
    Entry(name="pixelvae_mnist", experiment="pixelvae_mnist", overrides={}, sample_sizes=(16,),
          quick_overrides={"latent_dim": 2, "encoder_channels": (4, 4), "map_channels": (4, 4), "map_features": 4,
                           "features": 4, "num_layers": 1, "kernel_size": 3, "output_features": 4, "batch_size": 8},
          quick_sample_sizes=(2,)),
    # Adversarial autoencoder: the sampler decodes z ~ p(z) (the Gaussian prior by default) in one pass.
    Entry(name="aae_mnist", experiment="aae_mnist", overrides={}, sample_sizes=(64, 1024),
          quick_overrides={"hidden": (8,), "disc_hidden": (8,), "batch_size": 8}, quick_sample_sizes=(8,)),
    # Sentence VAE: a train example is a line (<= 63 characters + EOL); the sampler draws z ~ N(0, I) and
    # decodes characters up to the line's EOL (max_len steps of the LSTM).
    Entry(name="sentence_vae_shakespeare", experiment="sentence_vae_shakespeare", overrides={}, sample_sizes=(1, 8),
          flops=flops.experiment_train_flops,
          quick_overrides={"hidden": 8, "latent_dim": 2, "embed_dim": 4, "batch_size": 8}, quick_sample_sizes=(2,)),
    # Normalizing flows: the sampler is one inverse pass (z ~ N(0, I) -> image), temperature 1.
    Entry(name="glow_mnist", experiment="glow_mnist", overrides={}, sample_sizes=(64, 1024),
          quick_overrides={"steps_per_level": 1, "hidden": 4, "init_batch_size": 8, "batch_size": 8},
          quick_sample_sizes=(8,)),
    Entry(name="realnvp_mnist", experiment="realnvp_mnist", overrides={}, sample_sizes=(64, 1024),
          quick_overrides={"couplings": 1, "hidden": 4, "init_batch_size": 8, "batch_size": 8},
          quick_sample_sizes=(8,)),
    # FFJORD: the train step's record carries the NFE of its solve (fixed by the config), the sampler's the NFE
    # of its adaptive backward solve at initialisation (it grows as the dynamics are trained: results.json has
    # the trained model's `eval_nfe` / `sample_nfe`).
    Entry(name="ffjord_toy", experiment="ffjord_toy", overrides={}, sample_sizes=(1000,),
          quick_overrides={"hidden": (8,), "batch_size": 8}, quick_sample_sizes=(8,), sampler_stats=_ffjord_nfe),
    Entry(name="ffjord_mnist", experiment="ffjord_mnist", overrides={}, sample_sizes=(16,),
          quick_overrides={"channels": (4,), "batch_size": 8}, quick_sample_sizes=(2,), sampler_stats=_ffjord_nfe),
]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    names = [e.name for e in ENTRIES]
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Steady-state throughput (medians after one compiling warm-up call) of each entry's "
                    "train step (examples/s) and sampler (samples/s).",
    )
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME", choices=names,
                        help=f"benchmark only these entries (choices: {', '.join(names)})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for benchmarks.json and benchmarks.md (default: benchmarks/results)")
    parser.add_argument("--repeats", type=_positive_int, default=None,
                        help=f"timings per measurement, the median is reported "
                             f"(default {DEFAULT_REPEATS}; {QUICK_REPEATS} with --quick)")
    parser.add_argument("--steps-per-timing", type=_positive_int, default=None,
                        help=f"train steps per timed block (default {DEFAULT_STEPS_PER_TIMING}; "
                             f"{QUICK_STEPS_PER_TIMING} with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny models, batches and sample sizes and few repeats (a smoke test in seconds)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Run the benchmarks; returns what is written to benchmarks.json."""
    args = parse_args(argv)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else DEFAULT_REPEATS)
    steps = args.steps_per_timing or (QUICK_STEPS_PER_TIMING if args.quick else DEFAULT_STEPS_PER_TIMING)
    selected = [e for e in ENTRIES if not args.only or e.name in args.only]
    modes = parallel_modes()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    records = []
    for entry in selected:
        records += run_entry(entry, quick=args.quick, repeats=repeats, steps_per_timing=steps, modes=modes, log=log)
    payload = {
        "environment": environment(),
        "settings": {"quick": args.quick, "repeats": repeats, "steps_per_timing": steps,
                     "parallel_modes": modes, "entries": [e.name for e in selected]},
        "records": records,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "benchmarks.json", payload)
    report = markdown_report(payload)
    (args.out / "benchmarks.md").write_text(report)
    print(report, end="")
    log(f"wrote {args.out / 'benchmarks.json'} and {args.out / 'benchmarks.md'}")
    for r in failures(records):
        log(f"ERROR in {r['entry']} {r['what']} (parallel={r['parallel']}): {r['error']}")
    return payload


if __name__ == "__main__":
    sys.exit(1 if failures(main()["records"]) else 0)
