"""Shared test fixtures: one Prefect test harness per session, GPU marker handling, and one
migrated SQLite database copied into each real loopback server's home."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
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


# --- a migrated database for the real servers ------------------------------------------------
# A `prefect server start` on an empty SQLite file spends ~7-20 s (2 cores) running every Alembic
# migration. When tests of two or more modules start such servers, Prefect's own `prefect server
# database upgrade` builds the schema once, in the background from the end of collection (while
# the tests before them run); each server's home then gets a copy, and the server's start only
# checks the schema is at head. With one such module the server migrates its own database: the
# build would cost as much as it saves.

_DB_TEMPLATE: dict[str, object] = {}


def _start_db_template_build() -> None:
    if _DB_TEMPLATE:
        return
    from deployments.local_server import LocalServer

    home = Path(tempfile.mkdtemp(prefix="db-template-", dir=_TMP))
    log = open(home / "upgrade.log", "wb")  # noqa: SIM115 - closed when the build is awaited
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
        cwd=home,  # like LocalServer: not the repository root, whose prefect.toml would apply
        env=LocalServer(home).env(),  # the same settings and database URL a LocalServer gets
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    _DB_TEMPLATE.update(proc=proc, log=log, db=home / "prefect.db")


def pytest_collection_finish(session):
    users = {item.path for item in session.items if "seed_server_db" in item.fixturenames}
    if len(users) >= 2 and not session.config.option.collectonly:
        _start_db_template_build()


def pytest_sessionfinish(session, exitstatus):
    proc = _DB_TEMPLATE.get("proc")
    if isinstance(proc, subprocess.Popen) and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def server_db_template() -> Path | None:
    """A SQLite database migrated to head by ``prefect server database upgrade`` (no data), or
    None when no build was started (see above)."""
    if not _DB_TEMPLATE:
        return None
    proc, log, db = _DB_TEMPLATE["proc"], _DB_TEMPLATE["log"], _DB_TEMPLATE["db"]
    try:
        rc = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("prefect server database upgrade did not finish in 300 s")
    log.close()
    if rc != 0:
        text = (Path(db).parent / "upgrade.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"prefect server database upgrade failed (exit {rc}):\n{text}")
    return Path(db)


@pytest.fixture(scope="session")
def seed_server_db(server_db_template):
    """``seed(home)``: a copy of the migrated database where ``LocalServer(home)`` keeps its own
    (nothing when there is no template: that server then migrates a new database itself)."""

    def seed(home: Path) -> Path:
        home.mkdir(parents=True, exist_ok=True)
        if server_db_template is not None:
            shutil.copyfile(server_db_template, home / "prefect.db")
        return home

    return seed


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
