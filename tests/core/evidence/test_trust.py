"""Trust Tier rules (DESIGN.md "Trust Tiers"): pure tests of gpuflows.core.evidence.trust, no Prefect.

Every test starts from one fully-T2 piece of evidence and breaks one thing at a time, so a
test failing names exactly the rule that moved.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from pydantic import ValidationError

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import DatasetRef, EnvironmentLock, GitInfo
from gpuflows.core.evidence.provenance import DataProvenance
from gpuflows.core.evidence.signing import generate_keypair, sign_review
from gpuflows.core.evidence.trust import (
    Evidence,
    ModelRef,
    Reproduction,
    Review,
    Tier,
    TrustAssessment,
    TrustPolicy,
    render_trust_markdown,
    reproduce_by_digest,
    reproduce_within_tolerance,
)
from gpuflows.core.evidence.trust import assess as _assess
from gpuflows.core.hardware.devices import Discovery, GpuInfo, choose_device

GIB = 1024**3
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32
POLICY_MIN = TrustPolicy().min_sample_size
PROVENANCE = DataProvenance(
    name="gaze", origin="clinic study 17", version="1.0", responsible="j.doe@lab.example"
)
WEIGHTS_OK = CheckResult(
    name="weights_check", passed=True, numbers={"verdict": "trained"}, reason="norms moved"
)


def real_model(name: str = "reranker", source: str = "hf:org/reranker@v1") -> ModelRef:
    return ModelRef(name=name, source=source, synthetic=False, weights_check=WEIGHTS_OK)


# --- builders ---------------------------------------------------------------------------------


def _gpu_choice():
    disc = Discovery(
        method="nvml",
        gpus=[GpuInfo(index=0, nvml_index=0, name="Test GPU", total_memory_bytes=80 * GIB)],
    )
    return choose_device("cuda:0", disc)


def _cpu_choice():
    return choose_device("cpu", Discovery(method="none", reason="test"))


def make_lock(**overrides: Any) -> EnvironmentLock:
    """A complete lock, built directly (no git, no package lookups)."""
    fields: dict[str, Any] = {
        "seed": 1234,
        "seeded": ["python", "numpy", "torch"],
        "git": GitInfo(commit=FAKE_COMMIT, dirty=False),
        "dataset": DatasetRef(name="gaze", version="1.0", digest=DIGEST, synthetic=False),
        "packages": {"prefect": "3.8.8", "torch": "2.4.0", "numpy": "2.0.0"},
        "device": _gpu_choice(),
    }
    fields.update(overrides)
    return EnvironmentLock(**fields)


def make_evidence(**overrides: Any) -> Evidence:
    """Evidence that meets every T2 rule and nothing of T3."""
    fields: dict[str, Any] = {
        "synthetic_data": False,
        "data_provenance": PROVENANCE,
        "model": real_model(),
        "lock": make_lock(),
        "sample_size": POLICY_MIN + 470,
        "integrity": [
            CheckResult(name="visual_ablation", passed=True, reason="drop 0.05 > 0.01"),
            CheckResult(name="text_ablation", passed=True, reason="drop 0.08 > 0.01"),
        ],
        "measured_device": "cuda:0",
        "target_device": "cuda",
    }
    fields.update(overrides)
    r = fields.get("reproduction")
    if r is not None and r.reference_commit is None:  # an independent re-run of this evidence
        fields["reproduction"] = r.model_copy(update=independent(fields["lock"]))
    return Evidence(**fields)


def independent(lock: EnvironmentLock) -> dict[str, Any]:
    """Reproduction fields of a distinct run on the same commit, clean tree, same data."""
    return {
        "reference_commit": lock.git.commit,
        "reference_dirty": False,
        "reference_data_digest": lock.dataset.digest if lock.dataset else None,
    }


def approvals(*names: str) -> list[Review]:
    """Approvals signed with each name's key (one key per person, case-insensitive)."""
    return [
        Review(
            reviewer=n,
            approved=True,
            signature=sign_review(_key(n)[0], flow_run_id="", result_digest="", approved=True),
        )
        for n in names
    ]


