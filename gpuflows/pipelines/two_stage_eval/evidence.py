"""What a two-stage-eval run shows about itself, for its Trust Tier.

Read by :func:`gpuflows.core.evidence.trust.assess`.

The data and the models say whether they are synthetic, the lock says how the run was made, the
sample size is the pairs scored, and one integrity check says every pair ended in a record (a
score or its error). The tier is computed by :func:`~gpuflows.core.evidence.trust.assess`, never
written here.
"""

from __future__ import annotations

from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.digest import bytes_digest
from gpuflows.core.evidence.provenance import read_provenance
from gpuflows.core.evidence.trust import Evidence, ModelRef, TrustAssessment, TrustPolicy, assess
from gpuflows.core.evidence.weights_check import check_weights_dir
from gpuflows.pipelines.two_stage_eval.run_plan import TwoStageRun


def every_pair_scored_or_failed(n_pairs: int, scores: dict[str, dict]) -> CheckResult:
    """One record (a score or the pair's error) for each valid pair (bookkeeping; it holds by
    construction, so :func:`failure_share_within_bound` is the check that can fail)."""
    return CheckResult(
        name="every_pair_scored_or_failed",
        passed=len(scores) == n_pairs,
        numbers={"pairs": n_pairs, "records": len(scores)},
        reason=f"{len(scores)} records for {n_pairs} pairs",
    )


def failure_share_within_bound(n_pairs: int, n_scored: int, bound: float) -> CheckResult:
    """Integrity: the share of pairs without a score is at most the policy's
    ``max_failure_share`` (240 of 270 pairs failed is not a result). No pairs at all fails."""
    failed = max(n_pairs - n_scored, 0)
    share = failed / n_pairs if n_pairs else 1.0
    ok = n_pairs > 0 and share <= bound
    return CheckResult(
        name="failure_share",
        passed=ok,
        numbers={"pairs": n_pairs, "failed": failed, "share": share, "bound": bound},
        reason=f"{failed} of {n_pairs} pairs without a score ({share:.1%} "
        f"{'<=' if ok else '>'} bound {bound:.1%})",
    )


def rejection_share_within_bound(n_valid: int, n_rejected: int, bound: float) -> CheckResult:
    """Integrity: the share of the benchmark's records left out at load (bad fields, missing
    images) is at most ``max_failure_share``: a result on what was left is not the benchmark's."""
    total = n_valid + n_rejected
    share = n_rejected / total if total else 1.0
    ok = total > 0 and share <= bound
    return CheckResult(
        name="rejection_share",
        passed=ok,
        numbers={"records": total, "rejected": n_rejected, "share": share, "bound": bound},
        reason=f"{n_rejected} of {total} benchmark records rejected at load ({share:.1%} "
        f"{'<=' if ok else '>'} bound {bound:.1%})",
    )


def _weights_check(run: TwoStageRun) -> CheckResult | None:
    """The weights check of both models' folders: the first failing one, else the last."""
    out = None
    for m in (run.edit_model, run.reward):
        path = getattr(m, "path", None)
        if path is None:
            return None  # a model not loaded in this run: its weights were not checked
        out = check_weights_dir(path)
        if not out.passed:
            return out
    return out


def build_evidence(
    run: TwoStageRun,
    scores: dict[str, dict],
    summary: dict[str, Any],
    policy: TrustPolicy | None = None,
) -> Evidence:
    """The run's evidence: data and model identity, lock, sample size, integrity, device."""
    policy = policy or TrustPolicy()
    ref, models, fps = run.dataset, run.models, run.fingerprints
    synthetic_model = run.edit_model.synthetic or run.reward.synthetic
    return Evidence(
        synthetic_data=ref.synthetic,
        data_note="synthetic scenes (gpuflows.pipelines.two_stage_eval.synth)"
        if ref.synthetic
        else str(run.data),
        data_provenance=None if ref.synthetic else read_provenance(run.data),
        model=ModelRef(
            name="edit+reward",
            source=f"{models['edit'].source} + {models['reward'].source}",
            synthetic=synthetic_model,
            digest=bytes_digest(f"{fps['edit']}+{fps['reward']}".encode()),  # both models
            weights_check=None if synthetic_model else _weights_check(run),
        ),
        lock=run.lock,
        sample_size=summary["overall"]["n_scored"],
        integrity=[
            every_pair_scored_or_failed(len(run.pairs), scores),
            failure_share_within_bound(
                len(run.pairs), summary["overall"]["n_scored"], policy.max_failure_share
            ),
            rejection_share_within_bound(
                len(run.pairs), len(run.loaded.rejected), policy.max_failure_share
            ),
        ],
        measured_device=run.choice.kind,
        target_device="cuda",
    )


def assess_run(
    run: TwoStageRun,
    scores: dict[str, dict],
    summary: dict[str, Any],
    policy: TrustPolicy | None = None,
) -> TrustAssessment:
    """The run's Trust Tier and the checks behind it."""
    return assess(build_evidence(run, scores, summary, policy), policy)
