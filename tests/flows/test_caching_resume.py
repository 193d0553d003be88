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

import tasks.caching as caching
from tasks.caching import (
    CodeVersion,
    DigestedInputs,
    PackageSource,
    house_cache_policy,
    source_digest,
    task_packages,
)

ROOT = Path(__file__).resolve().parents[2]
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
    assert names == {"DigestedInputs", "TaskSource", "PackageSource", "CodeVersion"}
    assert "RunId" not in names and INPUTS is not pol and TASK_SOURCE in parts


# --- issue 11, attack 7: the key covers the code the task calls ---------------------------------


def test_task_packages_cover_the_core_and_the_pipeline_the_task_calls():
    import tasks.rqa

    (fn,) = [
        v.fn for v in vars(tasks.rqa).values() if getattr(v, "fn", None) and hasattr(v, "submit")
    ][:1]
    pkgs = task_packages(fn)
    assert "gpuflows.core" in pkgs and "gpuflows.pipelines.rqa_sweep" in pkgs
    assert not any(p.startswith("gpuflows.pipelines.two_stage") for p in pkgs)


def test_a_change_to_compute_code_changes_the_source_digest(tmp_path, monkeypatch):
    import shutil

    src = ROOT / "gpuflows" / "pipelines" / "rqa_sweep"
    copy = tmp_path / "rqa_copy_for_digest"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(tmp_path))
    source_digest.cache_clear()
    # an unchanged tree: the same digest as the original (paths relative, bytes equal)
    assert source_digest("rqa_copy_for_digest") == source_digest("gpuflows.pipelines.rqa_sweep")
    before = source_digest("rqa_copy_for_digest")
    measures = copy / "measures.py"
    measures.write_text(measures.read_text() + "\n# RR doubled\n")
    assert source_digest("rqa_copy_for_digest") == before, "computed once per process"
    source_digest.cache_clear()
    assert source_digest("rqa_copy_for_digest") != before
    source_digest.cache_clear()


def test_package_source_key_follows_the_digest(monkeypatch):
    pol = PackageSource(packages=("gpuflows.core",))
    key = pol.compute_key(None, {}, {})
    assert key == pol.compute_key(None, {}, {})
    monkeypatch.setattr(caching, "source_digest", lambda p: "blake2b:" + "0" * 32)
    assert pol.compute_key(None, {}, {}) != key


def test_committed_code_change_recomputes_and_unchanged_tree_reuses(
    prefect_harness, tmp_path, monkeypatch
):
    sys.path.insert(0, str(FLOW.parent))
    from counted_flow import counted_flow

    counter = tmp_path / "count.txt"
    counted_flow(str(counter), "code-change")
    counted_flow(str(counter), "code-change")
    assert executions(counter) == [0, 1, 2, 3], "an unchanged tree must reuse every result"
    real = caching.source_digest
    monkeypatch.setattr(
        caching, "source_digest", lambda p: real(p) + ("-edited" if p == "gpuflows.core" else "")
    )
    counted_flow(str(counter), "code-change")
    assert executions(counter) == [0, 1, 2, 3] * 2, "changed core code must recompute"


def test_a_corrupt_cache_file_is_recomputed_with_a_warning(prefect_harness, tmp_path):
    import logging

    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH

    sys.path.insert(0, str(FLOW.parent))
    from counted_flow import counted_flow

    store = Path(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value()).expanduser()
    before = set(store.iterdir()) if store.exists() else set()
    counter = tmp_path / "count.txt"
    first = counted_flow(str(counter), "corrupt-this-cache-entry")
    from prefect.results import ResultRecord

    def step_result(f: Path) -> bool:  # a step's result, not the flow's
        try:
            value = ResultRecord.deserialize(f.read_bytes()).result
        except ValueError:
            return False
        return isinstance(value, dict) and "sum" in value

    new = [f for f in sorted(set(store.iterdir()) - before) if step_result(f)]
    assert len(new) == 4, new
    new[0].write_bytes(new[0].read_bytes()[:20])  # truncated
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("gpuflows.cache").addHandler(handler)
    try:
        second = counted_flow(str(counter), "corrupt-this-cache-entry")
    finally:
        logging.getLogger("gpuflows.cache").removeHandler(handler)
    assert second == first
    assert len(executions(counter)) == 5, "exactly the corrupt step ran again"
    assert any("is corrupt" in m and "recomputing" in m for m in seen), seen
    assert Path(str(new[0]) + ".corrupt").exists()
