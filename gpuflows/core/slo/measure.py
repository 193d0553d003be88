"""SLO measurements: latency statistics, a policy, measuring a service, and named checks.

Pure compute (no Prefect). A measurement keeps its raw samples, warm-up and error counts and the
device it ran on next to the device it is *for*, so a CPU fallback can never pass for a GPU
baseline. Errors are counted, never turned into a latency or a score.

Split by concern: baselines and regressions in :mod:`gpuflows.core.slo.baseline` (which imports this),
markdown and plot in :mod:`gpuflows.core.slo.report`, the Prefect side (artifact, events) in
``tasks/slo_report.py``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, computed_field

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.hardware.devices import device_kind
from gpuflows.core.hardware.timing import device_sync
from gpuflows.core.naming import slug
from gpuflows.core.slo.bounds import P99_MIN_N, LatencyBounds, latency_bounds, min_samples


class LatencyStats(BaseModel):
    """Summary of measured latencies (warm-up already excluded), all in milliseconds."""

    count: int = Field(ge=1, description="Number of samples summarised.")
    warmup_excluded: int = Field(ge=0, description="Warm-up calls dropped before these samples.")
    p50_ms: float = Field(description="Median latency (linear interpolation).")
    p95_ms: float = Field(description="95th percentile latency (linear interpolation).")
    p99_ms: float = Field(description="99th percentile latency (linear interpolation).")
    mean_ms: float = Field(description="Mean latency.")
    max_ms: float = Field(description="Largest latency.")
    min_ms: float = Field(description="Smallest latency.")
    std_ms: float = Field(description="Sample standard deviation (ddof=1; 0 for one sample).")


def latency_stats(samples_ms: Sequence[float], *, warmup_excluded: int = 0) -> LatencyStats:
    """Percentiles, mean, extremes and spread of raw latency samples.

    Args:
        samples_ms: measured latencies in ms, warm-up already dropped by the caller.
        warmup_excluded: how many warm-up calls the caller dropped (recorded, not applied).

    Returns:
        The statistics; percentiles by ``numpy.percentile(method="linear")``.
    """
    a = np.asarray(samples_ms, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("latency_stats needs at least one latency sample, got none")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError("latency samples must be finite and >= 0 ms")
    p50, p95, p99 = np.percentile(a, [50, 95, 99], method="linear")
    return LatencyStats(
        count=int(a.size),
        warmup_excluded=warmup_excluded,
        p50_ms=float(p50),
        p95_ms=float(p95),
        p99_ms=float(p99),
        mean_ms=float(a.mean()),
        max_ms=float(a.max()),
        min_ms=float(a.min()),
        std_ms=float(a.std(ddof=1)) if a.size > 1 else 0.0,
    )


class SloPolicy(BaseModel):
    """Service-level objectives; a bound left as None is not checked."""

    p95_ms_max: float | None = Field(300.0, gt=0, description="Largest allowed p95 latency in ms.")
    p99_ms_max: float | None = Field(None, gt=0, description="Largest allowed p99 latency in ms.")
    error_rate_max: float | None = Field(
        0.008, ge=0, le=1, description="Largest allowed fraction of failed requests."
    )
    min_throughput_rps: float | None = Field(
        None, gt=0, description="Smallest allowed throughput in items per second."
    )
    quality_improvement_min: float | None = Field(
        None, description="Smallest allowed quality improvement over the reference, a fraction."
    )
    peak_memory_mb_max: float | None = Field(
        None, gt=0, description="Largest allowed peak device memory in MB."
    )
    regression_tolerance: float = Field(
        0.10, ge=0, description="Fraction a metric may worsen vs the baseline before it regresses."
    )
    goodput_latency_ms: float | None = Field(
        None, gt=0, description="Latency bound in ms for goodput; None means p95_ms_max."
    )

    @property
    def goodput_bound_ms(self) -> float | None:
        """Latency at or under which a successful request counts toward goodput."""
        return self.goodput_latency_ms if self.goodput_latency_ms is not None else self.p95_ms_max


def device_key(device: str) -> str:
    """Hardware identity of a device string, without the ordinal: ``cuda:1 NVIDIA H100`` -> ``cuda-nvidia-h100``."""
    return slug(re.sub(r"^(\w+):\d+", r"\1", device.strip()))


class SloMeasurement(BaseModel):
    """One measured run of a service: raw samples, counts, rates and where it ran."""

    service: str = Field(description="Service measured, e.g. 'seed-000'.")
    device: str = Field(description="Device actually used, e.g. 'cuda:0 NVIDIA H100' or 'cpu'.")
    target_device: str = Field(description="Device the baseline is for.")
    latency: LatencyStats | None = Field(description="Stats of successful calls; None if none.")
    samples_ms: list[float] = Field(description="Raw latencies of successful calls, in ms.")
    requests: int = Field(ge=0, description="Timed calls, failed ones included.")
    errors: int = Field(ge=0, description="Timed calls that raised.")
    error_types: dict[str, int] = Field(default_factory=dict, description="Errors by type name.")
    error_rate: float = Field(ge=0, le=1, description="errors / requests.")
    throughput_rps: float = Field(ge=0, description="Successful items per measured second.")
    goodput_rps: float = Field(ge=0, description="Items per second, successful and within bound.")
    goodput_latency_ms: float | None = Field(description="Bound used for goodput; None: no bound.")
    quality: dict[str, float] = Field(default_factory=dict, description="Quality metrics.")
    peak_memory_mb: float | None = Field(None, description="Peak device memory in MB if known.")
    warmup: int = Field(ge=0, description="Untimed warm-up calls before the timed ones.")
    warmup_errors: int = Field(0, ge=0, description="Warm-up calls that raised (not in rates).")
    batch_size: int = Field(1, ge=1, description="Items per call.")
    measured_s: float = Field(ge=0, description="Wall seconds of the timed calls.")
    timer: str = Field("perf_counter_ns after device sync", description="How calls were timed.")
    measured_at: str = Field(description="UTC time the measurement ended, ISO 8601.")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fallback(self) -> bool:
        """True when measured on another kind of device than the target (e.g. CPU for a GPU)."""
        return device_kind(self.device) != device_kind(self.target_device)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bounds(self) -> LatencyBounds:
        """Percentiles over *all* timed requests (a failed one is a breach, +inf), each with its
        distribution-free 95 % upper bound (p99 only from 299 requests), and the error rate's
        Clopper-Pearson upper bound (:mod:`gpuflows.core.slo.bounds`)."""
        return latency_bounds(self.samples_ms, self.errors)

    @classmethod
    def from_samples(
        cls,
        service: str,
        samples_ms: Sequence[float],
        *,
        device: str,
        target_device: str | None = None,
        errors: int = 0,
        error_types: dict[str, int] | None = None,
        warmup: int = 0,
        measured_s: float | None = None,
        goodput_latency_ms: float | None = None,
        batch_size: int = 1,
        quality: dict[str, float] | None = None,
        peak_memory_mb: float | None = None,
    ) -> SloMeasurement:
        """Build a measurement from latencies the caller already has (successful calls only).

        Args:
            measured_s: wall seconds of the timed calls; default: sum of the samples (the time
                spent in failed calls is then unknown and left out).
        """
        samples = [float(s) for s in samples_ms]
        requests = len(samples) + errors
        if requests == 0:
            raise ValueError(f"{service}: no timed requests (no samples and no errors)")
        if error_types and sum(error_types.values()) != errors:
            raise ValueError(f"error_types {error_types} do not add up to errors={errors}")
        if measured_s is None:
            measured_s = sum(samples) / 1e3
        ok_items = len(samples) * batch_size
        return cls(
            service=service,
            device=device,
            target_device=target_device or device,
            latency=latency_stats(samples, warmup_excluded=warmup) if samples else None,
            samples_ms=samples,
            requests=requests,
            errors=errors,
            error_types=dict(error_types or ({"unknown": errors} if errors else {})),
            error_rate=errors / requests,
            throughput_rps=ok_items / measured_s if measured_s > 0 else 0.0,
            goodput_rps=_goodput(samples, goodput_latency_ms, measured_s, batch_size),
            goodput_latency_ms=goodput_latency_ms,
            quality=dict(quality or {}),
            peak_memory_mb=peak_memory_mb,
            warmup=warmup,
            batch_size=batch_size,
            measured_s=measured_s,
            measured_at=datetime.now(UTC).isoformat(),
        )


def _goodput(samples: list[float], bound_ms: float | None, seconds: float, batch: int) -> float:
    if seconds <= 0:
        return 0.0
    good = len(samples) if bound_ms is None else sum(1 for s in samples if s <= bound_ms)
    return good * batch / seconds


def with_goodput_bound(m: SloMeasurement, bound_ms: float | None) -> SloMeasurement:
    """Recompute goodput from the raw samples under another latency bound (e.g. the policy's)."""
    gp = _goodput(m.samples_ms, bound_ms, m.measured_s, m.batch_size)
    return m.model_copy(update={"goodput_rps": gp, "goodput_latency_ms": bound_ms})


def measure_service(
    service: str,
    fn: Callable[[], Any],
    *,
    requests: int,
    warmup: int,
    device: str,
    target_device: str | None = None,
    sync: Callable[[], None] | None = None,
    goodput_latency_ms: float | None = None,
    batch_size: int = 1,
    quality: dict[str, float] | None = None,
    peak_memory_mb: float | None = None,
) -> SloMeasurement:
    """Call ``fn()`` ``warmup`` times untimed, then ``requests`` times timed, counting errors.

    Timing follows :mod:`gpuflows.core.hardware.timing`: ``sync()`` before every clock read, ``perf_counter_ns``.
    A call that raises is an error: its type is counted, its time is in ``measured_s`` but not in
    the latency samples (latency stats cover successful calls only). On CUDA the peak allocated
    memory of the timed calls is read from torch unless ``peak_memory_mb`` is given.

    Args:
        device: device actually used; its first token (``cuda:0``) picks the default ``sync``.
        target_device: device the baseline is for (default: ``device``).
        goodput_latency_ms: latency bound for goodput (None: every successful call counts).
        batch_size: items per call, for throughput in items per second.

    Returns:
        The measurement, with raw samples kept.
    """
    if requests < 1:
        raise ValueError(f"requests must be >= 1, got {requests}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    torch_dev = device.split()[0] if device.strip() else "cpu"
    sync = sync or device_sync(torch_dev)
    on_cuda = torch_dev.startswith("cuda") and peak_memory_mb is None
    warmup_errors = 0
    for _ in range(warmup):
        try:
            fn()
        except Exception:  # noqa: BLE001 - counted in warmup_errors, not hidden
            warmup_errors += 1
    sync()
    if on_cuda:
        import torch

        torch.cuda.reset_peak_memory_stats(torch_dev)
    samples: list[float] = []
    error_types: dict[str, int] = {}
    start = time.perf_counter_ns()
    for _ in range(requests):
        sync()
        t0 = time.perf_counter_ns()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - an error is counted, never a fake latency
            error_types[type(exc).__name__] = error_types.get(type(exc).__name__, 0) + 1
            continue
        finally:
            sync()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    measured_s = (time.perf_counter_ns() - start) / 1e9
    if on_cuda:
        peak_memory_mb = torch.cuda.max_memory_allocated(torch_dev) / 2**20
    m = SloMeasurement.from_samples(
        service,
        samples,
        device=device,
        target_device=target_device,
        errors=sum(error_types.values()),
        error_types=error_types,
        warmup=warmup,
        measured_s=measured_s,
        goodput_latency_ms=goodput_latency_ms,
        batch_size=batch_size,
        quality=quality,
        peak_memory_mb=peak_memory_mb,
    )
    return m.model_copy(update={"warmup_errors": warmup_errors})


# --- checks: one per objective; a bound of None means the check is skipped (not returned) ------


def _bound_check(
    name: str, value: float | None, bound: float, unit: str, upper: bool
) -> CheckResult:
    nums: dict[str, Any] = {"value": value, "bound": bound, "unit": unit}
    if value is None:
        return CheckResult(name=name, passed=False, numbers=nums, reason=f"{name} not measured")
    ok = value <= bound if upper else value >= bound
    rel = "<=" if upper else ">="
    verdict = "within" if ok else "violates"
    return CheckResult(
        name=name,
        passed=ok,
        numbers=nums,
        reason=f"{name} {value:.4g} {unit} {verdict} bound {rel} {bound:.4g} {unit}",
    )


def _percentile_check(m: SloMeasurement, q: str, bound: float) -> CheckResult:
    """The q-th percentile's 95 % upper bound over every request (failed = breach) vs ``bound``."""
    b = m.bounds
    pb = b.percentiles[q]
    name = f"{q}_latency"
    nums: dict[str, Any] = {
        "upper_95": pb.upper_ms,
        "estimate": pb.estimate_ms,
        "bound": bound,
        "unit": "ms",
        "n": b.n,
        "failed": b.failed,
    }
    need = P99_MIN_N if q == "p99" else min_samples(pb.q, b.confidence)
    if pb.upper_ms is None:
        return CheckResult(
            name=name,
            passed=False,
            numbers=nums,
            reason=f"{q}: n={b.n} requests give no 95 % upper bound (needs n >= {need})",
        )
    ok = pb.upper_ms <= bound
    est = "n/a" if pb.estimate_ms is None else f"{pb.estimate_ms:.4g} ms"
    return CheckResult(
        name=name,
        passed=ok,
        numbers=nums,
        reason=f"{q} 95 % upper bound {pb.upper_ms:.4g} ms (estimate {est}, n={b.n}, "
        f"{b.failed} failed) {'within' if ok else 'violates'} bound <= {bound:.4g} ms",
    )


def check_p95_latency(m: SloMeasurement, policy: SloPolicy) -> CheckResult | None:
    """p95's 95 % upper bound at or under ``policy.p95_ms_max`` (None if the bound is None)."""
    if policy.p95_ms_max is None:
        return None
    return _percentile_check(m, "p95", policy.p95_ms_max)


def check_p99_latency(m: SloMeasurement, policy: SloPolicy) -> CheckResult | None:
    """p99's 95 % upper bound at or under ``policy.p99_ms_max``; fails below 299 requests."""
    if policy.p99_ms_max is None:
        return None
    return _percentile_check(m, "p99", policy.p99_ms_max)


def check_error_rate(m: SloMeasurement, policy: SloPolicy) -> CheckResult | None:
    """The error rate's Clopper-Pearson 95 % upper bound at or under ``policy.error_rate_max``
    (0 errors in fewer than 373 requests cannot show < 0.8 %)."""
    if policy.error_rate_max is None:
        return None
    b = m.bounds
    ok = b.error_rate_upper <= policy.error_rate_max
    return CheckResult(
        name="error_rate",
        passed=ok,
        numbers={
            "upper_95": b.error_rate_upper,
            "rate": b.error_rate,
            "bound": policy.error_rate_max,
            "errors": m.errors,
            "requests": m.requests,
        },
        reason=f"error rate {b.error_rate:.2%} ({m.errors} of {m.requests}), Clopper-Pearson "
        f"95 % upper bound {b.error_rate_upper:.2%} {'within' if ok else 'violates'} bound "
        f"<= {policy.error_rate_max:.2%}",
    )


def check_throughput(m: SloMeasurement, policy: SloPolicy) -> CheckResult | None:
    """Throughput at or over ``policy.min_throughput_rps`` (None if the bound is None)."""
    if policy.min_throughput_rps is None:
        return None
    return _bound_check("throughput", m.throughput_rps, policy.min_throughput_rps, "rps", False)


def check_quality_improvement(m: SloMeasurement, policy: SloPolicy) -> CheckResult | None:
    """``quality["quality_improvement"]`` at or over the policy minimum; missing fails."""
    if policy.quality_improvement_min is None:
        return None
    v = m.quality.get("quality_improvement")
    return _bound_check(
        "quality_improvement", v, policy.quality_improvement_min, "fraction", upper=False
    )


def check_peak_memory(m: SloMeasurement, policy: SloPolicy) -> CheckResult | None:
    """Peak device memory at or under ``policy.peak_memory_mb_max``; unmeasured fails."""
    if policy.peak_memory_mb_max is None:
        return None
    return _bound_check("peak_memory", m.peak_memory_mb, policy.peak_memory_mb_max, "MB", True)


SLO_CHECKS = (
    check_p95_latency,
    check_p99_latency,
    check_error_rate,
    check_throughput,
    check_quality_improvement,
    check_peak_memory,
)


def check_slo(m: SloMeasurement, policy: SloPolicy) -> list[CheckResult]:
    """Run every check whose policy bound is set; a metric that was not measured fails."""
    return [c for check in SLO_CHECKS if (c := check(m, policy)) is not None]
