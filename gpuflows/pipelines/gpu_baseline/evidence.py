"""What the baseline's Trust Tier is computed from: integrity checks on the figures, the
reproduction of the last comparable run, the evidence record and the dual-review rule.

A comparable run has the same sizes, repeats and warm-up on the same hardware (kind and name).
Reproduction compares the raw timing samples of each operation with the last comparable run's
(:func:`gpuflows.core.slo.baseline.compare_samples`: 95 % bootstrap CI of the ratio of median
times): a re-run fails to reproduce only when the CI lies wholly outside the tolerance, so the
run-to-run noise the samples themselves show is never read as a difference. The samples live
next to the run history (``<history file>.samples.json``); runs recorded before that fall back
to best-of-N figures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import EnvironmentLock
from gpuflows.core.evidence.history import RunHistory, RunRecord
from gpuflows.core.evidence.provenance import DataProvenance
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
from gpuflows.core.slo.baseline import compare_samples
from gpuflows.core.slo.measure import SloPolicy
from gpuflows.core.store.io import atomic_write_json, read_json
from gpuflows.pipelines.gpu_baseline.hwbench import HwMeasurement
from gpuflows.pipelines.gpu_baseline.suite import measured

FLOW = "gpu-baseline"
log = logging.getLogger("gpuflows.gpu_baseline")


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
    over = [
        f"{m.name} measured {m.value:.4g} {m.unit} = {m.ratio:.2f}x its bound "
        f"{m.peak:.4g} {m.unit} ({m.peak_source})"
        for m in hard
        if m.ratio > max_ratio
    ]
    bad = [
        f"{m.name} = {m.value} {m.unit}"
        for m in measurements
        if m.value is not None and not (m.value > 0 and m.value < float("inf"))
    ]
    ok = not over and not bad
    numbers: dict[str, Any] = {
        "max_ratio": max_ratio,
        "over_peak": len(over),
        "non_finite": len(bad),
    }
    numbers |= {f"ratio.{m.name}": round(m.ratio, 4) for m in hard}
    return CheckResult(
        name="plausible_vs_peak",
        passed=ok,
        numbers=numbers,
        reason=f"every figure at or below {max_ratio:.2f}x its peak ("
        + ", ".join(f"{m.name} {m.ratio:.2f}" for m in hard)
        + ")"
        if ok
        else f"impossible figures: {'; '.join(over + bad)} (timing or synchronisation bug)",
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
    samples_ms: dict[str, list[float]] = field(default_factory=dict)

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
            samples_ms={m.name: list(m.samples_ms) for m in measured(measurements)},
        )

    def _samples_path(self) -> Path:
        p = self.history.path(self.config, self.hardware)
        return p.with_name(p.stem + ".samples.json")

    def _stored_samples(self, run: str) -> dict[str, list[float]]:
        p = self._samples_path()
        return dict(read_json(p).get(run, {})) if p.exists() else {}

    def reproduction(self, policy: TrustPolicy) -> Reproduction | None:
        """This run's timing samples against the last comparable run's (95 % bootstrap CI of
        the ratio of median times; reproduced unless the CI lies wholly outside the policy's
        relative tolerance); best-of-N figures when the earlier run kept no samples. None when
        there is no earlier run (or no figure in common)."""
        prev = self.history.last(self.config, self.hardware, exclude_run=self.run_name)
        if not (prev and set(prev.values) & set(self.values)):
            return None
        tol = policy.reproduction_rel_tolerance
        ref = self._stored_samples(prev.run)
        common = sorted(
            k
            for k in set(ref) & set(self.samples_ms)
            if len(ref[k]) >= 2 and len(self.samples_ms[k]) >= 2
        )
        if not common:
            return reproduce_within_tolerance(
                self.values, prev.values, reference=f"run {prev.run}", tolerance=tol
            ).model_copy(update=prev.reference_fields())  # issue 11: independence is checked
        details: dict[str, float] = {}
        worst = 0.0
        for k in common:
            c = compare_samples(self.samples_ms[k], ref[k], "median")
            gap = c.differs(tol)
            worst = max(worst, gap)
            details |= {
                f"{k}.time_ratio": round(c.ratio, 4),
                f"{k}.ci_low": round(c.ci_low, 4),
                f"{k}.ci_high": round(c.ci_high, 4),
                f"{k}.excess": round(gap, 4),
            }
        return Reproduction(
            method="tolerance",
            reference=f"run {prev.run} (samples: 95 % CI of median-time ratio)",
            matched=worst <= tol,
            max_rel_diff=round(worst, 4),
            tolerance=tol,
            details=details,
            **prev.reference_fields(),  # issue 11: assess checks commit, clean tree, data
        )

    def record(self, lock: EnvironmentLock) -> None:
        """Append this run to the history (the next run's reference), its samples alongside."""
        record = RunRecord(
            run=self.run_name,
            git_commit=lock.git.commit,
            git_dirty=getattr(lock.git, "dirty", None),  # issue 11: reproduction independence
            data_digest=getattr(getattr(lock, "dataset", None), "digest", None),
            values=self.values,
        )
        self.history.append(self.config, self.hardware, record)
        p = self._samples_path()
        stored = read_json(p) if p.exists() else {}
        atomic_write_json(p, {**stored, self.run_name: self.samples_ms})


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
        data_provenance=DataProvenance(  # issue 11: data needs declared provenance for T2
            name="seeded benchmark operands",
            kind="operands",
            origin="gpuflows.pipelines.gpu_baseline (seeded random operands)",
            version=str(lock.seed),
            responsible="gpuflows gpu-baseline",
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
    """The Trust Tier of the evidence under ``policy``; every failed integrity or reproduction
    check is logged as a warning naming it and its measurement (the terminal shows it)."""
    assessment = assess(evidence, policy)
    failing = [c for c in evidence.integrity if not c.passed]
    failing += [c for c in assessment.checks if c.name == "reproduced" and not c.passed]
    for c in failing:
        log.warning("gpu-baseline check %s failed: %s", c.name, c.reason)
    return assessment


def review_applies(assessment: TrustAssessment) -> bool:
    """Dual review applies to a reproduced T2 result: T2 with only ``dual_review`` failing."""
    pending = [c.name for c in assessment.checks if not c.passed]
    return assessment.tier == Tier.T2 and pending == ["dual_review"]


def with_reviews(evidence: Evidence, reviews: list[Review], policy: TrustPolicy) -> TrustAssessment:
    """Record the reviews in the evidence and assess it again."""
    evidence.reviews = reviews
    return assess(evidence, policy)
