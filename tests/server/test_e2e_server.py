"""End to end against a real loopback ``prefect server start`` (SQLite): deploy, run, crash, resume.

One server for the module (own PREFECT_HOME and database), set up by ``python -m
deployments.setup`` exactly as an operator would (pool, limits, blocks, ``prefect deploy --all``,
one worker: a CPU worker with ``CUDA_VISIBLE_DEVICES=""`` here, one per GPU on a GPU host).

1. ``prefect deployment run gpu-baseline/gpu-baseline-cpu`` from the CLI completes and publishes
   the tiered report and the monitor summary.
2. A worker SIGKILLed in the middle of a run: the run stays *Running* until its heartbeat goes
   stale; self-hosted Prefect (3.8.8, 3.9.1) has no built-in zombie detection, so the test installs
   Prefect's documented "crash zombie flow runs" automation (a proactive trigger: no heartbeat
   nor terminal event within ``ZOMBIE_WITHIN_S`` after a heartbeat -> Crashed). The worker is
   started again (``deployments.setup`` again: idempotent, it restarts the dead worker only),
   ``prefect flow-run retry`` reschedules the crashed run, and it completes reusing the results
   its first attempt had finished (house cache policy). gpu-baseline's measurement is uncached by
   design, so this part runs ``tests/fixtures/counted_flow.py`` (four cached 3 s steps), deployed
   from a test-local prefect.yaml: the project's file stays as it is.
3. ``deployments.setup`` ran twice (its second run restarted the dead worker) and changed
   nothing: one schedule per deployment, the same limits, tags and pull step, one automation.

Worker logs, pid files, the flow runs' results and Prefect task results go to a temporary folder
(``tests/fixtures/e2e_support.py``); every process started is killed at the end, failures too.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from deployments.local_server import LocalServer
from tests.fixtures.e2e_support import (
    E2E,
    ROOT,
    TINY_BASELINE,
    artifacts,
    task_runs,
    wait_for_state,
)

pytestmark = pytest.mark.slow

#: Heartbeats come every 30 s (Prefect's minimum; prefect.toml's value). A run is declared
#: crashed when no heartbeat nor terminal event follows a heartbeat within this window: 40 s,
#: the least ``crash_automation`` accepts (one heartbeat and 10 s), so the test waits least.
ZOMBIE_WITHIN_S = 40
STEP_S = 3.0  # seconds per step of the counted flow (4 steps)
COUNTED_DEPLOYMENT = "counted-flow/counted-e2e"


def _counted_prefect_yaml(path: Path) -> Path:
    doc = {
        "name": "gpuflows-e2e",
        "prefect-version": "3.9.1",
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $GPUFLOWS_ROOT }}"
                }
            }
        ],
        "deployments": [
            {
                "name": "counted-e2e",
                "description": "test only: four cached slow steps (resume after a crash)",
                "entrypoint": "tests/fixtures/counted_flow.py:counted_flow",
                "work_pool": {"name": "gpu-pool", "work_queue_name": "default"},
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def create_zombie_automation(api_url: str, within_s: int = ZOMBIE_WITHIN_S) -> str:
    """The test's shorter window over the project's automation (setup installs the 90 s one)."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.automations import CRASH_AUTOMATION, crash_automation

    with temporary_settings({PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            for a in client.read_automations_by_name(CRASH_AUTOMATION):
                client.delete_automation(a.id)
            return str(client.create_automation(crash_automation(within_s)))


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, request, seed_server_db):
    base = tmp_path_factory.mktemp("e2e-server")
    t0 = time.monotonic()
    server = LocalServer(seed_server_db(base / "server-home"))
    request.addfinalizer(server.stop)  # registered before starting: runs on any failure
    server.start()
    ctx = E2E(base=base, api_url=server.api_url)
    request.addfinalizer(ctx.cleanup)
    out = ctx.setup()  # workers on
    assert "deployments of" in out and "worker " in out, out
    assert ctx.worker_pids(), f"setup started no worker:\n{out}"
    ctx.prefect(
        "--no-prompt",
        "deploy",
        "--all",
        "--prefect-file",
        str(_counted_prefect_yaml(base / "prefect.yaml")),
    )
    create_zombie_automation(ctx.api_url)
    ctx.timings = {"server start": server.starts[-1], "fixture total": time.monotonic() - t0}
    ctx.server = server
    ctx.setups = 1  # deployments.setup runs on this server so far
    return ctx


def test_cli_run_completes_with_tiered_artifacts(e2e, capsys):
    t0 = time.monotonic()
    run_id = e2e.trigger("gpu-baseline/gpu-baseline-cpu", {"params": TINY_BASELINE})
    fr, waited = wait_for_state(e2e.api_url, run_id, timeout=180)
    logs = "\n".join(p.read_text()[-3000:] for p in e2e.worker_dir.glob("*.log"))
    assert fr.state.type.value == "COMPLETED", f"{fr.state}\nworker log tail:\n{logs}"

    (report, *_) = artifacts(e2e.api_url, "gpu-baseline-report")
    assert report.flow_run_id is not None and str(report.flow_run_id) == run_id
    assert "Trust Tier: T1-" in report.data or "Trust Tier: T2-" in report.data, report.data
    assert "T1-" in report.description or "T2-" in report.description
    (summary, *_) = artifacts(e2e.api_url, "gpu-baseline-monitor-summary")
    assert str(summary.flow_run_id) == run_id
    # Results of the run went to the temporary folder, not the checkout's results/
    assert list((e2e.results_dir / "gpu-baseline").glob("*/report.json")), "no report.json"
    with capsys.disabled():
        print(
            f"\n  e2e setup {e2e.timings}; gpu-baseline-cpu via CLI: {waited:.1f} s to "
            f"COMPLETED ({time.monotonic() - t0:.1f} s incl. trigger)"
        )


def test_killed_worker_run_crashes_then_retry_resumes_without_lost_results(e2e, capsys):
    counter = e2e.base / "count.txt"
    run_id = e2e.trigger(
        COUNTED_DEPLOYMENT,
        {"counter": str(counter), "tag": f"e2e-{e2e.marker[:8]}", "seconds": STEP_S},
    )

    def executions() -> list[int]:
        return [int(x) for x in counter.read_text().split()] if counter.exists() else []

    def wait_steps(n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(executions()) < n:
            assert time.monotonic() < deadline, f"{n} steps not done in {timeout} s: {executions()}"
            time.sleep(0.1)

    # 1. SIGKILL the worker's process group inside step 1. The flow-run process runs in a
    #    session of its own (Prefect 3.8.8 and 3.9.1 process workers): it is orphaned, not killed, and
    #    finishes step 1 without any worker.
    wait_steps(1, 120)
    time.sleep(STEP_S / 4)
    assert e2e.kill_workers(), "no worker to kill"
    time.sleep(0.5)
    orphans = e2e.flow_run_pids()
    assert orphans, "the flow-run process died with its worker"
    wait_steps(2, 3 * STEP_S)

    # 2. Now lose the flow-run process too (host lost, OOM killer) inside step 2.
    time.sleep(STEP_S / 4)
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    t_kill = time.monotonic()
    done_before = executions()
    assert done_before == [0, 1], done_before
    time.sleep(0.5)
    assert not e2e.flow_run_pids()
    (state_now, _) = wait_for_state(e2e.api_url, run_id, {"RUNNING", "CRASHED"}, timeout=5)
    assert state_now.state.type.value == "RUNNING", "Prefect cannot know yet"

    # Start the worker again meanwhile: setup is idempotent and restarts only the dead worker.
    out = e2e.setup()
    e2e.setups += 1
    assert "started" in out, out

    # 3. The heartbeat goes stale: the zombie automation marks the run Crashed.
    crashed, _ = wait_for_state(e2e.api_url, run_id, timeout=ZOMBIE_WITHIN_S + 90)
    crash_s = time.monotonic() - t_kill
    assert crashed.state.type.value == "CRASHED", crashed.state

    # 4. Retry from the CLI: the same flow run is rescheduled and a worker picks it up.
    e2e.prefect("flow-run", "retry", run_id)
    t_retry = time.monotonic()
    final, _ = wait_for_state(e2e.api_url, run_id, timeout=150)
    logs = "\n".join(p.read_text()[-3000:] for p in e2e.worker_dir.glob("*.log"))
    assert final.state.type.value == "COMPLETED", f"{final.state}\nworker logs:\n{logs}"
    resume_s = time.monotonic() - t_retry

    after = executions()
    assert sorted(after) == [0, 1, 2, 3], f"each step must run exactly once overall: {after}"
    runs = task_runs(e2e.api_url, run_id)
    cached = {r["name"] for r in runs if (r.get("state") or {}).get("name") == "Cached"}
    assert {"step-0", "step-1"} <= cached, [(r["name"], r["state"]["name"]) for r in runs]
    with capsys.disabled():
        print(
            f"\n  crash: worker group SIGKILLed in step 1 (the orphaned flow run went on), flow-run "
            f"process SIGKILLed in step 2 after steps {done_before}; Crashed {crash_s:.0f} s "
            f"later (automation window {ZOMBIE_WITHIN_S} s, heartbeat 30 s); retry completed "
            f"in {resume_s:.0f} s re-running only steps {after[len(done_before) :]}"
        )


def test_setup_twice_leaves_one_of_each(e2e):
    """``deployments.setup`` (blocks, ``prefect deploy --all`` for real, the automation) ran a
    second time on this server (the kill test's worker restart; here when that test did not
    run): it succeeded and changed nothing: one schedule, not one per run; the limits, tags and
    pull step the first run stored; one crash automation."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from deployments.automations import CRASH_AUTOMATION
    from deployments.setup import pool_concurrency
    from gpuflows.core.hardware.devices import discover

    if e2e.setups < 2:
        e2e.setup()
        e2e.setups += 1
    with temporary_settings({PREFECT_API_URL: e2e.api_url}):
        with get_client(sync_client=True) as client:
            pool = client.read_work_pool("gpu-pool")
            dep = client.read_deployment_by_name("gpu-baseline/gpu-baseline")
            cpu = client.read_deployment_by_name("gpu-baseline/gpu-baseline-cpu")
            block_types = {bt.slug for bt in client.read_block_types()}
            automations = client.read_automations_by_name(CRASH_AUTOMATION)
    # one slot per GPU worker of this host, or 1 for the CPU worker (setup's own discovery)
    assert pool.type == "process" and pool.concurrency_limit == pool_concurrency(discover())
    assert dep.work_pool_name == "gpu-pool" and dep.work_queue_name == "default"
    # The deployment limit is stored as a global concurrency limit (`concurrency_limit` on the
    # response is deprecated and always None).
    assert dep.global_concurrency_limit.limit == 1
    assert cpu.global_concurrency_limit.limit == 1
    assert dep.parameters["params"]["device"] == "auto"
    assert cpu.parameters["params"]["device"] == "cpu"
    assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * 1"]  # one, not one per run
    assert cpu.schedules == []
    assert sorted(dep.tags) == ["gpu", "gpuflows"]
    (step,) = dep.pull_steps
    # GPUFLOWS_ROOT is set for the deploy, so this checkout's path is stored.
    assert step["deployments.pull.checkout_directory"]["directory"] == str(ROOT)
    assert "gpuflows-gpu-pool" in block_types
    assert len(automations) == 1, automations
