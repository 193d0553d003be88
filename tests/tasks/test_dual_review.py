"""T3 end to end on a real (temporary) Prefect server: a deterministic result reproduced by
digest, then two reviewers with distinct Ed25519 keys through Prefect's pause-for-input. One key
twice (under any name), an unknown key and a tampered comment are refused; a rejection blocks."""

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
from gpuflows.core.evidence.signing import generate_keypair, sign_review
from gpuflows.core.evidence.trust import Evidence, TrustPolicy, assess, reproduce_by_digest
from gpuflows.core.hardware.devices import choose_device
from tasks.review import collect_reviews, give_review

KEYS = {name: generate_keypair() for name in ("alice", "bob")}
POLICY = TrustPolicy(reviewers={name: pub for name, (_, pub) in KEYS.items()})
PROVENANCE = DataProvenance(
    name="arange", kind="operands", origin="numpy.arange(100)", version="1", responsible="tests"
)


@flow(name="review-demo")
def review_demo(run: str, review: bool, max_rounds: int | None = None) -> dict:
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
        reproduction=reproduce_by_digest(digest, prev.digest, prev.run).model_copy(
            update=prev.reference_fields()
        )
        if prev
        else None,
    )
    from prefect.runtime import flow_run

    ev.flow_run_id, ev.result_digest = str(flow_run.get_id()), digest
    if review:
        ev.reviews = collect_reviews(
            POLICY.min_reviewers,
            timeout_s=120,
            poll_interval_s=1,
            policy=POLICY,
            result_digest=digest,
            max_rounds=max_rounds,
        )
    hist.append(
        {"n": 100},
        "cpu",
        RunRecord(
            run=run,
            git_commit=lock.git.commit,
            git_dirty=lock.git.dirty,
            data_digest=lock.dataset.digest,
            digest=digest,
        ),
    )
    a = assess(ev, POLICY)
    return {
        "tier": a.tier.value,
        "missing": a.missing_for_next,
        "reviews": [r.reviewer for r in ev.reviews],
        "digest": digest,
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


DIGEST = array_digest(np.cumsum(np.arange(100, dtype=np.float64)))


def _review(run_id: str, name: str, key_of: str | None, *, approve=True, comment="", tamper=None):
    """Give a review as ``name`` signed with ``key_of``'s key (None: unsigned)."""
    sig = ""
    if key_of is not None:
        priv = KEYS[key_of][0] if key_of in KEYS else generate_keypair()[0]
        sig = sign_review(
            priv, flow_run_id=run_id, result_digest=DIGEST, approved=approve, comment=comment
        )
    give_review(
        run_id,
        reviewer=name,
        approve=approve,
        comment=comment if tamper is None else tamper,
        result_digest=DIGEST,
        signature=sig,
    )
    time.sleep(1.5)


def test_t3_needs_reproduction_and_two_distinct_signed_keys(prefect_harness):
    first = review_demo(run="r1", review=False)
    assert first["tier"] == "T2-Internal", first["missing"]
    assert first["digest"] == DIGEST
    assert any("no independent re-run" in m for m in first["missing"])

    t, result = _run_in_thread(run="r2", review=True)
    run_id = _wait_paused()
    _review(run_id, "alice", "alice", comment="checked the digest")
    _review(_wait_paused(), "ALICE", "alice")  # same person again: ignored
    _review(_wait_paused(), "bob", "alice")  # one person typing a second name: refused
    _review(_wait_paused(), "bob", "bob", comment="reproduced")
    t.join(timeout=120)
    assert result["reviews"] == ["alice", "bob"]
    assert result["tier"] == "T3-Verified" and result["missing"] == []


def test_unknown_key_tampered_comment_and_unsigned_are_not_t3(prefect_harness):
    review_demo(run="r5", review=False)
    t, result = _run_in_thread(run="r6", review=True, max_rounds=4)
    run_id = _wait_paused()
    _review(run_id, "alice", "alice", comment="fine")
    _review(_wait_paused(), "mallory", "mallory")  # a key the policy does not name
    _review(_wait_paused(), "bob", "bob", comment="fine", tamper="fine, and more")  # tampered
    _review(_wait_paused(), "bob", None)  # unsigned
    t.join(timeout=120)
    assert result["reviews"] == ["alice"]
    assert result["tier"] == "T2-Internal"
    assert any("1 of 2 distinct approvals" in m for m in result["missing"]), result


def test_a_rejection_keeps_the_result_at_t2(prefect_harness):
    review_demo(run="r3", review=False)
    t, result = _run_in_thread(run="r4", review=True)
    _review(_wait_paused(), "carol", None, approve=False, comment="digest not what I expected")
    t.join(timeout=120)
    assert result["tier"] == "T2-Internal"
    assert any("rejected by carol" in m for m in result["missing"])


def test_cli_sign_prints_the_signature_the_form_accepts(tmp_path, capsys):
    from gpuflows.core.evidence.signing import review_payload, verify_signature
    from tasks.review import main

    key = tmp_path / "id_ed25519"
    key.write_text(KEYS["bob"][0])
    argv = ["sign", "run-9", "--key", str(key), "--result-digest", "d9", "--comment", "ok"]
    assert main(argv) == 0
    sig = capsys.readouterr().out.strip()
    assert verify_signature(KEYS["bob"][1], sig, review_payload("run-9", "d9", True, "ok"))
    assert not verify_signature(KEYS["bob"][1], sig, review_payload("run-9", "d9", True, "ok!"))
    assert main(["sign", "run-9", "--key", str(tmp_path / "none"), "--result-digest", "d"]) == 2
