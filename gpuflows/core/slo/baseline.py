"""SLO baselines: one stored measurement per (service, hardware), and regressions against it.

Pure compute (no Prefect). Built on :mod:`gpuflows.core.slo.measure` (measurements, device keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from gpuflows.core.naming import slug
from gpuflows.core.slo.measure import SloMeasurement, device_key, with_goodput_bound
from gpuflows.core.store.io import atomic_write_json, read_json, results_root

# An error rate may rise by ``tolerance * max(baseline, ERROR_RATE_FLOOR)`` (absolute) before it
# counts as a regression: from 0 % errors with a 10 % tolerance, 0.1 percentage points are allowed.
ERROR_RATE_FLOOR = 0.01


class BaselineStore:
    """One JSON baseline per (service, device hardware) in a folder.

    Keyed by the device *actually used* (ordinal dropped, see :func:`device_key`): numbers are
    only compared on the same hardware. Default folder: ``results_root()/"baselines"``.
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else results_root() / "baselines"

    def path(self, service: str, device: str) -> Path:
        """File holding the baseline of ``service`` on ``device``."""
        return self.root / f"{slug(service)}--{device_key(device)}.json"

    def load(self, service: str, device: str) -> SloMeasurement | None:
        """The stored baseline, or None if there is none."""
        p = self.path(service, device)
        if not p.exists():
            return None
        m = SloMeasurement.model_validate(read_json(p))
        if m.service != service:
            raise ValueError(f"{p} holds service {m.service!r}, not {service!r} (name clash)")
        return m

    def save(self, m: SloMeasurement) -> Path:
        """Store ``m`` as the baseline of its service and device (atomic write)."""
        return atomic_write_json(self.path(m.service, m.device), m)


class MetricDelta(BaseModel):
    """One metric of the current run against the baseline."""

    name: str = Field(description="Metric name, e.g. 'p95_ms'.")
    baseline: float = Field(description="Baseline value.")
    current: float = Field(description="Current value.")
    worse_when: Literal["higher", "lower"] = Field(description="Direction that is worse.")
    relative_change: float | None = Field(description="(current-baseline)/|baseline|; None if 0.")
    allowed_change: float = Field(description="Absolute worsening allowed before regressing.")
    regressed: bool = Field(description="Worsened by more than allowed.")


class RegressionReport(BaseModel):
    """Current run vs stored baseline, metric by metric."""

    comparable: bool = Field(description="Whether a same-device baseline was compared.")
    reason: str = Field(description="Why not comparable, or a one-line summary.")
    tolerance: float = Field(description="Fraction a metric may worsen.")
    baseline_device: str | None = Field(None, description="Device of the baseline.")
    baseline_measured_at: str | None = Field(None, description="When the baseline was measured.")
    metrics: list[MetricDelta] = Field(default_factory=list, description="Per-metric deltas.")
    regressed: bool = Field(False, description="Any metric regressed.")

    @property
    def regressed_metrics(self) -> list[MetricDelta]:
        """The metrics that regressed."""
        return [d for d in self.metrics if d.regressed]


def _delta(name: str, base: float, cur: float, worse: str, allowed: float) -> MetricDelta:
    worsening = cur - base if worse == "higher" else base - cur
    return MetricDelta(
        name=name,
        baseline=base,
        current=cur,
        worse_when=worse,
        relative_change=(cur - base) / abs(base) if base != 0 else None,
        allowed_change=allowed,
        regressed=worsening > allowed,
    )


def compare_to_baseline(
    current: SloMeasurement, baseline: SloMeasurement | None, tolerance: float
) -> RegressionReport:
    """Compare ``current`` with ``baseline`` metric by metric.

    A metric regresses when it worsens by more than ``tolerance * |baseline|``: latencies
    (p50/p95/p99) and peak memory when higher, throughput, goodput and every quality metric
    present in both when lower. The error rate may rise by ``tolerance * max(baseline,
    ERROR_RATE_FLOOR)`` in absolute terms. Baselines from other hardware are not compared; the
    baseline's goodput is recomputed from its samples under the current run's latency bound.
    """
    if baseline is None:
        return RegressionReport(comparable=False, reason="no baseline stored", tolerance=tolerance)
    info = {"baseline_device": baseline.device, "baseline_measured_at": baseline.measured_at}
    if device_key(current.device) != device_key(baseline.device):
        why = f"baseline measured on {baseline.device!r}, current on {current.device!r}"
        return RegressionReport(comparable=False, reason=why, tolerance=tolerance, **info)
    if baseline.goodput_latency_ms != current.goodput_latency_ms:  # same bound on both sides
        baseline = with_goodput_bound(baseline, current.goodput_latency_ms)
    pairs: list[tuple[str, float | None, float | None, str]] = []
    if current.latency and baseline.latency:
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            pairs.append((q, getattr(baseline.latency, q), getattr(current.latency, q), "higher"))
    pairs += [
        ("throughput_rps", baseline.throughput_rps, current.throughput_rps, "lower"),
        ("goodput_rps", baseline.goodput_rps, current.goodput_rps, "lower"),
        ("peak_memory_mb", baseline.peak_memory_mb, current.peak_memory_mb, "higher"),
    ]
    pairs += [
        (k, baseline.quality[k], v, "lower")
        for k, v in current.quality.items()
        if k in baseline.quality
    ]
    deltas = [
        _delta(n, b, c, w, tolerance * abs(b))
        for n, b, c, w in pairs
        if b is not None and c is not None
    ]
    err_allowed = tolerance * max(baseline.error_rate, ERROR_RATE_FLOOR)
    deltas.insert(
        0, _delta("error_rate", baseline.error_rate, current.error_rate, "higher", err_allowed)
    )
    bad = [d.name for d in deltas if d.regressed]
    reason = f"regressed: {', '.join(bad)}" if bad else f"{len(deltas)} metrics within tolerance"
    return RegressionReport(
        comparable=True,
        reason=reason,
        tolerance=tolerance,
        metrics=deltas,
        regressed=bool(bad),
        **info,
    )
