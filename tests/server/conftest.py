"""Real-server tests: the lease-recovery scenarios start in the background at the first of them.

Most of ``tests/server/test_lease_recovery.py``'s ~95 s is spent waiting for a SIGKILLed
holder's 60 s lease (Prefect's minimum) to expire on two idle servers. ``bench.lease_recovery.run``
therefore starts in a thread at the first test of this folder (when the lease test is among the
selected tests), on servers, ports and limit names of its own; the wait overlaps the tests that
run before it, and the lease test then reads the scenarios and asserts on them. Run alone, the
lease test starts it itself and waits, as before.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

LEASE_TEST_FILE = "test_lease_recovery.py"
#: longest wait for one scenario's slots (from its holder's SIGKILL)
RECOVERY_BOUND_S = 150.0
# Limit names no other test uses: Prefect keeps one acquisition service per limit name per
# process, bound to the API URL it first saw (a harness test on vram-gpu0 would capture it).
GPU_A, GPU_B = 70, 71
#: the repossessor looks for expired leases every 1 s instead of 15 s: the wait is the lease's
FAST_REPOSSESSOR = {"PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "1"}


class LeaseRecoveryJob:
    """``bench.lease_recovery.run`` of the two file-lease scenarios, in a daemon thread."""

    def __init__(self, workdir: Path, seed) -> None:
        from bench.lease_recovery import Scenario

        self.workdir = workdir
        self.cap_s = RECOVERY_BOUND_S
        self.scenarios = [
            Scenario("filesystem", gpu=GPU_A, server_env=FAST_REPOSSESSOR),
            Scenario("filesystem-restart", gpu=GPU_B, restart=True, server_env=FAST_REPOSSESSOR),
        ]
        for sc in self.scenarios:  # run() keeps each server's home in workdir / "<name>-server"
            seed(workdir / f"{sc.name}-server")
        self.lines: list[str] = []
        self.error: BaseException | None = None
        self.started_at = time.monotonic()
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="lease-recovery", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from bench.lease_recovery import run

        try:
            run(self.scenarios, workdir=self.workdir, cap_s=self.cap_s, log=self.lines.append)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def result(self, timeout: float = 600.0) -> list:
        """The scenarios once run() has returned (its servers and holders are gone by then)."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"lease-recovery scenarios still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.scenarios

    def stop(self) -> None:
        """Kill what is still running (the lease test did not run: -x, -k, a failure first)."""
        if not self._thread.is_alive():
            return
        from deployments.local_server import kill_group

        for sc in self.scenarios:
            if sc.holder is not None:
                kill_group(sc.holder)
            if sc.server is not None:
                sc.server.stop()
        self._thread.join(5)


_JOB: dict[str, LeaseRecoveryJob] = {}


@pytest.fixture(scope="session", autouse=True)
def _lease_recovery_in_background(request, tmp_path_factory, seed_server_db):
    """Starts the job at the first test of this folder when the lease test is selected."""
    if any(item.path.name == LEASE_TEST_FILE for item in request.session.items):
        _JOB["job"] = LeaseRecoveryJob(tmp_path_factory.mktemp("lease-recovery"), seed_server_db)
    yield
    if "job" in _JOB:
        _JOB.pop("job").stop()


@pytest.fixture
def lease_recovery(_lease_recovery_in_background) -> LeaseRecoveryJob:
    """The lease-recovery job started for this session."""
    return _JOB["job"]