_KEYS: dict[str, tuple[str, str]] = {}


def _key(name: str) -> tuple[str, str]:
    return _KEYS.setdefault(name.strip().casefold(), generate_keypair())


for _n in ("alice", "bob", "carol", "dave", "a", "b"):
    _key(_n)
REVIEWERS = {n: k[1] for n, k in _KEYS.items()}


def TP(**kw: Any) -> TrustPolicy:  # noqa: N802 - reads as the policy it builds
    """A policy naming the test reviewers' public keys (signed approvals count)."""
    return TrustPolicy(reviewers=REVIEWERS, **kw)


def assess(ev: Evidence, policy: TrustPolicy | None = None) -> TrustAssessment:
    return _assess(ev, policy or TP())


def digest_repro(matched: bool = True) -> Reproduction:
    return Reproduction(
        method="digest",
        reference="run-42",
        matched=matched,
        reference_commit=FAKE_COMMIT,
        reference_dirty=False,
        reference_data_digest=DIGEST,
    )


def t3_extras() -> dict[str, Any]:
    return {"reproduction": digest_repro(), "reviews": approvals("alice", "bob")}


def check(a: TrustAssessment, name: str) -> CheckResult:
    (c,) = [c for c in a.checks if c.name == name]
    return c


def missing_names(a: TrustAssessment) -> list[str]:
    """The check names in ``missing_for_next`` (entries are 'name: reason')."""
    return [m.split(": ", 1)[0] for m in a.missing_for_next]


# --- T2 baseline ------------------------------------------------------------------------------


def test_full_t2_evidence_is_t2_and_names_what_t3_needs():
    a = assess(make_evidence())
    assert a.tier is Tier.T2
    assert missing_names(a) == ["reproduced", "dual_review"]
    assert all(c.passed for c in a.checks if c.name not in ("reproduced", "dual_review"))


def test_lock_builder_is_complete():
    assert make_lock().missing() == []


# --- each T1 cause alone ----------------------------------------------------------------------

T1_CAUSES: dict[str, tuple[dict[str, Any], str]] = {
    "synthetic data": ({"synthetic_data": True}, "real_data"),
    "synthetic data in the lock's dataset": (
        {
            "lock": make_lock(
                dataset=DatasetRef(name="sim", version="0", digest=DIGEST, synthetic=True)
            )
        },
        "real_data",
    ),
    "synthetic model": (
        {"model": ModelRef(name="toy", source="random-init", synthetic=True)},
        "real_model",
    ),
    "lock without seed": ({"lock": make_lock(seed=None)}, "environment_lock"),
    "lock without commit": (
        {"lock": make_lock(git=GitInfo(commit=None, dirty=False, error="no .git"))},
        "environment_lock",
    ),
    "lock with empty commit": (
        {"lock": make_lock(git=GitInfo(commit="", dirty=False))},
        "environment_lock",
    ),
    "lock without dataset": ({"lock": make_lock(dataset=None)}, "environment_lock"),
    "lock with empty dataset digest": (
        {"lock": make_lock(dataset=DatasetRef(name="d", version="1", digest="", synthetic=False))},
        "environment_lock",
    ),
    "lock without device": ({"lock": make_lock(device=None)}, "environment_lock"),
    "lock without torch version": (
        {"lock": make_lock(packages={"prefect": "3.8.8", "torch": None, "numpy": "2.0.0"})},
        "environment_lock",
    ),
    "lock without numpy entry": (
        {"lock": make_lock(packages={"prefect": "3.8.8", "torch": "2.4.0"})},
        "environment_lock",
    ),
    "lock without prefect version": (
        {"lock": make_lock(packages={"prefect": "", "torch": "2.4.0", "numpy": "2.0.0"})},
        "environment_lock",
    ),
    "dirty tree": (
        {"lock": make_lock(git=GitInfo(commit=FAKE_COMMIT, dirty=True))},
        "environment_lock",
    ),
    "sample one below minimum": ({"sample_size": POLICY_MIN - 1}, "sample_size"),
    "empty sample": ({"sample_size": 0}, "sample_size"),
    "failed integrity check": (
        {
            "integrity": [
                CheckResult(name="visual_ablation", passed=True, reason="ok"),
                CheckResult(name="text_ablation", passed=False, reason="drop 0.001 <= 0.01"),
            ]
        },
        "integrity",
    ),
    "cpu fallback for a cuda target": (
        {"measured_device": "cpu", "target_device": "cuda"},
        "target_device",
    ),
    "cuda result for a cpu target": (
        {"measured_device": "cuda:0", "target_device": "cpu"},
        "target_device",
    ),
}


