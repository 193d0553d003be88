"""What the baseline's Trust Tier is computed from: integrity checks on the figures, the
reproduction of the last comparable run, the evidence record and the dual-review rule.

A comparable run has the same sizes, repeats and warm-up on the same hardware (kind and name);
reproduction compares best-of-N figures: on a shared host the median drifts with load, the
fastest sample tracks what the device can do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import EnvironmentLock
from gpuflows.core.evidence.history import RunHistory, RunRecord
from gpuflows.core.evidence.trust import (
    Evidence,
    Reproduction,
    Review,
    Tier,
    TrustAssessment,
    TrustPolicy,
    assess,
    reproduce_within_tolerance,
)
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.slo.measure import SloPolicy
from gpuflows.pipelines.gpu_baseline.hwbench import HwMeasurement
from gpuflows.pipelines.gpu_baseline.suite import measured

FLOW = "gpu-baseline"


def default_slo_policy() -> SloPolicy:
    """A hardware op has no user-facing latency bound; the stored baseline and its tolerance
    are the SLO (regression checks only)."""
    return SloPolicy(p95_ms_max=None, error_rate_max=None)


def check_plausible(measurements: list[HwMeasurement], *, max_ratio: float = 1.10) -> CheckResult:
    """Integrity: no figure beats a hard peak (datasheet, or an upper-bound estimate) by more than
    ``max_ratio``, as a missing synchronise would. Measured ceilings are not hard bounds (a small
    copy can run from cache faster than the ceiling did), so they are not held to it."""
    hard = [
        m
        for m in measurements
        if m.ratio is not None and not (m.peak_source or "").startswith("measured")
    ]
    over = [f"{m.name}={m.ratio:.2f}" for m in hard if m.ratio > max_ratio]
    bad = [
        m.name
        for m in measurements
        if m.value is not None and not (m.value > 0 and m.value < float("inf"))
    ]
    ok = not over and not bad
    return CheckResult(
        name="plausible_vs_peak",
        passed=ok,
        numbers={"max_ratio": max_ratio, "over_peak": len(over), "non_finite": len(bad)},
        reason="every figure at or below its peak"
        if ok
        else f"impossible figures: {', '.join(over + bad)} (timing or synchronisation bug)",
    )


def check_core_measured(measurements: list[HwMeasurement]) -> CheckResult:
    """Integrity: the figures every pipeline relies on were measured (matmul fp32, device copy)."""
    core = {"matmul_fp32", "memory_copy"}
    got = {m.name for m in measurements if m.value is not None}
    missing = sorted(core - got)
    return CheckResult(
        name="core_measured",
        passed=not missing,
        numbers={"measured": len(got)},
        reason="matmul and copy measured" if not missing else f"not measured: {', '.join(missing)}",
    )


@dataclass
class BaselineRun:
    """This run in the baseline's history: its comparable config, hardware and figures."""

    run_name: str
    config: dict[str, Any]
    hardware: str
    values: dict[str, float]
    history: RunHistory

    @classmethod
    def of(
        cls,
        run_name: str,
        choice: DeviceChoice,
        sizes: dict[str, int],
        repeats: int,
        warmup: int,
        measurements: list[HwMeasurement],
    ) -> BaselineRun:
        """The run named ``run_name``: best-of-N figures of the measured operations."""
        return cls(
            run_name=run_name,
            config={"sizes": sizes, "repeats": repeats, "warmup": warmup},
            hardware=f"{choice.kind}-{choice.name}",
            values={m.name: float(m.best) for m in measured(measurements)},
            history=RunHistory(FLOW),
        )

    def reproduction(self, policy: TrustPolicy) -> Reproduction | None:
        """This run's figures against the last comparable run's, within the policy's relative
        tolerance; None when there is none (or no figure in common)."""
        prev = self.history.last(self.config, self.hardware, exclude_run=self.run_name)
        if not (prev and set(prev.values) & set(self.values)):
            return None
        return reproduce_within_tolerance(
            self.values,
            prev.values,
            reference=f"run {prev.run}",
            tolerance=policy.reproduction_rel_tolerance,
        )

    def record(self, lock: EnvironmentLock) -> None:
        """Append this run to the history (the next run's reference)."""
        record = RunRecord(run=self.run_name, git_commit=lock.git.commit, values=self.values)
        self.history.append(self.config, self.hardware, record)


def baseline_evidence(
    lock: EnvironmentLock,
    measurements: list[HwMeasurement],
    choice: DeviceChoice,
    target: str,
    reproduction: Reproduction | None,
) -> Evidence:
    """The baseline's evidence: real (seeded) operands, the integrity checks, devices."""
    return Evidence(
        synthetic_data=False,
        data_note=(
            "hardware microbenchmark: seeded operands, the measured quantity is device throughput"
        ),
        model=None,
        lock=lock,
        sample_size=min((len(m.samples_ms) for m in measured(measurements)), default=0),
        integrity=[check_plausible(measurements), check_core_measured(measurements)],
        measured_device=choice.kind,
        target_device=target,
        reproduction=reproduction,
    )


def assess_baseline(evidence: Evidence, policy: TrustPolicy) -> TrustAssessment:
    """The Trust Tier of the evidence under ``policy``."""
    return assess(evidence, policy)


def review_applies(assessment: TrustAssessment) -> bool:
    """Dual review applies to a reproduced T2 result: T2 with only ``dual_review`` failing."""
    pending = [c.name for c in assessment.checks if not c.passed]
    return assessment.tier == Tier.T2 and pending == ["dual_review"]


def with_reviews(evidence: Evidence, reviews: list[Review], policy: TrustPolicy) -> TrustAssessment:
    """Record the reviews in the evidence and assess it again."""
    evidence.reviews = reviews
    return assess(evidence, policy)
