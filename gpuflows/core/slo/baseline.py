"""SLO baselines: one stored measurement per (service, hardware), and regressions against it.

Pure compute (no Prefect). Built on :mod:`gpuflows.core.slo.measure` (measurements, device keys).

Noise-aware: a latency metric is compared through the raw samples of both runs, not two point
figures. :func:`compare_samples` gives a 95 % bootstrap CI of the ratio of the statistic
(median, p95, ...; SciPy's ``stats.bootstrap``) and a one-sided Mann-Whitney U p-value; a metric
*regresses* only when the whole CI lies beyond the tolerance (``ci_low > 1 + tolerance`` for a
latency) and the rank test agrees, so a change inside the run-to-run noise the samples show is
never called a regression. Throughput and goodput are whole-run figures: their point ratio is
widened by the CI of the ratio of mean latencies. Quality, memory and error rate stay point
comparisons (no samples).

Two baselines per (service, hardware): the *current* one (promoted only from a T2-or-better run
that passed every SLO check and did not regress, see ``tasks.slo_report``) and the *first* one,
never replaced, against which every run is also compared (cumulative drift: ten runs each 4 %
slower under a 5 % tolerance pass run-to-run checks but drift ~48 % from the first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from gpuflows.core.naming import slug
from gpuflows.core.slo.measure import SloMeasurement, device_key, with_goodput_bound
from gpuflows.core.store.io import atomic_write_json, read_json, results_root

# An error rate may rise by ``tolerance * max(baseline, ERROR_RATE_FLOOR)`` (absolute) before it
# counts as a regression: from 0 % errors with a 10 % tolerance, 0.1 percentage points are allowed.
ERROR_RATE_FLOOR = 0.01

# Fewer latency samples than this on either side: point comparison (the CI would be meaningless).
MIN_SAMPLES = 5
CONFIDENCE = 0.95
_BOOT_RESAMPLES = 2000
_BOOT_SEED = 0  # a fixed seed makes the verdict reproducible; it resamples measured data only


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
        """Store ``m`` as the baseline of its service and device (atomic write); the first
        baseline ever saved for them is also kept, once, as :meth:`load_first`'s."""
        first = self.first_path(m.service, m.device)
        if not first.exists():
            atomic_write_json(first, m)
        return atomic_write_json(self.path(m.service, m.device), m)

    def first_path(self, service: str, device: str) -> Path:
        """File holding the first baseline of ``service`` on ``device`` (never replaced)."""
        return self.root / "first" / f"{slug(service)}--{device_key(device)}.json"

    def load_first(self, service: str, device: str) -> SloMeasurement | None:
        """The first baseline ever promoted for ``service`` on ``device``, or None."""
        p = self.first_path(service, device)
        return SloMeasurement.model_validate(read_json(p)) if p.exists() else None


class SampleComparison(BaseModel):
    """A statistic of two sample sets: the ratio current/baseline with its bootstrap CI."""

    statistic: str = Field(description="e.g. 'median', 'p95', 'mean'.")
    ratio: float = Field(description="statistic(current) / statistic(baseline).")
    ci_low: float = Field(description="Lower end of the ratio's bootstrap CI.")
    ci_high: float = Field(description="Upper end of the ratio's bootstrap CI.")
    confidence: float
    p_greater: float | None = Field(description="Mann-Whitney U p, current > baseline.")
    p_less: float | None = Field(description="Mann-Whitney U p, current < baseline.")
    n_current: int
    n_baseline: int

    def beyond(self, tolerance: float, worse_when: Literal["higher", "lower"]) -> bool:
        """The worsening exceeds ``tolerance`` at the CI's confidence, and the rank test (when
        there is one) agrees."""
        alpha = 1 - self.confidence
        if worse_when == "higher":
            return self.ci_low > 1 + tolerance and (self.p_greater or 0.0) < alpha
        return self.ci_high < 1 - tolerance and (self.p_less or 0.0) < alpha

    def differs(self, tolerance: float) -> float:
        """Smallest relative difference the CI admits (0 when it contains a ratio of 1)."""
        return max(0.0, self.ci_low - 1.0, 1.0 - self.ci_high)


