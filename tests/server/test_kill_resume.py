"""A SIGKILLed CLI run ends Crashed, the next identical run resumes it, and so does the retry.

No deployment, no worker, no automation window to wait for: a flow started from the command line
against a real loopback server (``tests/fixtures/guarded_flow.py``: four cached 4 s steps behind
``tasks.crash_guard.crash_stale_runs``) is SIGKILLed inside step 1.

1. It stays *Running* (Prefect cannot know).
2. Once its heartbeat is older than ``GPUFLOWS_STALE_RUN_S`` (15 s here; 90 s by default), the
   next identical run marks it *Crashed* at its start and reuses its finished step (Cached).
   No other run of the flow is alive here, so a limit under the 30 s heartbeat interval (which
   would crash live runs in production) only shortens the wait; the check is the same.
3. The README's retry command, ``prefect flow-run retry <id> --entrypoint <file>:<flow>``, runs
   the crashed run again to *Completed* with every finished step Cached: each step ran once.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from deployments.local_server import LocalServer
from tests.fixtures.e2e_support import E2E, read_flow_run, task_runs, wait_for_state

pytestmark = pytest.mark.slow

SILENCE_S = 15
STEP_S = 3.0
FLOW = "tests/fixtures/guarded_flow.py"


@pytest.fixture
def ctx(tmp_path, request, seed_server_db):
    server = LocalServer(seed_server_db(tmp_path / "server-home"))
    request.addfinalizer(server.stop)
    server.start()
    e = E2E(
        base=tmp_path, api_url=server.api_url, extra_env={"GPUFLOWS_STALE_RUN_S": str(SILENCE_S)}
    )
    request.addfinalizer(e.cleanup)
    return e


def _cached(api_url: str, run_id: str) -> set[str]:
    return {
        r["name"]
        for r in task_runs(api_url, run_id)
        if (r.get("state") or {}).get("name") == "Cached"
    }


def test_sigkilled_cli_run_is_crashed_by_the_next_run_and_retry_resumes_it(ctx, capsys):
    counter = ctx.base / "count.txt"
    args = [FLOW, str(counter), "kill-test", str(STEP_S)]

    def executions() -> list[int]:
        return [int(x) for x in counter.read_text().split()] if counter.exists() else []

    log = ctx.base / "first.log"
    proc = ctx.spawn(args, log)
    deadline = time.monotonic() + 180
    while not executions():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"step 0 not done:\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    time.sleep(STEP_S / 4)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    t_kill = time.monotonic()
    first = re.search(r"FLOW-RUN-ID (\S+)", log.read_text()).group(1)
    assert executions() == [0]
    (first_dir,) = (ctx.results_dir / "guarded-flow").iterdir()  # empty: killed before writing
    assert read_flow_run(ctx.api_url, first).state.type.value == "RUNNING"

    # 2. The next identical run, once the heartbeat is stale: a bounded wait, then it says so.
    time.sleep(max(0.0, SILENCE_S + 2 - (time.monotonic() - t_kill)))
    out = ctx.run(args, timeout=240)
    second = re.search(r"FLOW-RUN-ID (\S+)", out).group(1)
    assert f"CRASHED {first}" in out, out[-3000:]
    crashed = read_flow_run(ctx.api_url, first)
    crash_s = time.monotonic() - t_kill
    assert crashed.state.type.value == "CRASHED", crashed.state
    assert "no heartbeat" in crashed.state.message
    assert not first_dir.exists(), "the crashed run's empty results folder is still there"
    assert "step-0" in _cached(ctx.api_url, second)
    assert executions() == [0, 1, 2, 3], "the second run redid a finished step"

    # 3. The README's retry command resumes the crashed run itself.
    ctx.prefect("flow-run", "retry", first, "--entrypoint", f"{FLOW}:guarded_flow", timeout=240)
    final, _ = wait_for_state(ctx.api_url, first, timeout=60)
    assert final.state.type.value == "COMPLETED", final.state
    assert {"step-0", "step-1", "step-2", "step-3"} <= _cached(ctx.api_url, first)
    assert executions() == [0, 1, 2, 3], "each step must run exactly once overall"
    with capsys.disabled():
        print(
            f"\n  kill: SIGKILL in step 1; Crashed by the next run {crash_s:.0f} s after the kill "
            f"(silence limit {SILENCE_S} s); retry of the crashed run: 4 of 4 steps Cached"
        )
