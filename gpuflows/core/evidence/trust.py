"""Trust Tiers computed from evidence: small named checks, never a tier written by hand.

Rules (DESIGN.md; a :class:`TrustPolicy` may only make them stricter — a looser value than
:data:`FLOOR` is refused when the policy is built, naming the field):

* ``T1-Indicative`` — the result exists, but something below fails: synthetic data or model,
  data without declared provenance or whose digest is registered as generated, a model without
  declared provenance or whose weights fail the fresh-initialisation check, incomplete
  environment lock (a dirty tree is never complete), sample below the policy minimum, a failed
  integrity check or no integrity check at all, or a baseline measured on another device than
  the one it is for.
* ``T2-Internal`` — real data (declared provenance, not generated) and model (declared source,
  weights checked), complete lock, sample size met, integrity checks present and passing (and
  every check the policy names as required).
* ``T3-Verified`` — T2, plus an independent re-run reproduced it (exact digest match, or within
  the stated tolerance), plus approval by ``min_reviewers`` (>= 2) distinct reviewers (signed,
  when the reviews come through :mod:`tasks.review`).
"""

from __future__ import annotations

import datetime as dt
import math
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from gpuflows.core.evidence.checks import CheckResult, checks_table
from gpuflows.core.evidence.envlock import EnvironmentLock
from gpuflows.core.evidence.provenance import DataProvenance, generated_by
from gpuflows.core.evidence.signing import (
    fingerprint,
    load_public_key,
    review_payload,
    verify_signature,
)
from gpuflows.core.hardware.devices import device_kind


class Tier(StrEnum):
    """The three tiers, ordered."""

    T1 = "T1-Indicative"
    T2 = "T2-Internal"
    T3 = "T3-Verified"

    @classmethod
    def parse(cls, name: str) -> Tier:
        """Accept 'T2', 't2-internal' or the full name; anything else is an error naming the choices."""
        text = str(name).strip().upper()
        for t in cls:
            # 'T2' or the full name; a suffix that names another tier ('T1-Verified') is an error
            if text in (t.name, t.value.upper()):
                return t
        raise ValueError(f"tier={name!r} unknown: use one of {[t.value for t in cls]}")

    @property
    def rank(self) -> int:
        return int(self.name[1])


class TrustPolicy(BaseModel):
    """How high the bar is, stated by the team (a ``TrustPolicyBlock``).

    The tier *rules* are fixed (DESIGN.md); the policy sets their thresholds: the sample size a
    result needs, extra required checks, the reproduction tolerance. Two distinct reviewers is
    DESIGN.md's floor and cannot be lowered.
    """

    min_sample_size: int = Field(
        default=30, ge=1, description="Smallest sample a T2 result may rest on."
    )
    required_checks: list[str] = Field(
        default_factory=list,
        description="Names of extra checks (e.g. 'slo_p95_latency') that must be present and pass for T2.",
    )
    reproduction_rel_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Largest relative difference a re-run may show for non-deterministic outputs.",
    )
    min_reviewers: int = Field(
        default=2, ge=2, description="Distinct approving reviewers needed for T3."
    )
    allow_dirty_tree: bool = Field(
        default=False,
        description="Kept for old stored blocks; must stay False: a dirty tree is never a "
        "complete lock.",
    )
    max_failure_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Largest share of items (pairs, units, queries) that may fail or be "
        "rejected before the run's integrity check fails.",
    )

    reviewers: dict[str, str] = Field(
        default_factory=dict,
        description="Reviewer name -> OpenSSH ssh-ed25519 public key. Only approvals signed by "
        "one of these keys count toward T3 (gpuflows.core.evidence.signing).",
    )

    @field_validator("reviewers")
    @classmethod
    def _keys_parse(cls, v: dict[str, str]) -> dict[str, str]:
        for name, key in v.items():
            if not name.strip():
                raise ValueError("reviewers: a reviewer name is empty")
            try:
                load_public_key(key)
            except ValueError as exc:
                raise ValueError(
                    f"reviewers[{name!r}]: {exc}; paste the reviewer's ~/.ssh/id_ed25519.pub line"
                ) from None
        return v

    @model_validator(mode="after")
    def _only_tighter(self) -> TrustPolicy:
        looser = []
        for name, floor in FLOOR.items():
            value = getattr(self, name)
            if name == "allow_dirty_tree":
                bad = bool(value) and not floor
            elif name in _UPPER_BOUNDED:
                bad = value > floor
            else:
                bad = value < floor
            if bad:
                looser.append(f"{name}={value!r} (floor {floor!r})")
        if looser:
            raise ValueError(
                "a trust policy may only tighten the rules; looser than the built-in floor: "
                + "; ".join(looser)
                + ". Raise (or lower) the value to the floor or stricter; a dirty tree is never a "
                "complete lock: commit the changes instead of allowing them"
            )
        return self