@pytest.mark.parametrize("cause", sorted(T1_CAUSES))
def test_each_t1_cause_alone_caps_at_t1_and_is_named(cause):
    overrides, name = T1_CAUSES[cause]
    a = assess(make_evidence(**overrides))
    assert a.tier is Tier.T1
    assert missing_names(a) == [name]
    assert not check(a, name).passed
    # T3 evidence cannot lift a T1 cause
    b = assess(make_evidence(**overrides, **t3_extras()))
    assert b.tier is Tier.T1
    assert missing_names(b) == [name]


def test_t1_reasons_say_what_is_missing():
    a = assess(make_evidence(lock=make_lock(seed=None, device=None)))
    (m,) = a.missing_for_next
    assert "seed" in m and "device" in m
    a = assess(make_evidence(lock=make_lock(git=GitInfo(commit=FAKE_COMMIT, dirty=True))))
    assert "clean git tree" in a.missing_for_next[0]
    a = assess(make_evidence(sample_size=3))
    assert "3 < policy minimum" in a.missing_for_next[0]
    a = assess(make_evidence(measured_device="cpu"))
    assert "fallback" in a.missing_for_next[0]


def test_several_t1_causes_are_all_named():
    a = assess(make_evidence(synthetic_data=True, sample_size=1, lock=make_lock(seed=None)))
    assert a.tier is Tier.T1
    assert missing_names(a) == ["real_data", "environment_lock", "sample_size"]


def test_no_model_involved_is_fine():
    a = assess(make_evidence(model=None))
    assert a.tier is Tier.T2
    assert check(a, "real_model").passed


def test_dirty_tree_is_never_complete_and_cannot_be_allowed():
    ev = make_evidence(lock=make_lock(git=GitInfo(commit=FAKE_COMMIT, dirty=True)))
    assert assess(ev).tier is Tier.T1
    with pytest.raises(ValidationError, match="allow_dirty_tree"):
        TrustPolicy(allow_dirty_tree=True)


def test_sample_exactly_at_minimum_passes():
    assert assess(make_evidence(sample_size=POLICY_MIN)).tier is Tier.T2
    strict = TP(min_sample_size=1000)
    assert assess(make_evidence(sample_size=999), strict).tier is Tier.T1
    assert assess(make_evidence(sample_size=1000), strict).tier is Tier.T2


def test_no_integrity_checks_at_all_is_a_failure():
    # issue 11: a result with nothing that could have failed is unchecked, not checked
    a = assess(make_evidence(integrity=[]))
    assert a.tier is Tier.T1
    assert "no integrity checks" in check(a, "integrity").reason


@pytest.mark.parametrize(
    ("measured", "target"),
    [("cuda:0", "cuda"), ("cuda:1", "cuda:0"), ("cpu", "cpu"), (None, "cuda"), ("cpu", None)],
)
def test_matching_or_unstated_device_passes(measured, target):
    a = assess(make_evidence(measured_device=measured, target_device=target))
    assert a.tier is Tier.T2
    assert check(a, "target_device").passed


def test_cpu_choice_for_a_cpu_target_is_t2():
    a = assess(
        make_evidence(
            lock=make_lock(device=_cpu_choice()), measured_device="cpu", target_device="cpu"
        )
    )
    assert a.tier is Tier.T2


