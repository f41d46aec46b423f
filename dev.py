#!/usr/bin/env python3
"""One entry point for a fresh checkout: set up `.venv`, then run something.

    python3 dev.py run [ARGS...]    install, then train the main job (vae_mnist)
    python3 dev.py test [ARGS...]   install (with the test extra), then run pytest on every core (xdist)
    python3 dev.py bench [ARGS...]  install, then run the benchmarks

Needs only Python 3.11+. The install is `pip install -e .[test]` into `.venv`
and is redone only when `setup.cfg` or `pyproject.toml` change (a stamp file in
`.venv` records their hash).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".gm_jax-install-stamp"


def _install() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"gm_jax needs Python 3.11+, this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"[dev] creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(
        b"".join((ROOT / f).read_bytes() for f in ("setup.cfg", "pyproject.toml"))
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    print("[dev] installing gm_jax and its dependencies into .venv", flush=True)
    subprocess.check_call([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    subprocess.check_call([str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"])
    STAMP.write_text(digest)


def main(argv: list[str]) -> int:
    commands = {
        "run": ["-m", "experiments.vae_mnist", "--workdir", "runs/vae_mnist"],
        "test": ["-m", "pytest", "-q", "-n", "auto"],
        "bench": ["-m", "benchmarks.run"],
    }
    if not argv or argv[0] not in commands:
        print(__doc__)
        return 2
    _install()
    cmd = [str(PY), *commands[argv[0]], *argv[1:]]
    print("[dev]", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
