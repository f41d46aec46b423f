"""Behaviour check for refactors: every experiment's short fixed-seed run, metrics recorded and compared.

    python -m benchmarks.behaviour_check run --out before.json [--only vae_mnist,...]
    python -m benchmarks.behaviour_check compare before.json after.json [--rtol 1e-5]

`run` trains every experiment for a few steps with a tiny config (the
overrides below, valid for the configs of 2026-11-29 and later) on the real
data of `../shared`, in a fresh temporary workdir each, through the command
line (`python -m experiments.<name>`), and records the numeric entries of its
`results.json` (wall times left out). `compare` prints, per experiment, the
metrics that differ: identical, within `rtol`, or different.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMON = {"num_steps": 20, "log_every": 10, "checkpoint_every": 20, "progress_bar": False}
TINY: dict[str, dict] = {
    "cgan_mnist": {"batch_size": 16, "num_eval_samples": 200, "g_channels": "(16,8)", "d_channels": "(8,16)"},
    "charrnn_shakespeare": {"hidden": 32, "embed_dim": 16, "window": 32, "sample_length": 20},
    "dcgan_mnist": {"batch_size": 16, "num_eval_samples": 200, "g_channels": "(16,8)", "d_channels": "(8,16)",
                    "clusters": 4},
    "ebm_mnist": {"batch_size": 16, "channels": "(8,8,8)", "buffer_size": 64, "sample_steps": 5,
                  "num_eval_samples": 100, "langevin_steps": 3},
    "ebm_toy": {"hidden": "(16,16)", "buffer_size": 256, "langevin_steps": 5, "sample_steps": 20,
                "num_eval_samples": 200},
    "gan_toy": {"g_hidden": "(16,16)", "d_hidden": "(16,16)", "num_eval_samples": 200},
    "gated_pixelcnn_mnist": {"features": 8, "num_layers": 2, "kernel_size": 3, "output_features": 8,
                             "batch_size": 8},
    "glow_mnist": {"hidden": 8, "steps_per_level": 1, "num_layers": 1, "batch_size": 8, "init_batch_size": 16,
                   "num_recon_images": 50, "warmup_steps": 5},
    "gmm_mnist": {"num_components": 3, "pca_dim": 5, "num_steps": 3},
    "gmm_toy": {"num_steps": 5},
    "lda_shakespeare": {"gibbs_sweeps": 5, "vi_iterations": 5, "fold_in_iters": 5, "num_steps": 10},
    "lstm_jsb": {"hidden": 16, "sample_length": 8},
    "melody_jsb": {"hidden": 16, "embed_dim": 8, "sample_length": 8},
    "ngram_shakespeare": {"order": 3, "sample_length": 20, "num_steps": 1},
    "pixelcnn_mnist": {"features": 8, "num_layers": 1, "output_features": 8, "batch_size": 8},
    "pixelcnn_pp_mnist": {"features": 8, "num_mixtures": 2, "batch_size": 4},
    "realnvp_mnist": {"hidden": 8, "couplings": 1, "num_layers": 1, "batch_size": 8, "init_batch_size": 16,
                      "num_recon_images": 50, "warmup_steps": 5},
    "realnvp_toy": {"hidden": 16, "num_layers": 2, "grid_size": 50, "num_eval_points": 500, "init_batch_size": 100,
                    "warmup_steps": 5},
    "transformer_shakespeare": {"dim": 32, "num_layers": 1, "num_heads": 2, "block_size": 32, "sample_length": 20,
                                "warmup_steps": 5},
    "vae_mnist": {"hidden": "(32,)", "latent_dim": 4, "iwae_k": 4},
    "wavenet_digits": {"residual_channels": 8, "skip_channels": 8, "layers_per_block": 3, "num_blocks": 1,
                       "crop_length": 256, "sample_seconds": 0.05, "batch_size": 4, "warmup_steps": 5},
}
SKIP = ("wall_s",)


def _numeric(results: dict) -> dict:
    out = {}
    for k, v in results.items():
        if any(s in k for s in SKIP) or isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[k] = v
        elif isinstance(v, list) and all(isinstance(x, (int, float)) for x in v):
            out[k] = v
    return out


def run(names: list[str], out: Path) -> None:
    records = json.loads(out.read_text()) if out.exists() else {}
    for name in names:
        overrides = {**COMMON, **TINY[name]}
        with tempfile.TemporaryDirectory() as workdir:
            cmd = [sys.executable, "-m", f"experiments.{name}", "--workdir", workdir,
                   *[f"--config.{k}={v}" for k, v in overrides.items()]]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            took = time.perf_counter() - t0
            if proc.returncode:
                records[name] = {"error": proc.stderr[-2000:]}
                print(f"{name}: FAILED ({took:.0f} s)\n{proc.stderr[-2000:]}", flush=True)
            else:
                records[name] = _numeric(json.loads((Path(workdir) / "results.json").read_text()))
                print(f"{name}: {len(records[name])} metrics ({took:.0f} s)", flush=True)
        out.write_text(json.dumps(records, indent=1, sort_keys=True))


def _close(a, b, rtol):
    if isinstance(a, list) or isinstance(b, list):
        return (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                and all(_close(x, y, rtol) for x, y in zip(a, b)))
    return a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= rtol * max(abs(a), abs(b)))


def compare(before: Path, after: Path, rtol: float) -> int:
    b, a = json.loads(before.read_text()), json.loads(after.read_text())
    bad = 0
    for name in sorted(set(b) | set(a)):
        mb, ma = b.get(name, {}), a.get(name, {})
        if "error" in mb or "error" in ma or not mb or not ma:
            print(f"{name}: missing or failed run (before: {'error' in mb or not mb}, after: {'error' in ma or not ma})")
            bad += 1
            continue
        same = [k for k in mb if k in ma and mb[k] == ma[k]]
        close = [k for k in mb if k in ma and mb[k] != ma[k] and _close(mb[k], ma[k], rtol)]
        diff = [k for k in mb if k in ma and not _close(mb[k], ma[k], rtol)]
        gone, new = sorted(set(mb) - set(ma)), sorted(set(ma) - set(mb))
        print(f"{name}: {len(same)} identical, {len(close)} within {rtol:g}, {len(diff)} different"
              + (f"; only before: {gone}" if gone else "") + (f"; only after: {new}" if new else ""))
        for k in close + diff:
            print(f"    {k}: {mb[k]} -> {ma[k]}")
        bad += bool(diff)
    return bad


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--only", default="")
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    c.add_argument("--rtol", type=float, default=1e-5)
    args = p.parse_args(argv)
    if args.cmd == "run":
        names = args.only.split(",") if args.only else sorted(TINY)
        run(names, args.out)
        return 0
    return 1 if compare(args.before, args.after, args.rtol) else 0


if __name__ == "__main__":
    sys.exit(main())