def test_synthetic_data_caps_at_t1_even_with_reproduction_and_two_approvals():
    a = assess(
        make_evidence(
            synthetic_data=True,
            reproduction=digest_repro(),
            reviews=approvals("alice", "bob", "carol"),
        )
    )
    assert a.tier is Tier.T1
    assert a.tier.rank == 1
    # the T3 checks themselves pass; they are simply not enough
    assert check(a, "reproduced").passed and check(a, "dual_review").passed
    assert missing_names(a) == ["real_data"]


# --- T3 ---------------------------------------------------------------------------------------


def test_reproduction_alone_is_t2():
    a = assess(make_evidence(reproduction=digest_repro()))
    assert a.tier is Tier.T2
    assert missing_names(a) == ["dual_review"]


def test_reviews_alone_are_t2():
    a = assess(make_evidence(reviews=approvals("alice", "bob")))
    assert a.tier is Tier.T2
    assert missing_names(a) == ["reproduced"]


def test_reproduction_and_dual_review_is_t3():
    a = assess(make_evidence(**t3_extras()))
    assert a.tier is Tier.T3
    assert a.missing_for_next == []
    assert all(c.passed for c in a.checks)


def test_failed_reproduction_is_t2():
    a = assess(make_evidence(reproduction=digest_repro(False), reviews=approvals("a", "b")))
    assert a.tier is Tier.T2
    assert missing_names(a) == ["reproduced"]


def test_same_reviewer_twice_is_one():
    a = assess(make_evidence(reproduction=digest_repro(), reviews=approvals("alice", "alice")))
    assert a.tier is Tier.T2
    assert check(a, "dual_review").numbers["approvals"] == 1


def test_same_reviewer_differing_in_case_or_spaces_is_one():
    a = assess(
        make_evidence(reproduction=digest_repro(), reviews=approvals("Alice", "alice", " ALICE "))
    )
    assert a.tier is Tier.T2
    assert check(a, "dual_review").numbers["approvals"] == 1


def test_a_rejection_blocks_t3_even_with_two_approvals():
    reviews = [*approvals("alice", "bob"), Review(reviewer="carol", approved=False)]
    a = assess(make_evidence(reproduction=digest_repro(), reviews=reviews))
    assert a.tier is Tier.T2
    assert "rejected by carol" in a.missing_for_next[0]


def test_an_approver_who_also_rejects_blocks_t3():
    reviews = [*approvals("alice", "bob"), Review(reviewer="bob", approved=False)]
    assert assess(make_evidence(reproduction=digest_repro(), reviews=reviews)).tier is Tier.T2


def test_min_reviewers_three_needs_three():
    policy = TP(min_reviewers=3)
    ev2 = make_evidence(reproduction=digest_repro(), reviews=approvals("alice", "bob"))
    ev3 = make_evidence(reproduction=digest_repro(), reviews=approvals("alice", "bob", "carol"))
    assert assess(ev2).tier is Tier.T3
    assert assess(ev2, policy).tier is Tier.T2
    assert "2 of 3" in assess(ev2, policy).missing_for_next[0]
    assert assess(ev3, policy).tier is Tier.T3


def test_reviewer_must_be_named():
    with pytest.raises(ValidationError, match="reviewer"):
        Review(reviewer="   ", approved=True)


# --- reproduction -----------------------------------------------------------------------------


def test_reproduce_by_digest_match_and_mismatch():
    r = reproduce_by_digest(DIGEST, DIGEST, "run-1")
    assert r.matched and r.method == "digest" and r.reference == "run-1"
    assert assess(make_evidence(reproduction=r, reviews=approvals("a", "b"))).tier is Tier.T3
    r = reproduce_by_digest(DIGEST, "sha256:" + "cd" * 32, "run-1")
    assert not r.matched
    a = assess(make_evidence(reproduction=r, reviews=approvals("a", "b")))
    assert a.tier is Tier.T2
    assert "differs from run-1" in a.missing_for_next[0]


def test_empty_digests_do_not_reproduce():
    assert not reproduce_by_digest("", "", "run-1").matched


def test_unknown_reproduction_method_is_rejected():
    with pytest.raises(ValidationError, match="method"):
        Reproduction(method="eyeballed", reference="run-1", matched=True)