#: The built-in floor (DESIGN.md): a policy may be stricter on every field, never looser.
FLOOR: dict[str, float | int | bool] = {
    "min_sample_size": 30,
    "reproduction_rel_tolerance": 0.05,
    "min_reviewers": 2,
    "allow_dirty_tree": False,
    "max_failure_share": 0.05,
}
_UPPER_BOUNDED = {"reproduction_rel_tolerance", "max_failure_share"}


class ModelRef(BaseModel):
    """Identity of the model behind a result."""

    name: str
    source: str = Field(
        description="Where the weights came from: a path, a package, 'random-init'."
    )
    synthetic: bool = Field(description="Random or toy weights (caps the tier at T1).")
    digest: str | None = None
    weights_check: CheckResult | None = Field(
        default=None,
        description="gpuflows.core.evidence.weights_check on the loaded weights; T2 needs one "
        "that passed (a freshly initialised model fails it).",
    )


class Reproduction(BaseModel):
    """Evidence that an independent re-run gave the same result."""

    method: Literal["digest", "tolerance"] = Field(
        description="'digest' (deterministic outputs) or 'tolerance'."
    )
    reference: str = Field(description="The run or record reproduced (id, path).")
    matched: bool
    max_rel_diff: float | None = None
    tolerance: float | None = None
    details: dict[str, float] = Field(default_factory=dict)
    reference_commit: str | None = Field(
        default=None, description="Commit of the reproduced run (must equal this run's)."
    )
    reference_dirty: bool | None = Field(
        default=None, description="Whether the reproduced run's tree was dirty (must be False)."
    )
    reference_data_digest: str | None = Field(
        default=None, description="Data digest of the reproduced run (must equal this run's)."
    )


