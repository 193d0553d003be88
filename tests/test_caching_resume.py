"""House cache policy: re-runs execute nothing finished; a SIGKILLed run resumes where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from prefect.cache_policies import INPUTS, TASK_SOURCE

from tasks.caching import CodeVersion, DigestedInputs, house_cache_policy

ROOT = Path(__file__).resolve().parent.parent
FLOW = ROOT / "tests" / "fixtures" / "counted_flow.py"


def executions(counter: Path) -> list[int]:
    return [int(x) for x in counter.read_text().split()] if counter.exists() else []


def test_rerun_with_same_parameters_executes_nothing(prefect_harness, tmp_path):
    sys.path.insert(0, str(FLOW.parent))
    from counted_flow import counted_flow

    counter = tmp_path / "count.txt"
    first = counted_flow(str(counter), "rerun")
    assert executions(counter) == [0, 1, 2, 3]
    second = counted_flow(str(counter), "rerun")
    assert executions(counter) == [0, 1, 2, 3], "a finished task ran again"
    assert first == second
    counted_flow(str(counter), "other-data")  # different array content -> new keys
    assert executions(counter) == [0, 1, 2, 3] * 2


def test_sigkilled_run_redoes_only_unfinished_tasks(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL, PREFECT_RESULTS_LOCAL_STORAGE_PATH

    counter = tmp_path / "count.txt"
    env = dict(
        os.environ,
        PREFECT_API_URL=PREFECT_API_URL.value(),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value()),
        PYTHONPATH=str(ROOT),
    )
    cmd = [sys.executable, str(FLOW), str(counter), "killed", "1.5"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while len(executions(counter)) < 2:
            assert proc.poll() is None, "flow ended before it could be killed"
            assert time.monotonic() < deadline, "flow too slow to reach step 2"
            time.sleep(0.05)
        # Step 1 logged; its result is persisted right after. Kill while step 2 is mid-work
        # (each step sleeps 1.5 s before logging).
        time.sleep(0.7)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = executions(counter)
    assert done_before == [0, 1], done_before
    subprocess.run(
        cmd,
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    after = executions(counter)
    assert sorted(after) == [0, 1, 2, 3], f"each step must run exactly once overall: {after}"
    assert Path(str(counter) + ".done").exists()


class _Ctx:
    class task:  # noqa: N801 - mimics TaskRunContext.task for TASK_SOURCE
        fn = staticmethod(lambda: None)


def test_arrays_are_keyed_by_content_not_identity():
    p = DigestedInputs()
    a = np.arange(10.0)
    key = p.compute_key(None, {"x": a, "m": 3}, {})
    assert key == p.compute_key(None, {"x": a.copy(), "m": 3}, {})
    assert key != p.compute_key(None, {"x": a.astype(np.float32), "m": 3}, {})
    assert key != p.compute_key(None, {"x": a, "m": 4}, {})
    assert key == p.compute_key(None, {"x": [a][0], "m": 3}, {})
    assert p.compute_key(None, {"xs": [a, a + 1]}, {}) != p.compute_key(
        None, {"xs": [a, a + 2]}, {}
    )


def test_version_constant_changes_the_key():
    assert CodeVersion(version="1").compute_key(None, {}, {}) != CodeVersion(
        version="2"
    ).compute_key(None, {}, {})


def test_house_policy_is_inputs_source_and_version():
    pol = house_cache_policy(exclude=("cb",))

    def flat(p):
        return [q for sub in p.policies for q in flat(sub)] if hasattr(p, "policies") else [p]

    parts = flat(pol)
    names = {type(p).__name__ for p in parts}
    assert all(p.key_storage is None for p in parts)
    assert names == {"DigestedInputs", "TaskSource", "CodeVersion"}
    assert "RunId" not in names and INPUTS is not pol and TASK_SOURCE in parts