def test_reproduce_within_tolerance_inside_and_beyond():
    ref = {"p95_ms": 100.0, "ndcg": 0.80, "only_in_ref": 1.0}
    ok = reproduce_within_tolerance(
        {"p95_ms": 103.0, "ndcg": 0.81, "only_here": 9.0}, ref, reference="r", tolerance=0.05
    )
    assert ok.matched and ok.method == "tolerance"
    assert set(ok.details) == {"p95_ms", "ndcg"}
    assert ok.max_rel_diff == pytest.approx(0.03)
    assert assess(make_evidence(reproduction=ok, reviews=approvals("a", "b"))).tier is Tier.T3

    bad = reproduce_within_tolerance(
        {"p95_ms": 110.0, "ndcg": 0.80}, ref, reference="r", tolerance=0.05
    )
    assert not bad.matched
    assert bad.max_rel_diff == pytest.approx(0.10)
    a = assess(make_evidence(reproduction=bad, reviews=approvals("a", "b")))
    assert a.tier is Tier.T2 and missing_names(a) == ["reproduced"]


def test_reproduce_within_tolerance_exactly_at_tolerance_and_zero_reference():
    r = reproduce_within_tolerance({"x": 1.5}, {"x": 1.0}, reference="r", tolerance=0.5)
    assert r.matched
    r = reproduce_within_tolerance({"x": 0.0}, {"x": 0.0}, reference="r", tolerance=0.0)
    assert r.matched and r.max_rel_diff == 0.0
    r = reproduce_within_tolerance({"x": 1e-3}, {"x": 0.0}, reference="r", tolerance=0.05)
    assert not r.matched


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("side", ["current", "reference"])
def test_non_finite_figures_never_match(bad, side):
    cur, ref = {"x": 1.0, "y": 2.0}, {"x": 1.0, "y": 2.0}
    (cur if side == "current" else ref)["y"] = bad
    r = reproduce_within_tolerance(cur, ref, reference="r", tolerance=1.0)
    assert not r.matched
    assert math.isinf(r.max_rel_diff)
    assert assess(make_evidence(reproduction=r, reviews=approvals("a", "b"))).tier is Tier.T2


def test_both_nan_is_not_a_match():
    r = reproduce_within_tolerance({"x": math.nan}, {"x": math.nan}, reference="r", tolerance=1.0)
    assert not r.matched


def test_no_shared_figures_raises():
    with pytest.raises(ValueError, match="at least one figure"):
        reproduce_within_tolerance({"a": 1.0}, {"b": 1.0}, reference="r", tolerance=0.05)
    with pytest.raises(ValueError):
        reproduce_within_tolerance({}, {}, reference="r", tolerance=0.05)


def test_policy_tolerance_is_the_upper_bound():
    # the re-run claims a looser tolerance than the policy's 5 %: judged by the policy's
    loose = reproduce_within_tolerance({"x": 1.10}, {"x": 1.0}, reference="r", tolerance=0.20)
    assert loose.matched  # by its own claim
    a = assess(make_evidence(reproduction=loose, reviews=approvals("a", "b")))
    assert a.tier is Tier.T2
    c = check(a, "reproduced")
    assert not c.passed and c.numbers["tolerance"] == pytest.approx(0.05)
    # a looser policy is refused outright (policies only tighten)
    with pytest.raises(ValidationError, match="reproduction_rel_tolerance"):
        TrustPolicy(reproduction_rel_tolerance=0.2)


def test_stricter_stated_tolerance_is_kept():
    r = reproduce_within_tolerance({"x": 1.03}, {"x": 1.0}, reference="r", tolerance=0.01)
    assert not r.matched
    a = assess(make_evidence(reproduction=r, reviews=approvals("a", "b")))
    assert a.tier is Tier.T2
    assert check(a, "reproduced").numbers["tolerance"] == pytest.approx(0.01)


