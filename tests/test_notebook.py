"""The quickstart notebook: `examples/quickstart.ipynb` matches its jupytext script and runs top to bottom.

The script `examples/quickstart.py` (jupytext percent format) is the source; the notebook is generated from
it (`jupytext --update --to ipynb examples/quickstart.py`) and committed without outputs. The notebook is
executed with nbclient on tiny configs (`GM_JAX_QUICKSTART_TINY=1`: every experiment at its
`get_test_config()` size, on the real data of ../shared) in a kernel running this interpreter, and fails on
the first cell that raises, or on a cell running past 3 minutes (a hang). Per-cell times and the total
are printed (`pytest -s`, and in the CI log's captured output on failure); the total is a measurement
(about 40-60 s on 2 cores), not an assertion: timings are benchmarked, never asserted.
"""
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

try:
    import ipykernel  # noqa: F401  (the kernel the notebook runs in)
    import jupytext
    import nbclient
except ImportError as e:  # the `test` extra installs them; in CI their absence is a failure, never a skip
    if os.environ.get("CI"):
        raise
    pytest.skip(f"{e}: install the test extra (pip install -e .[test])", allow_module_level=True)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPT = EXAMPLES / "quickstart.py"
NOTEBOOK = EXAMPLES / "quickstart.ipynb"
BUDGET_S = 180.0  # per-cell timeout: a cell that hangs fails the test
KERNEL = "gm_jax_test_python"  # a kernel spec of this test's own, so no other `python3` spec is picked up


def _cells(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in nb.cells]


def test_notebook_matches_script():
    """Same cells (type and source) in the .ipynb and the .py; the committed notebook carries no outputs."""
    script, notebook = jupytext.read(SCRIPT), jupytext.read(NOTEBOOK)
    assert _cells(notebook) == _cells(script), (
        f"{NOTEBOOK.name} is out of date with {SCRIPT.name}: run `jupytext --update --to ipynb {SCRIPT}`")
    executed = [i for i, c in enumerate(notebook.cells)
                if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not executed, f"{NOTEBOOK.name} is committed with outputs (code cells {executed}); clear them"


def _kernel_manager(spec_dir: Path):
    """A kernel manager whose only kernel spec runs `sys.executable` (this virtual environment's Python),
    whatever `python3` kernels the user's or the system's Jupyter folders hold."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    (spec_dir / KERNEL).mkdir(parents=True)
    (spec_dir / KERNEL / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "gm_jax test kernel", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(spec_dir)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def _seconds(cell) -> float:
    """A cell's execution time from nbclient's timing metadata (execute_input to the reply)."""
    timing = cell.metadata.get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return float("nan")
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()  # ISO 8601, "Z"


def test_notebook_runs(tmp_path, binarized_mnist_dir, shakespeare_dir, jsb_dir):
    """Every cell of the quickstart runs without error on tiny configs."""
    nb = jupytext.read(NOTEBOOK)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as a user has
    # TMPDIR: the notebook's temporary files (MIDI files, the GAN run) go under pytest's tmp_path
    env.update(GM_JAX_QUICKSTART_TINY="1", TMPDIR=str(tmp_path), PYDEVD_DISABLE_FILE_VALIDATION="1")
    km = _kernel_manager(tmp_path / "kernels")
    client = nbclient.NotebookClient(nb, km=km, timeout=BUDGET_S, resources={"metadata": {"path": str(EXAMPLES)}},
                                     extra_arguments=["--InteractiveShell.colors=nocolor"])  # plain tracebacks
    t0 = time.perf_counter()
    try:
        client.execute(cleanup_kc=True, env=env)  # cleanup_kc: shut down the kernel (it was given, not owned)
    finally:
        wall = time.perf_counter() - t0
        lines = [f"{i:3d} {_seconds(c):7.2f} s  {c.source.splitlines()[0][:70] if c.source else ''}"
                 for i, c in enumerate(nb.cells) if c.cell_type == "code"]
        print(f"\nquickstart notebook: {wall:.1f} s in all (kernel start included)\n" + "\n".join(lines))
