"""T3 end to end: a deterministic result reproduced by digest, then two distinct reviewers
through Prefect's pause-for-input (the same reviewer twice counts once; a rejection blocks)."""

from __future__ import annotations

import threading
import time

import numpy as np
from prefect import flow

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.digest import array_digest
from gpuflows.core.evidence.envlock import DatasetRef, GitInfo, build_lock
from gpuflows.core.evidence.history import RunHistory, RunRecord
from gpuflows.core.evidence.provenance import DataProvenance
from gpuflows.core.evidence.trust import Evidence, TrustPolicy, assess, reproduce_by_digest
from gpuflows.core.hardware.devices import choose_device
from tasks.review import collect_reviews, give_review

POLICY = TrustPolicy()
PROVENANCE = DataProvenance(
    name="arange", kind="operands", origin="numpy.arange(100)", version="1", responsible="tests"
)


@flow(name="review-demo")
def review_demo(run: str, review: bool) -> dict:
    data = np.arange(100, dtype=np.float64)
    out = np.cumsum(data)  # deterministic output: reproduced by exact digest
    digest = array_digest(out)
    lock = build_lock(
        seed=1,
        device=choose_device("cpu"),
        dataset=DatasetRef(name="arange", version="1", digest=array_digest(data), synthetic=False),
    )
    # the shared checkout may be dirty; review mechanics are tested on a clean-tree lock
    lock.git = GitInfo(commit=lock.git.commit or "0" * 40, dirty=False)
    hist = RunHistory("review-demo")
    prev = hist.last({"n": 100}, "cpu", exclude_run=run)
    ev = Evidence(
        synthetic_data=False,
        data_provenance=PROVENANCE,
        integrity=[CheckResult(name="finite", passed=bool(np.isfinite(out).all()), reason="")],
        lock=lock,
        sample_size=100,
        measured_device="cpu",
        target_device="cpu",
        reproduction=reproduce_by_digest(digest, prev.digest, prev.run) if prev else None,
    )
    if review:
        ev.reviews = collect_reviews(POLICY.min_reviewers, timeout_s=120, poll_interval_s=1)
    hist.append({"n": 100}, "cpu", RunRecord(run=run, git_commit=lock.git.commit, digest=digest))
    a = assess(ev, POLICY)
    return {
        "tier": a.tier.value,
        "missing": a.missing_for_next,
        "reviews": [r.reviewer for r in ev.reviews],
    }


def _paused_run_ids() -> list[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as c:
        resp = c.request(
            "POST",
            "/flow_runs/filter",
            json={
                "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}},
                "limit": 10,
                "offset": 0,
                "sort": "EXPECTED_START_TIME_DESC",
            },
        )
    return [r["id"] for r in resp.json()]


def _wait_paused(timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ids := _paused_run_ids():
            return ids[0]
        time.sleep(0.3)
    raise AssertionError("flow never paused for review")


def _run_in_thread(**kw) -> tuple[threading.Thread, dict]:
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(review_demo(**kw)))
    t.start()
    return t, result


def test_t3_needs_reproduction_and_two_distinct_reviewers(prefect_harness):
    first = review_demo(run="r1", review=False)
    assert first["tier"] == "T2-Internal"
    assert any("no independent re-run" in m for m in first["missing"])

    t, result = _run_in_thread(run="r2", review=True)
    run_id = _wait_paused()
    give_review(run_id, reviewer="alice", approve=True, comment="checked the digest")
    time.sleep(1.5)
    give_review(_wait_paused(), reviewer="ALICE", approve=True)  # same person: refused
    time.sleep(1.5)
    give_review(_wait_paused(), reviewer="bob", approve=True)
    t.join(timeout=120)
    assert result["reviews"] == ["alice", "bob"]
    assert result["tier"] == "T3-Verified" and result["missing"] == []


def test_a_rejection_keeps_the_result_at_t2(prefect_harness):
    review_demo(run="r3", review=False)
    t, result = _run_in_thread(run="r4", review=True)
    give_review(
        _wait_paused(), reviewer="carol", approve=False, comment="digest not what I expected"
    )
    t.join(timeout=120)
    assert result["tier"] == "T2-Internal"
    assert any("rejected by carol" in m for m in result["missing"])
