"""Shared test fixtures: one Prefect test harness per session, GPU marker handling."""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

import pytest

# Tests never write into the project's results/ or .prefect/: everything goes to one temp folder,
# set before Prefect's settings are first read.
_TMP = tempfile.mkdtemp(prefix="gpuflows-tests-")
os.environ.setdefault("GPUFLOWS_RESULTS_DIR", os.path.join(_TMP, "results"))
os.environ.setdefault("PREFECT_HOME", os.path.join(_TMP, "prefect-home"))
os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", os.path.join(_TMP, "prefect-results"))
os.environ.setdefault("GPUFLOWS_CACHE_DIR", os.path.join(_TMP, "cache"))


@functools.cache
def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - any import/driver problem means "no usable GPU"
        return False


def _gpu_required() -> bool:
    return os.environ.get("REQUIRE_GPU") == "1"


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests without CUDA, unless REQUIRE_GPU=1 (then they fail: see below)."""
    if _cuda_available() or _gpu_required():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on a GPU host; REQUIRE_GPU=1 to enforce)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


def pytest_runtest_setup(item):
    """With REQUIRE_GPU=1 a `gpu` test on a host without CUDA is a failure, not a skip or xfail:
    `make test-gpu` must not pass on a machine whose GPU is missing or unusable."""
    if item.get_closest_marker("gpu") and _gpu_required() and not _cuda_available():
        pytest.fail(
            "REQUIRE_GPU=1 but no CUDA device (torch.cuda.is_available() is False)", pytrace=False
        )


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory):
    """One temporary Prefect API + SQLite DB for the whole session (~16 s to start).

    Results and gpuflows output go to a temporary folder so tests never touch ./results.
    """
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_RESULTS_PERSIST_BY_DEFAULT,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    root = Path(os.environ["GPUFLOWS_RESULTS_DIR"])
    with temporary_settings(
        {
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180,
            PREFECT_RESULTS_PERSIST_BY_DEFAULT: True,
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        }
    ):
        with prefect_test_harness(server_startup_timeout=180):
            yield root


@pytest.fixture
def fast_worker_start():
    """Worker processes forked from a fork server: ~7 s for two instead of ~22 s spawned on 2 cores.

    Spawn (Dask's default, kept in production) re-imports Prefect in every worker; the fork
    server does it once. The code under test is the same either way.
    """
    import dask
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        # The fork server imports these once (it starts with the first worker of the session).
        get_mp_context().set_forkserver_preload(["distributed", "prefect", "prefect_dask"])
        yield


@pytest.fixture
def results(tmp_path, monkeypatch):
    """This test's own results folder (GPUFLOWS_RESULTS_DIR): models, checkpoints, reports."""
    monkeypatch.setenv("GPUFLOWS_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"