_STATS: dict[str, Callable[..., np.ndarray]] = {
    "median": lambda x, axis=-1: np.median(x, axis=axis),
    "mean": lambda x, axis=-1: np.mean(x, axis=axis),
    "p50": lambda x, axis=-1: np.percentile(x, 50, axis=axis),
    "p95": lambda x, axis=-1: np.percentile(x, 95, axis=axis),
    "p99": lambda x, axis=-1: np.percentile(x, 99, axis=axis),
}


def compare_samples(
    current: Sequence[float],
    baseline: Sequence[float],
    statistic: str = "median",
    confidence: float = CONFIDENCE,
) -> SampleComparison:
    """Ratio ``statistic(current) / statistic(baseline)`` with a percentile bootstrap CI
    (independent resampling of both sets, SciPy) and the one-sided Mann-Whitney U p-values.

    Raises:
        ValueError: an unknown statistic, fewer than 2 samples on a side, or a statistic <= 0.
    """
    if statistic not in _STATS:
        raise ValueError(f"statistic={statistic!r}: use one of {sorted(_STATS)}")
    x = np.asarray(current, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    if x.size < 2 or y.size < 2:
        raise ValueError(f"need >= 2 samples on each side, got {x.size} and {y.size}")
    f = _STATS[statistic]
    base = float(f(y))
    if not base > 0:
        raise ValueError(f"baseline {statistic} is {base}: a ratio needs a positive value")
    ratio = float(f(x)) / base
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        lo = hi = ratio
        p_gt = 0.0 if ratio > 1 else 1.0
        p_lt = 0.0 if ratio < 1 else 1.0
    else:
        res = stats.bootstrap(
            (x, y),
            lambda a, b, axis=-1: f(a, axis=axis) / np.maximum(f(b, axis=axis), 1e-300),
            n_resamples=_BOOT_RESAMPLES,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(_BOOT_SEED),
        )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        p_gt = float(stats.mannwhitneyu(x, y, alternative="greater").pvalue)
        p_lt = float(stats.mannwhitneyu(x, y, alternative="less").pvalue)
    return SampleComparison(
        statistic=statistic,
        ratio=ratio,
        ci_low=min(lo, ratio),
        ci_high=max(hi, ratio),
        confidence=confidence,
        p_greater=p_gt,
        p_less=p_lt,
        n_current=int(x.size),
        n_baseline=int(y.size),
    )


class MetricDelta(BaseModel):
    """One metric of the current run against the baseline."""

    name: str = Field(description="Metric name, e.g. 'p95_ms'.")
    baseline: float = Field(description="Baseline value.")
    current: float = Field(description="Current value.")
    worse_when: Literal["higher", "lower"] = Field(description="Direction that is worse.")
    relative_change: float | None = Field(description="(current-baseline)/|baseline|; None if 0.")
    allowed_change: float = Field(description="Absolute worsening allowed before regressing.")
    regressed: bool = Field(description="Worsened by more than allowed.")
    method: str = Field("point", description="'samples' (bootstrap CI + rank test) or 'point'.")
    ci_low: float | None = Field(None, description="Lower end of the CI of current/baseline.")
    ci_high: float | None = Field(None, description="Upper end of the CI of current/baseline.")
    p_value: float | None = Field(None, description="One-sided Mann-Whitney U p (worse side).")


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


def _delta(
    name: str,
    base: float,
    cur: float,
    worse: str,
    allowed: float,
    cmp: SampleComparison | None = None,
    tolerance: float = 0.0,
) -> MetricDelta:
    worsening = cur - base if worse == "higher" else base - cur
    if cmp is None:
        return MetricDelta(
            name=name,
            baseline=base,
            current=cur,
            worse_when=worse,
            relative_change=(cur - base) / abs(base) if base != 0 else None,
            allowed_change=allowed,
            regressed=worsening > allowed,
        )
    return MetricDelta(
        name=name,
        baseline=base,
        current=cur,
        worse_when=worse,
        relative_change=(cur - base) / abs(base) if base != 0 else None,
        allowed_change=allowed,
        regressed=worsening > allowed and cmp.beyond(tolerance, worse),  # type: ignore[arg-type]
        method="samples",
        ci_low=cmp.ci_low,
        ci_high=cmp.ci_high,
        p_value=cmp.p_greater if worse == "higher" else cmp.p_less,
    )


def _rate_comparison(cur: SloMeasurement, base: SloMeasurement, point: float) -> SampleComparison:
    """CI of a whole-run rate's ratio: the point ratio widened by the relative spread of the CI
    of the ratio of mean latencies (a rate is items / time; the time carries the noise)."""
    m = compare_samples(cur.samples_ms, base.samples_ms, "mean")
    return m.model_copy(
        update={
            "statistic": "rate",
            "ratio": point,
            "ci_low": point * m.ratio / m.ci_high,
            "ci_high": point * m.ratio / m.ci_low,
            "p_greater": None,  # the rate also depends on the run's wall time: no rank test
            "p_less": None,
        }
    )


def compare_to_baseline(
    current: SloMeasurement, baseline: SloMeasurement | None, tolerance: float
) -> RegressionReport:
    """Compare ``current`` with ``baseline`` metric by metric.

    A metric regresses when it worsens by more than ``tolerance * |baseline|``: latencies
    (p50/p95/p99) and peak memory when higher, throughput, goodput and every quality metric
    present in both when lower. With >= :data:`MIN_SAMPLES` latency samples on both sides the
    latency and rate metrics must also worsen beyond the tolerance at 95 % confidence
    (:func:`compare_samples`): noise is not a regression. The error rate may rise by
    ``tolerance * max(baseline, ERROR_RATE_FLOOR)`` in absolute terms. Baselines from other
    hardware are not compared; the baseline's goodput is recomputed from its samples under the
    current run's latency bound.
    """
    if baseline is None:
        return RegressionReport(comparable=False, reason="no baseline stored", tolerance=tolerance)
    info = {"baseline_device": baseline.device, "baseline_measured_at": baseline.measured_at}
    if device_key(current.device) != device_key(baseline.device):
        why = f"baseline measured on {baseline.device!r}, current on {current.device!r}"
        return RegressionReport(comparable=False, reason=why, tolerance=tolerance, **info)
    if baseline.goodput_latency_ms != current.goodput_latency_ms:  # same bound on both sides
        baseline = with_goodput_bound(baseline, current.goodput_latency_ms)
    sampled = min(len(current.samples_ms), len(baseline.samples_ms)) >= MIN_SAMPLES
    pairs: list[tuple[str, float | None, float | None, str, SampleComparison | None]] = []
    if current.latency and baseline.latency:
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            cmp = (
                compare_samples(current.samples_ms, baseline.samples_ms, q[:3]) if sampled else None
            )
            b, c = getattr(baseline.latency, q), getattr(current.latency, q)
            pairs.append((q, b, c, "higher", cmp))
    for name in ("throughput_rps", "goodput_rps"):
        b, c = getattr(baseline, name), getattr(current, name)
        cmp = _rate_comparison(current, baseline, c / b) if sampled and b > 0 and c > 0 else None
        pairs.append((name, b, c, "lower", cmp))
    pairs.append(
        ("peak_memory_mb", baseline.peak_memory_mb, current.peak_memory_mb, "higher", None)
    )
    pairs += [
        (k, baseline.quality[k], v, "lower", None)
        for k, v in current.quality.items()
        if k in baseline.quality
    ]
    deltas = [
        _delta(n, b, c, w, tolerance * abs(b), cmp, tolerance)
        for n, b, c, w, cmp in pairs
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
