"""The baseline's report: the measurement table, the SLO measurements per operation, the
markdown body and the ``report.json`` payload (``tasks.reports.publish_tiered_report`` adds the
tier, its checks and the environment lock around the body)."""

from __future__ import annotations

from typing import Any

from gpuflows.core.evidence.checks import checks_table
from gpuflows.core.evidence.trust import TrustAssessment
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.slo.measure import SloMeasurement, latency_stats
from gpuflows.pipelines.gpu_baseline.evidence import check_core_measured, check_plausible
from gpuflows.pipelines.gpu_baseline.hwbench import HwMeasurement
from gpuflows.pipelines.gpu_baseline.suite import measured


def measurement_table(measurements: list[HwMeasurement]) -> str:
    """One markdown row per measurement: figure, best, peak, ratio, latency, samples, note."""
    rows = [
        "| measurement | value | best | peak | ratio | p50 ms | p95 ms | samples | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in measurements:
        if m.value is None:
            rows.append(f"| {m.name} | — | — | — | — | — | — | 0 | {m.note} |")
            continue
        lat = latency_stats(m.samples_ms)
        peak = f"{m.peak:.4g} ({m.peak_source})" if m.peak else "—"
        ratio = f"{m.ratio:.2f}" if m.ratio is not None else "—"
        rows.append(
            f"| {m.name} | {m.value:.4g} {m.unit} | {m.best:.4g} | {peak} | {ratio} | "
            f"{lat.p50_ms:.3g} | {lat.p95_ms:.3g} | {lat.count} | {m.note} |"
        )
    return "\n".join(rows)


def tier_line(assessment: TrustAssessment, report_key: str) -> str:
    """The line each SLO report carries: the run's tier and where its report is."""
    return f"Trust Tier of the run: **{assessment.tier.value}** (see `{report_key}`)."


def baseline_kind(choice: DeviceChoice) -> str:
    """'cpu' for a run measured on the CPU (asked for or a fallback), else 'gpu' (issue 11)."""
    return "cpu" if choice.kind == "cpu" else "gpu"


def baseline_title(choice: DeviceChoice) -> str:
    """The report title: a ``--device cpu`` (or fallback) run is a CPU baseline and says so."""
    return f"{baseline_kind(choice).upper()} baseline"


def slo_measurements(
    measurements: list[HwMeasurement], choice: DeviceChoice, target: str
) -> list[tuple[str, str, SloMeasurement]]:
    """(operation, artifact key, SLO measurement) of every measured operation."""
    return [
        (
            m.name,
            f"gpu-baseline-slo-{m.name.replace('_', '-')}",
            SloMeasurement.from_samples(
                f"{baseline_kind(choice)}-baseline-{m.name}",  # a CPU run never keys a GPU's
                m.samples_ms,
                device=f"{choice.device} {choice.name}",
                target_device=target,
                warmup=m.warmup,
            ),
        )
        for m in measured(measurements)
    ]


def regressions(slo_results: dict[str, dict[str, Any]]) -> list[str]:
    """Operations whose SLO report found a regression against the stored baseline, sorted."""
    return sorted(k for k, r in slo_results.items() if r["regressed"])


def baseline_body(
    choice: DeviceChoice,
    measurements: list[HwMeasurement],
    grant: Any,
    regressed: list[str],
    monitor_report: Any,
) -> str:
    """Device, measurement table, integrity checks (each failure names its measurement), VRAM
    budget and measured peak, regressions, GPU monitor."""
    peak = grant.peak
    return "\n\n".join(
        [
            f"Device: **{choice.device}** — {choice.name}"
            + (f" (fallback: {choice.reason})" if choice.fallback else ""),
            measurement_table(measurements),
            "Integrity checks:\n\n"
            + checks_table([check_plausible(measurements), check_core_measured(measurements)]),
            f"VRAM budget: {grant.occupy_gib} GiB on `{grant.limit}` ({grant.estimate_basis}); "
            f"measured peak {(peak.measured_bytes or 0) / 2**30:.2f} GiB"
            if grant.limit and peak
            else "VRAM budget: none (CPU run)",
            f"Baseline regressions: {', '.join(regressed) if regressed else 'none'}; GPU monitor: "
            f"{monitor_report.reason or str(monitor_report.samples) + ' samples'}",
        ]
    )


def baseline_payload(
    choice: DeviceChoice,
    sizes: dict[str, int],
    measurements: list[HwMeasurement],
    grant: Any,
    slo_results: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """``report.json``'s payload: device, sizes, raw measurements, VRAM grant, SLO outcomes."""
    return {
        "device": choice,
        "sizes": sizes,
        "measurements": measurements,
        "vram": grant,
        "slo": {
            k: {kk: v[kk] for kk in ("json", "regressed", "baseline_updated")}
            for k, v in slo_results.items()
        },
    }