class Review(BaseModel):
    """One reviewer's decision, given through Prefect's pause-for-input."""

    reviewer: str
    approved: bool
    comment: str = ""
    at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    flow_run_id: str = Field(default="", description="The run the signature is for.")
    result_digest: str = Field(default="", description="The result the reviewer looked at.")
    signature: str = Field(
        default="",
        description="Base64 Ed25519 signature over (flow_run_id, result_digest, decision, "
        "comment): python -m tasks.review sign.",
    )

    @field_validator("reviewer")
    @classmethod
    def _named(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("reviewer must be a non-empty name")
        return v


class Evidence(BaseModel):
    """Everything a tier is computed from."""

    synthetic_data: bool
    data_note: str = ""
    data_provenance: DataProvenance | None = Field(
        default=None,
        description="Declared provenance of the data (gpuflows.core.evidence.provenance); "
        "without one the result is at most T1.",
    )
    model: ModelRef | None = Field(default=None, description="None when no model is involved.")
    lock: EnvironmentLock
    sample_size: int = Field(ge=0)
    integrity: list[CheckResult] = Field(default_factory=list)
    measured_device: str | None = None
    target_device: str | None = Field(
        default=None, description="Device kind the result is for ('cuda', 'cpu')."
    )
    reproduction: Reproduction | None = None
    reviews: list[Review] = Field(default_factory=list)
    flow_run_id: str | None = Field(
        default=None, description="The run reviewed: signed reviews must name it."
    )
    result_digest: str | None = Field(
        default=None, description="Digest of the result reviewed: signed reviews must name it."
    )


class TrustAssessment(BaseModel):
    """The computed tier, the checks behind it, and what the next tier still needs."""

    tier: Tier
    checks: list[CheckResult]
    missing_for_next: list[str]


# --- the checks -------------------------------------------------------------------------------


def check_real_data(ev: Evidence) -> CheckResult:
    """Real data: not flagged synthetic, not registered as generated, provenance declared."""
    # the lock's DatasetRef says synthetic too: either flag caps the tier
    synthetic = ev.synthetic_data or bool(ev.lock.dataset and ev.lock.dataset.synthetic)
    digest = ev.lock.dataset.digest if ev.lock.dataset else None
    generator = generated_by(digest)
    prov = ev.data_provenance
    if synthetic:
        reason = ev.data_note or "synthetic or generated data"
    elif generator:
        reason = f"data digest {digest} matches data generated by {generator} (synthetic)"
    elif prov is None:
        reason = "provenance not declared" + (f" ({ev.data_note})" if ev.data_note else "")
    else:
        reason = f"{prov.kind} data {prov.name} v{prov.version} from {prov.origin}"
        reason += f" (responsible: {prov.responsible})"
    return CheckResult(
        name="real_data",
        passed=not synthetic and not generator and prov is not None,
        numbers={"digest": digest} if digest else {},
        reason=reason,
    )


def _declared_source(m: ModelRef) -> str | None:
    """What is missing from the model's declared source, or None when it is declared."""
    src = (m.source or "").strip()
    if not src or src == "random-init":
        return "no declared source"
    if src.startswith("hf:") and "@" not in src:
        return f"hub id {src[3:]} without a revision (pin one: the weights behind a name change)"
    return None


def check_real_model(ev: Evidence) -> CheckResult:
    """Real model: not synthetic, declared source (hub id + revision, path, package), weights
    checked by gpuflows.core.evidence.weights_check (a fresh initialisation fails it)."""
    m = ev.model
    if m is None:
        return CheckResult(name="real_model", passed=True, reason="no model involved")
    undeclared = _declared_source(m)
    wc = m.weights_check
    if m.synthetic:
        reason, ok = f"synthetic weights from {m.source}", False
    elif undeclared:
        reason, ok = f"model provenance not declared: {undeclared}", False
    elif wc is None:
        reason, ok = f"weights of {m.source} not checked (weights_check)", False
    elif not wc.passed:
        reason, ok = f"weights check failed: {wc.reason}", False
    else:
        reason, ok = f"weights from {m.source}; {wc.reason}", True
    return CheckResult(name="real_model", passed=ok, numbers={"model": m.name}, reason=reason)


def check_environment_lock(ev: Evidence, policy: TrustPolicy) -> CheckResult:
    missing = ev.lock.missing()
    # a dirty tree is never a complete lock, whatever the policy (allow_dirty_tree is refused)
    if ev.lock.git.commit and ev.lock.git.dirty is None:
        missing.append(
            "known tree state (commit given without a checkout: cannot tell if the code matches)"
        )
    elif ev.lock.git.dirty:
        missing.append(
            "clean git tree (uncommitted changes: the commit does not describe the code)"
        )
    return CheckResult(
        name="environment_lock",
        passed=not missing,
        numbers={"missing": len(missing)},
        reason="complete" if not missing else "missing: " + "; ".join(missing),
    )


def check_sample_size(ev: Evidence, policy: TrustPolicy) -> CheckResult:
    ok = ev.sample_size >= policy.min_sample_size
    return CheckResult(
        name="sample_size",
        passed=ok,
        numbers={"n": ev.sample_size, "min": policy.min_sample_size},
        reason=f"{ev.sample_size} {'>=' if ok else '<'} policy minimum {policy.min_sample_size}",
    )


def check_integrity(ev: Evidence) -> CheckResult:
    """Every integrity check passes, and there is at least one ("no checks" is a failure)."""
    failed = [c.name for c in ev.integrity if not c.passed]
    if not ev.integrity:
        reason = "no integrity checks: a result with nothing that could have failed is unchecked"
    elif failed:
        reason = f"failed: {', '.join(failed)}"
    else:
        reason = "all integrity checks pass"
    return CheckResult(
        name="integrity",
        passed=bool(ev.integrity) and not failed,
        numbers={"checks": len(ev.integrity), "failed": len(failed)},
        reason=reason,
    )


def check_target_device(ev: Evidence) -> CheckResult:
    if ev.target_device is None or ev.measured_device is None:
        return CheckResult(
            name="target_device", passed=True, reason="result is not device-specific"
        )
    # 'cpu,cuda:0' (a partial fallback) is several devices: every one must be of the target kind
    kinds = {device_kind(d) for d in ev.measured_device.split(",") if d.strip()}
    ok = kinds == {device_kind(ev.target_device)}
    return CheckResult(
        name="target_device",
        passed=ok,
        numbers={"measured": ev.measured_device, "target": ev.target_device},
        reason="measured on the device it is for"
        if ok
        else f"measured on {ev.measured_device} for a {ev.target_device} target (fallback)",
    )


def check_required(ev: Evidence, policy: TrustPolicy) -> list[CheckResult]:
    present = {c.name: c for c in ev.integrity}
    out = []
    for name in policy.required_checks:
        c = present.get(name)
        out.append(
            CheckResult(
                name=f"required:{name}",
                passed=bool(c and c.passed),
                numbers={},
                reason="absent: the policy requires it" if c is None else c.reason,
            )
        )
    return out


def _not_independent(ev: Evidence, r: Reproduction) -> str | None:
    """Why the reproduced run is not an independent re-run of this one (None when it is): it
    must be a distinct run on the same commit, with a clean tree, on the same data."""
    if r.reference_commit is None or r.reference_commit != ev.lock.git.commit:
        return f"{r.reference} is from commit {r.reference_commit or 'unknown'}, not this one"
    if r.reference_dirty is not False:
        return f"{r.reference} ran on a dirty (or unknown) tree"
    ds = ev.lock.dataset.digest if ev.lock.dataset else None
    if r.reference_data_digest is None or r.reference_data_digest != ds:
        return f"{r.reference} read other (or unrecorded) data"
    if ev.flow_run_id and r.reference == ev.flow_run_id:
        return f"{r.reference} is this run itself"
    return None


def check_reproduced(ev: Evidence, policy: TrustPolicy) -> CheckResult:
    r = ev.reproduction
    if r is None:
        return CheckResult(name="reproduced", passed=False, reason="no independent re-run yet")
    if why := _not_independent(ev, r):
        return CheckResult(
            name="reproduced",
            passed=False,
            numbers={"reference": r.reference},
            reason=f"not an independent re-run: {why}",
        )
    ok = r.matched
    if r.method == "tolerance":
        tol = (
            policy.reproduction_rel_tolerance
            if r.tolerance is None
            else min(r.tolerance, policy.reproduction_rel_tolerance)
        )
        ok = r.max_rel_diff is not None and math.isfinite(r.max_rel_diff) and r.max_rel_diff <= tol
        return CheckResult(
            name="reproduced",
            passed=ok,
            numbers={"max_rel_diff": r.max_rel_diff, "tolerance": tol, "reference": r.reference},
            reason=f"re-run of {r.reference} within {tol:.2%}"
            if ok
            else f"re-run of {r.reference} differs by {r.max_rel_diff} > {tol:.2%}",
        )
    return CheckResult(
        name="reproduced",
        passed=ok,
        numbers={"reference": r.reference},
        reason=f"digest {'matches' if ok else 'differs from'} {r.reference}",
    )


def review_problem(r: Review, ev: Evidence, policy: TrustPolicy) -> str | None:
    """Why review ``r`` does not count (None when it does): unknown key, unsigned, signed for
    another run or result, or a signature that does not verify (tampered comment/decision)."""
    keys = {n.strip().casefold(): k for n, k in policy.reviewers.items()}
    key = keys.get(r.reviewer.strip().casefold())
    if key is None:
        return f"{r.reviewer}: no key in the trust policy (unknown reviewer)"
    if not r.signature:
        return f"{r.reviewer}: unsigned"
    if ev.flow_run_id is not None and r.flow_run_id != ev.flow_run_id:
        return f"{r.reviewer}: signed for run {r.flow_run_id or '?'}, not {ev.flow_run_id}"
    if ev.result_digest is not None and r.result_digest != ev.result_digest:
        return f"{r.reviewer}: signed for another result ({r.result_digest or '?'})"
    payload = review_payload(r.flow_run_id, r.result_digest, r.approved, r.comment)
    if not verify_signature(key, r.signature, payload):
        return f"{r.reviewer}: signature does not verify (decision, comment or run changed)"
    return None


def check_dual_review(ev: Evidence, policy: TrustPolicy) -> CheckResult:
    """``min_reviewers`` approvals signed by distinct keys the policy names; any rejection
    blocks (a rejection can only lower a tier, so it counts signed or not)."""
    problems = [p for r in ev.reviews if r.approved and (p := review_problem(r, ev, policy))]
    keys = {n.strip().casefold(): k for n, k in policy.reviewers.items()}
    signers = {
        fingerprint(keys[r.reviewer.strip().casefold()])
        for r in ev.reviews
        if r.approved and review_problem(r, ev, policy) is None
    }
    rejected = sorted({r.reviewer for r in ev.reviews if not r.approved})
    ok = len(signers) >= policy.min_reviewers and not rejected
    if ok:
        reason = f"{len(signers)} distinct approvals (signed by distinct keys)"
    elif rejected:
        reason = f"rejected by {', '.join(rejected)}"
    else:
        reason = f"{len(signers)} of {policy.min_reviewers} distinct approvals"
        if problems:
            reason += "; refused: " + "; ".join(problems)
    return CheckResult(
        name="dual_review",
        passed=ok,
        numbers={"approvals": len(signers), "needed": policy.min_reviewers},
        reason=reason,
    )


# --- the tier ---------------------------------------------------------------------------------


def assess(ev: Evidence, policy: TrustPolicy | None = None) -> TrustAssessment:
    """Compute the tier from the evidence; the only place a tier is decided."""
    policy = policy or TrustPolicy()
    t2 = [
        check_real_data(ev),
        check_real_model(ev),
        check_environment_lock(ev, policy),
        check_sample_size(ev, policy),
        check_integrity(ev),
        check_target_device(ev),
        *check_required(ev, policy),
    ]
    t3 = [check_reproduced(ev, policy), check_dual_review(ev, policy)]
    if not all(c.passed for c in t2):
        tier = Tier.T1
        missing = [f"{c.name}: {c.reason}" for c in t2 if not c.passed]
    elif not all(c.passed for c in t3):
        tier = Tier.T2
        missing = [f"{c.name}: {c.reason}" for c in t3 if not c.passed]
    else:
        tier, missing = Tier.T3, []
    return TrustAssessment(tier=tier, checks=t2 + t3, missing_for_next=missing)


def reproduce_by_digest(current: str, reference_digest: str, reference: str) -> Reproduction:
    """Exact reproduction for deterministic outputs."""
    return Reproduction(
        method="digest",
        reference=reference,
        matched=bool(current) and current == reference_digest,
        details={},
    )


def reproduce_within_tolerance(
    current: dict[str, float],
    reference_values: dict[str, float],
    *,
    reference: str,
    tolerance: float,
) -> Reproduction:
    """Reproduction for measured outputs: every shared figure within ``tolerance`` (relative).

    Raises:
        ValueError: when the two records share no figure to compare.
    """
    keys = sorted(set(current) & set(reference_values))
    if not keys:
        raise ValueError("reproduction needs at least one figure present in both runs")
    diffs = {}
    for k in keys:
        a, b = float(current[k]), float(reference_values[k])
        diffs[k] = (
            abs(a - b) / max(abs(b), 1e-12) if math.isfinite(a) and math.isfinite(b) else math.inf
        )
    worst = max(diffs.values())
    return Reproduction(
        method="tolerance",
        reference=reference,
        matched=worst <= tolerance,
        max_rel_diff=worst,
        tolerance=tolerance,
        details=diffs,
    )


def render_trust_markdown(a: TrustAssessment) -> str:
    """The tier, its evidence and what is missing for the next tier, as markdown."""
    nxt = {Tier.T1: Tier.T2, Tier.T2: Tier.T3}.get(a.tier)
    lines = [
        f"## Trust Tier: **{a.tier.value}**",
        "",
        "Computed from the checks below (gpuflows.core.evidence.trust).",
        "",
        checks_table(a.checks),
        "",
    ]
    if nxt:
        lines += [f"### Missing for {nxt.value}", ""] + [f"- {m}" for m in a.missing_for_next]
    else:
        lines.append("Highest tier reached.")
    return "\n".join(lines) + "\n"