def test_tolerance_reproduction_without_a_figure_fails():
    r = Reproduction(method="tolerance", reference="r", matched=True, max_rel_diff=None)
    assert assess(make_evidence(reproduction=r, reviews=approvals("a", "b"))).tier is Tier.T2
    r = Reproduction(method="tolerance", reference="r", matched=True, max_rel_diff=math.nan)
    assert assess(make_evidence(reproduction=r, reviews=approvals("a", "b"))).tier is Tier.T2


# --- policy -----------------------------------------------------------------------------------


def test_policy_cannot_ask_for_fewer_than_two_reviewers():
    for n in (1, 0, -1):
        with pytest.raises(ValidationError, match="min_reviewers"):
            TrustPolicy(min_reviewers=n)


def test_policy_rejects_non_positive_sample_minimum():
    for n in (-5, 0, 1, POLICY_MIN - 1):
        with pytest.raises(ValidationError, match="min_sample_size"):
            TrustPolicy(min_sample_size=n)


def test_policy_rejects_out_of_range_tolerance():
    for tol in (-0.01, 0.06, 1.0, 1.5):
        with pytest.raises(ValidationError, match="reproduction_rel_tolerance"):
            TrustPolicy(reproduction_rel_tolerance=tol)


def test_evidence_rejects_negative_sample():
    with pytest.raises(ValidationError, match="sample_size"):
        make_evidence(sample_size=-1)


def test_required_check_absent_present_failing_passing():
    policy = TP(required_checks=["slo_p95_latency"])
    absent = assess(make_evidence(), policy)
    assert absent.tier is Tier.T1
    assert missing_names(absent) == ["required:slo_p95_latency"]
    assert "absent" in absent.missing_for_next[0]

    failing = make_evidence(
        integrity=[CheckResult(name="slo_p95_latency", passed=False, reason="p95 412 ms >= 300")]
    )
    a = assess(failing, policy)
    assert a.tier is Tier.T1
    assert set(missing_names(a)) == {"integrity", "required:slo_p95_latency"}

    passing = make_evidence(
        integrity=[CheckResult(name="slo_p95_latency", passed=True, reason="p95 120 ms < 300")]
    )
    assert assess(passing, policy).tier is Tier.T2
    assert assess(make_evidence(integrity=passing.integrity, **t3_extras()), policy).tier is Tier.T3


def test_default_policy_is_designs_minimum():
    p = TP()
    assert p.min_reviewers == 2
    assert p.required_checks == []
    assert p.allow_dirty_tree is False
    assert assess(make_evidence(), None).tier == assess(make_evidence(), p).tier


# --- Tier -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tier"),
    [
        ("T2", Tier.T2),
        ("t3-verified", Tier.T3),
        ("T1-Indicative", Tier.T1),
        (" t1 ", Tier.T1),
        ("T2-INTERNAL", Tier.T2),
        ("T3-Verified", Tier.T3),
    ],
)
def test_tier_parse_accepts(text, tier):
    assert Tier.parse(text) is tier


@pytest.mark.parametrize("text", ["T4", "gold", "", "T", "3", "T1-Verified", "T2-Indicative"])
def test_tier_parse_rejects_with_the_choices(text):
    with pytest.raises(ValueError) as exc:
        Tier.parse(text)
    msg = str(exc.value)
    for t in Tier:
        assert t.value in msg


def test_tiers_order_by_rank():
    assert [t.rank for t in Tier] == [1, 2, 3]
    assert sorted([Tier.T3, Tier.T1, Tier.T2], key=lambda t: t.rank) == [Tier.T1, Tier.T2, Tier.T3]
    assert Tier.T1.rank < Tier.T2.rank < Tier.T3.rank
    assert max(Tier, key=lambda t: t.rank) is Tier.T3


def test_assessment_round_trips_through_json():
    a = assess(make_evidence(**t3_extras()))
    b = TrustAssessment.model_validate_json(a.model_dump_json())
    assert b == a and b.tier is Tier.T3


# --- markdown ---------------------------------------------------------------------------------


