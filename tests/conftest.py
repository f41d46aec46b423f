"""Test setup: 4 CPU devices (for the pmap / sharded tests) compiled at LLVM -O0, one XLA compilation cache and one gm_jax
data-setup cache per session, and real-data fixtures.

XLA_FLAGS must be set before JAX initialises its backend, hence at import time here.
"""
import os
import shutil
import tempfile

# The tests' tiny programs spend their time compiling, not running. LLVM optimisation level 0 took a third
# off the suite's wall time; XLA:CPU's older loop emitters for the elementwise fusions
# (--xla_cpu_use_fusion_emitters=false) compile faster again: two contract tests alone, 19.1 -> 13.6 s. The
# numerics are XLA's own either way (no fast-math at any level). Benchmarks and runs keep XLA's defaults.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0 "
                      "--xla_cpu_use_fusion_emitters=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402


def pytest_configure(config):
    """In the controlling process (before pytest-xdist starts its workers, which inherit the environment):
    a fresh persistent XLA compilation cache for this session, shared by the workers. The contract test's
    three parallel modes evaluate and sample with the same single-device programs, so these compile once.
    Programs compiling in under 0.3 s are not cached (writing them costs more than it saves)."""
    if hasattr(config, "workerinput"):
        return
    if "GM_JAX_CACHE_DIR" not in os.environ:  # the data-setup cache (gm_jax.cache): never the user's
        config._gm_jax_cache = tempfile.mkdtemp(prefix="gm_jax_test_cache_")
        os.environ["GM_JAX_CACHE_DIR"] = config._gm_jax_cache
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return
    config._gm_jax_xla_cache = tempfile.mkdtemp(prefix="gm_jax_test_xla_cache_")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = config._gm_jax_xla_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")


def pytest_unconfigure(config):
    for cache in (getattr(config, "_gm_jax_xla_cache", None), getattr(config, "_gm_jax_cache", None)):
        if cache:
            shutil.rmtree(cache, ignore_errors=True)

from gm_jax.data import DatasetNotFoundError, audio, find_data_dir, music  # noqa: E402


def _require(name: str, find=find_data_dir):
    try:
        return find(name) if find is find_data_dir else find()
    except DatasetNotFoundError as e:
        if os.environ.get("CI"):  # in CI missing data is a failure, never a skip
            pytest.fail(f"real data missing in CI: {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def binarized_mnist_dir():
    """Directory holding the prepared binarized_mnist (fails under CI when missing)."""
    return _require("binarized_mnist")


@pytest.fixture(scope="session")
def mnist_dir():
    """Directory holding the prepared mnist (fails under CI when missing)."""
    return _require("mnist")


@pytest.fixture(scope="session")
def shakespeare_dir():
    """Directory holding the prepared tiny_shakespeare (fails under CI when missing)."""
    return _require("tiny_shakespeare")


@pytest.fixture(scope="session")
def jsb_dir():
    """The raw jsb_chorales folder of ../shared/data (fails under CI when missing)."""
    return _require("jsb_chorales", find=music.find_jsb_dir)


@pytest.fixture(scope="session")
def fsdd_dir():
    """The raw spoken_digits folder (Free Spoken Digit Dataset) of ../shared/data (fails under CI when missing)."""
    return _require("spoken_digits", find=audio.find_fsdd_dir)
