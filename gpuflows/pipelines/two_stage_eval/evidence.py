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
from gpuflows.core.evidence.trust import Evidence, ModelRef, TrustAssessment, assess
from gpuflows.pipelines.two_stage_eval.run_plan import TwoStageRun


def every_pair_scored_or_failed(n_pairs: int, scores: dict[str, dict]) -> CheckResult:
    """One record (a score or the pair's error) for each valid pair."""
    return CheckResult(
        name="every_pair_scored_or_failed",
        passed=len(scores) == n_pairs,
        numbers={"pairs": n_pairs, "records": len(scores)},
        reason=f"{len(scores)} records for {n_pairs} pairs",
    )


def build_evidence(run: TwoStageRun, scores: dict[str, dict], summary: dict[str, Any]) -> Evidence:
    """The run's evidence: data and model identity, lock, sample size, integrity, device."""
    ref, models, fps = run.dataset, run.models, run.fingerprints
    return Evidence(
        synthetic_data=ref.synthetic,
        data_note="synthetic scenes (gpuflows.pipelines.two_stage_eval.synth)"
        if ref.synthetic
        else str(run.data),
        model=ModelRef(
            name="edit+reward",
            source=f"{models['edit'].source} + {models['reward'].source}",
            synthetic=run.edit_model.synthetic or run.reward.synthetic,
            digest=bytes_digest(f"{fps['edit']}+{fps['reward']}".encode()),  # both models
        ),
        lock=run.lock,
        sample_size=summary["overall"]["n_scored"],
        integrity=[every_pair_scored_or_failed(len(run.pairs), scores)],
        measured_device=run.choice.kind,
        target_device="cuda",
    )


def assess_run(
    run: TwoStageRun, scores: dict[str, dict], summary: dict[str, Any]
) -> TrustAssessment:
    """The run's Trust Tier and the checks behind it."""
    return assess(build_evidence(run, scores, summary))