def test_markdown_for_t2_shows_tier_checks_and_what_is_missing():
    a = assess(make_evidence())
    md = render_trust_markdown(a)
    assert "T2-Internal" in md
    for c in a.checks:
        assert f"| {c.name} |" in md
    assert "### Missing for T3-Verified" in md
    for m in a.missing_for_next:
        assert f"- {m}" in md
    assert "**FAIL**" in md  # reproduced / dual_review


def test_markdown_for_t3_has_no_missing_section():
    md = render_trust_markdown(assess(make_evidence(**t3_extras())))
    assert "T3-Verified" in md
    assert "Missing for" not in md
    assert "Highest tier reached." in md
    assert "**FAIL**" not in md


def test_markdown_for_t1_points_at_t2():
    md = render_trust_markdown(assess(make_evidence(synthetic_data=True)))
    assert "T1-Indicative" in md
    assert "### Missing for T2-Internal" in md
    assert "- real_data:" in md


# --- property: the tier equals an independent statement of the rules --------------------------

FLAGS = (
    "synthetic_data",
    "synthetic_model",
    "no_model",
    "no_seed",
    "no_commit",
    "no_dataset_digest",
    "no_device",
    "no_package",
    "dirty",
    "small_sample",
    "integrity_fails",
    "cpu_fallback",
    "require_check",
    "required_check_present",
    "required_check_passes",
    "reproduced",
    "reproduction_fails",
    "second_approver",
    "duplicate_approver",
    "rejection",
    "three_reviewers_policy",
    "third_approver",
)


def _build(f: dict[str, bool]) -> tuple[Evidence, TrustPolicy]:
    lock = make_lock(
        seed=None if f["no_seed"] else 7,
        git=GitInfo(commit=None if f["no_commit"] else FAKE_COMMIT, dirty=f["dirty"]),
        dataset=DatasetRef(
            name="d", version="1", digest="" if f["no_dataset_digest"] else DIGEST, synthetic=False
        ),
        device=None if f["no_device"] else _gpu_choice(),
        packages={"prefect": "3.8.8", "torch": None if f["no_package"] else "2.4", "numpy": "2"},
    )
    integrity = [CheckResult(name="ablation", passed=not f["integrity_fails"], reason="r")]
    if f["required_check_present"]:
        integrity.append(
            CheckResult(name="slo", passed=f["required_check_passes"], reason="slo verdict")
        )
    reviews = approvals("alice")
    if f["second_approver"]:
        reviews += approvals("bob")
    if f["duplicate_approver"]:
        reviews += approvals("ALICE")
    if f["third_approver"]:
        reviews += approvals("carol")
    if f["rejection"]:
        reviews.append(Review(reviewer="dave", approved=False))
    repro = None
    if f["reproduced"]:
        repro = digest_repro(matched=not f["reproduction_fails"])
    model = (
        None
        if f["no_model"]
        else ModelRef(
            name="m", source="s", synthetic=f["synthetic_model"], weights_check=WEIGHTS_OK
        )
    )
    ev = Evidence(
        synthetic_data=f["synthetic_data"],
        data_provenance=PROVENANCE,
        model=model,
        lock=lock,
        sample_size=POLICY_MIN - 1 if f["small_sample"] else POLICY_MIN,
        integrity=integrity,
        measured_device="cpu" if f["cpu_fallback"] else "cuda:0",
        target_device="cuda",
        reproduction=repro,
        reviews=reviews,
    )
    policy = TP(
        required_checks=["slo"] if f["require_check"] else [],
        min_reviewers=3 if f["three_reviewers_policy"] else 2,
    )
    return ev, policy


