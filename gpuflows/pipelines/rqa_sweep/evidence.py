"""What the sweep's Trust Tier is computed from: the environment lock and the evidence record.

Synthetic data — generated here, or a file whose digest the generator registered — and a file
without declared provenance cap the tier at T1 (``gpuflows.core.evidence.trust.assess``); the
integrity check ``sweep_complete`` holds the table to one row per subject x series x combination.
"""

from __future__ import annotations

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import DatasetRef, EnvironmentLock, build_lock
from gpuflows.core.evidence.trust import Evidence, TrustAssessment, assess
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.pipelines.rqa_sweep.data import data_provenance
from gpuflows.pipelines.rqa_sweep.params import RqaSweepParams


def sweep_lock(p: RqaSweepParams, ref: DatasetRef, choice: DeviceChoice) -> EnvironmentLock:
    """Apply ``p.seed`` and record the environment, the dataset and every parameter."""
    return build_lock(seed=p.seed, dataset=ref, device=choice, parameters=p.model_dump(mode="json"))


def check_sweep_complete(rows: int, expected: int) -> CheckResult:
    """Integrity: the tidy table has every subject x series x combination row."""
    return CheckResult(
        name="sweep_complete",
        passed=rows == expected,
        numbers={"rows": rows, "expected": expected},
        reason=f"{rows} of {expected} subject x series x combination rows",
    )


def sweep_assessment(
    p: RqaSweepParams,
    *,
    synthetic: bool,
    lock: EnvironmentLock,
    n_subjects: int,
    rows: int,
    expected: int,
    device_used: str,
) -> TrustAssessment:
    """The sweep's evidence, assessed with the default trust policy (target device: CUDA)."""
    evidence = Evidence(
        synthetic_data=synthetic,
        data_note=(
            f"synthetic: {lock.dataset.description}"  # a file whose digest the generator knows
            if synthetic and p.data_path and lock.dataset
            else "synthetic gaze from gpuflows.pipelines.rqa_sweep.gaze (model parameters invented)"
            if synthetic
            else f"gaze file {p.data_path}"
        ),
        data_provenance=data_provenance(p),
        lock=lock,
        sample_size=n_subjects,
        integrity=[check_sweep_complete(rows, expected)],
        measured_device=device_used,  # 'cpu,cuda:0' (partial fallback) fails the device check
        target_device="cuda",
    )
    return assess(evidence)
