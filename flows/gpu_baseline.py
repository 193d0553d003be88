"""``gpu-baseline``: measure the machine the pipelines run on, as a tiered SLO-style report.

Matmul throughput (fp32, tf32, bf16), device memory bandwidth and host<->device copy bandwidth
(pinned and pageable: what a model swap costs), each against the datasheet peak or a measured
ceiling. On a machine without a GPU it measures the CPU and says so (a CPU fallback for a GPU
target stays at T1).

    python -m flows.gpu_baseline                 # auto device
    python -m flows.gpu_baseline --device cpu --repeats 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from gpuflows.core.evidence.history import RunHistory, RunRecord
from gpuflows.core.evidence.trust import (
    Evidence,
    Tier,
    TrustPolicy,
    assess,
    reproduce_within_tolerance,
)
from gpuflows.core.slo.measure import SloMeasurement, SloPolicy, latency_stats
from tasks.hardware import (
    check_core_measured,
    check_plausible,
    lock_environment,
    measure_suite,
    pick_device,
    suite_sizes,
)
from tasks.monitoring import gpu_monitor
from tasks.reports import publish_tiered_report, run_dir
from tasks.review import collect_reviews
from tasks.slo_report import publish_slo_report

REPORT_KEY = "gpu-baseline-report"


class GpuBaselineParams(BaseModel):
    """Parameters of ``gpu-baseline`` (the form in the Prefect UI). Unknown names are errors."""

    model_config = ConfigDict(extra="forbid")

    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="'auto' (first GPU, else CPU), 'cpu', 'cuda' or 'cuda:N'.",
    )
    repeats: int = Field(30, ge=3, le=10_000, description="Timed calls per measurement.")
    warmup: int = Field(3, ge=0, le=1_000, description="Untimed calls before timing.")
    seed: int = Field(0, ge=0, description="Seed for Python, NumPy, torch and CuPy.")
    sizes: dict[str, int] = Field(
        default_factory=dict,
        description="Overrides of the suite sizes (matmul_n_fp32, copy_nbytes, ...).",
    )
    monitor_interval_s: float = Field(
        0.5, gt=0, description="GPU monitor sampling interval in seconds."
    )
    trust_policy_block: str | None = Field(
        None, description="Name of a saved TrustPolicyBlock; default rules if empty."
    )
    slo_policy_block: str | None = Field(
        None, description="Name of a saved SloPolicyBlock; default: regression checks only."
    )
    review: bool = Field(
        False, description="Pause for dual review when the result is T2 and reproduced."
    )
    review_timeout_s: int = Field(3600, ge=10, description="How long each review pause waits.")
    review_poll_s: int = Field(10, ge=1, description="How often a paused run checks for a review.")
    vram_timeout_s: float = Field(3600.0, gt=0, description="Longest wait for VRAM slots.")


def _policies(p: GpuBaselineParams) -> tuple[TrustPolicy, SloPolicy]:
    from blocks import SloPolicyBlock, TrustPolicyBlock

    trust = (
        TrustPolicyBlock.load(p.trust_policy_block).to_policy()
        if p.trust_policy_block
        else TrustPolicy()
    )
    # A hardware op has no user-facing latency bound; the stored baseline and its tolerance are the SLO.
    slo = (
        SloPolicyBlock.load(p.slo_policy_block).to_policy()
        if p.slo_policy_block
        else SloPolicy(p95_ms_max=None, error_rate_max=None)
    )
    return trust, slo


def _table(measurements: list[Any]) -> str:
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


@flow(name="gpu-baseline", log_prints=True)
def gpu_baseline(params: GpuBaselineParams = GpuBaselineParams()) -> dict[str, Any]:  # noqa: B008
    """Measure this machine's compute and memory throughput; publish a tiered report."""
    log = get_run_logger()
    trust_policy, slo_policy = _policies(params)
    choice = pick_device(params.device)
    sizes = suite_sizes(choice, params.sizes)  # bad sizes fail here, before any measurement
    lock = lock_environment(params.seed, choice, sizes, params.model_dump(mode="json"))
    with gpu_monitor(
        interval_s=params.monitor_interval_s,
        key="gpu-baseline-monitor",
        title=f"gpu-baseline on {choice.device} ({choice.name})",
    ) as monitor:
        measurements, grant = measure_suite(
            choice, sizes, params.repeats, params.warmup, params.vram_timeout_s
        )
    measured = [m for m in measurements if m.value is not None]

    target = "cpu" if params.device == "cpu" else "cuda"
    run_name = run_dir("gpu-baseline").name
    history = RunHistory("gpu-baseline")
    config = {"sizes": sizes, "repeats": params.repeats, "warmup": params.warmup}
    hardware = f"{choice.kind}-{choice.name}"
    # Reproduction compares best-of-N figures: on a shared host the median drifts with load,
    # the fastest sample tracks what the device can do.
    values = {m.name: float(m.best) for m in measured}
    prev = history.last(config, hardware, exclude_run=run_name)
    reproduction = (
        reproduce_within_tolerance(
            values,
            prev.values,
            reference=f"run {prev.run}",
            tolerance=trust_policy.reproduction_rel_tolerance,
        )
        if prev and set(prev.values) & set(values)
        else None
    )
    evidence = Evidence(
        synthetic_data=False,
        data_note="hardware microbenchmark: seeded operands, the measured quantity is device throughput",
        model=None,
        lock=lock,
        sample_size=min((len(m.samples_ms) for m in measured), default=0),
        integrity=[check_plausible(measurements), check_core_measured(measurements)],
        measured_device=choice.kind,
        target_device=target,
        reproduction=reproduction,
    )
    assessment = assess(evidence, trust_policy)
    if params.review:
        pending = [c.name for c in assessment.checks if not c.passed]
        if assessment.tier == Tier.T2 and pending == ["dual_review"]:
            evidence.reviews = collect_reviews(
                trust_policy.min_reviewers,
                timeout_s=params.review_timeout_s,
                poll_interval_s=params.review_poll_s,
            )
            assessment = assess(evidence, trust_policy)
        else:
            log.warning(
                "review skipped: dual review applies to a reproduced T2 result; still missing: %s",
                "; ".join(assessment.missing_for_next),
            )

    tier_line = f"Trust Tier of the run: **{assessment.tier.value}** (see `{REPORT_KEY}`)."
    slo_results = {}
    for m in measured:
        slo_m = SloMeasurement.from_samples(
            f"gpu-baseline-{m.name}",
            m.samples_ms,
            device=f"{choice.device} {choice.name}",
            target_device=target,
            warmup=m.warmup,
        )
        slo_results[m.name] = publish_slo_report(
            slo_m,
            slo_policy,
            key=f"gpu-baseline-slo-{m.name.replace('_', '-')}",
            tier_block=tier_line,
        )
    regressed = sorted(k for k, r in slo_results.items() if r["regressed"])
    peak = grant.peak
    body = "\n\n".join(
        [
            f"Device: **{choice.device}** — {choice.name}"
            + (f" (fallback: {choice.reason})" if choice.fallback else ""),
            _table(measurements),
            f"VRAM budget: {grant.occupy_gib} GiB on `{grant.limit}` ({grant.estimate_basis}); measured peak "
            f"{(peak.measured_bytes or 0) / 2**30:.2f} GiB"
            if grant.limit and peak
            else "VRAM budget: none (CPU run)",
            f"Baseline regressions: {', '.join(regressed) if regressed else 'none'}; GPU monitor: "
            f"{monitor.report.reason or str(monitor.report.samples) + ' samples'}",
        ]
    )
    out = run_dir("gpu-baseline")
    published = publish_tiered_report(
        key=REPORT_KEY,
        title="GPU baseline",
        body_md=body,
        assessment=assessment,
        lock=lock,
        payload={
            "device": choice,
            "sizes": sizes,
            "measurements": measurements,
            "vram": grant,
            "slo": {
                k: {kk: v[kk] for kk in ("json", "regressed", "baseline_updated")}
                for k, v in slo_results.items()
            },
        },
        out_dir=out,
    )
    history.append(
        config, hardware, RunRecord(run=run_name, git_commit=lock.git.commit, values=values)
    )
    log.info(
        "gpu-baseline: %s on %s; report %s",
        assessment.tier.value,
        choice.device,
        published["markdown"],
    )
    return {
        "tier": assessment.tier.value,
        "device": choice.device,
        "fallback": choice.fallback,
        "values": values,
        "report": published,
        "regressed": regressed,
        "results_dir": str(out),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m flows.gpu_baseline", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--size", action="append", default=[], metavar="NAME=VALUE", help="override a suite size"
    )
    ap.add_argument("--review", action="store_true", help="pause for dual review when eligible")
    a = ap.parse_args(argv)
    try:
        sizes = {k: int(v) for k, v in (s.split("=", 1) for s in a.size)}
        params = GpuBaselineParams(
            device=a.device,
            repeats=a.repeats,
            warmup=a.warmup,
            seed=a.seed,
            sizes=sizes,
            review=a.review,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = gpu_baseline(params)
    print(
        f"\ngpu-baseline finished: {out['tier']} on {out['device']}"
        + (" (CPU fallback)" if out["fallback"] else "")
    )
    print(f"  report:    {out['report']['markdown']}")
    print(f"  files:     {out['results_dir']}")
    print(
        "  artifacts: gpu-baseline-report, gpu-baseline-monitor-summary, gpu-baseline-slo-* in the Prefect DB"
    )
    print(
        f"  UI:        {Path(sys.executable).parent / 'prefect'} server start   (from this folder), "
        "then open http://127.0.0.1:4200/artifacts"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