def _expected_tier(f: dict[str, bool]) -> Tier:
    """DESIGN.md's rules, restated independently of gpuflows.core.evidence.trust."""
    real_data = not f["synthetic_data"]
    real_model = f["no_model"] or not f["synthetic_model"]
    lock_complete = not (
        f["no_seed"]
        or f["no_commit"]
        or f["no_dataset_digest"]
        or f["no_device"]
        or f["no_package"]
        or f["dirty"]
    )
    sample_ok = not f["small_sample"]
    integrity_ok = not f["integrity_fails"] and (
        not f["required_check_present"] or f["required_check_passes"]
    )
    required_ok = not f["require_check"] or (
        f["required_check_present"] and f["required_check_passes"]
    )
    device_ok = not f["cpu_fallback"]
    if not (real_data and real_model and lock_complete and sample_ok and integrity_ok):
        return Tier.T1
    if not (required_ok and device_ok):
        return Tier.T1
    reproduced = f["reproduced"] and not f["reproduction_fails"]
    distinct = 1 + f["second_approver"] + f["third_approver"]  # a duplicate adds nobody
    needed = 3 if f["three_reviewers_policy"] else 2
    reviewed = distinct >= needed and not f["rejection"]
    return Tier.T3 if (reproduced and reviewed) else Tier.T2


def test_random_flag_combinations_match_the_rules():
    rng = random.Random(20240531)
    seen = set()
    for _ in range(200):
        # bias toward "good" evidence so T2 and T3 are reached often
        f = {k: rng.random() < 0.15 for k in FLAGS}
        if rng.random() < 0.5:
            f.update(reproduced=True, second_approver=True)
        ev, policy = _build(f)
        a = assess(ev, policy)
        want = _expected_tier(f)
        assert a.tier is want, {k: v for k, v in f.items() if v}
        assert (a.missing_for_next == []) == (a.tier is Tier.T3)
        seen.add(a.tier)
    assert seen == set(Tier)


# --- signed reviews (issue 11, attack 3) -------------------------------------------------------


def _signed(name: str, key: str, *, approved=True, comment="ok", run="run-1", digest="d1"):
    sig = sign_review(
        key, flow_run_id=run, result_digest=digest, approved=approved, comment=comment
    )
    return Review(
        reviewer=name,
        approved=approved,
        comment=comment,
        flow_run_id=run,
        result_digest=digest,
        signature=sig,
    )


def _ev(*reviews: Review) -> Evidence:
    return make_evidence(
        reproduction=digest_repro(), reviews=list(reviews), flow_run_id="run-1", result_digest="d1"
    )


def test_two_distinct_signed_keys_reach_t3():
    a = assess(_ev(_signed("alice", _key("alice")[0]), _signed("bob", _key("bob")[0])))
    assert a.tier is Tier.T3, a.missing_for_next


def test_one_person_typing_two_names_is_not_t3():
    # bob's name, alice's key: it does not verify against bob's key
    a = assess(_ev(_signed("alice", _key("alice")[0]), _signed("bob", _key("alice")[0])))
    assert a.tier is Tier.T2
    assert "bob: signature does not verify" in check(a, "dual_review").reason


def test_one_key_under_two_names_counts_once():
    priv, pub = generate_keypair()
    policy = TP().model_copy(update={"reviewers": {**REVIEWERS, "x1": pub, "x2": pub}})
    a = assess(_ev(_signed("x1", priv), _signed("x2", priv)), policy)
    assert a.tier is Tier.T2 and "1 of 2 distinct approvals" in check(a, "dual_review").reason


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (
            lambda: Review(reviewer="bob", approved=True, flow_run_id="run-1", result_digest="d1"),
            "bob: unsigned",
        ),
        (lambda: _signed("mallory", generate_keypair()[0]), "mallory: no key in the trust policy"),
        (
            lambda: _signed("bob", _key("bob")[0]).model_copy(update={"comment": "edited"}),
            "bob: signature does not verify",
        ),
        (lambda: _signed("bob", _key("bob")[0], run="run-2"), "signed for run run-2"),
        (lambda: _signed("bob", _key("bob")[0], digest="d2"), "signed for another result"),
    ],
)
def test_unsigned_unknown_tampered_or_misdirected_approvals_are_refused(make, why):
    a = assess(_ev(_signed("alice", _key("alice")[0]), make()))
    assert a.tier is Tier.T2
    assert why in check(a, "dual_review").reason
    assert why in render_trust_markdown(a)


def test_policy_refuses_a_reviewer_key_that_does_not_parse():
    with pytest.raises(ValidationError, match="reviewers"):
        TrustPolicy(reviewers={"alice": "ssh-rsa nonsense"})
