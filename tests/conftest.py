"""Test setup: 4 CPU devices (for the pmap / sharded tests) and real-data fixtures.

XLA_FLAGS must be set before JAX initialises its backend, hence at import time here.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

from gm_jax.data import DatasetNotFoundError, find_data_dir  # noqa: E402


def _require(name: str):
    try:
        return find_data_dir(name)
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
