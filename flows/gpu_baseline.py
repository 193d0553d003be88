"""``gpu-baseline``: measure the machine the pipelines run on, as a tiered SLO-style report.

Matmul throughput (fp32, tf32, bf16), device memory bandwidth and host<->device copy bandwidth
(pinned and pageable: what a model swap costs), each against the datasheet peak or a measured
ceiling. On a machine without a GPU it measures the CPU and says so (a CPU fallback for a GPU
target stays at T1). This module only wires the steps; their code is in
:mod:`gpuflows.pipelines.gpu_baseline` and :mod:`tasks.hardware`.

    python -m flows.gpu_baseline                 # auto device
    python -m flows.gpu_baseline --device cpu --repeats 50
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from gpuflows.pipelines.gpu_baseline import (
    BaselineRun,
    GpuBaselineParams,
    assess_baseline,
    baseline_body,
    baseline_evidence,
    baseline_payload,
    baseline_title,
    regressions,
    review_applies,
    slo_measurements,
    suite_sizes,
    tier_line,
    with_reviews,
)
from tasks.cli import run_cli
from tasks.crash_guard import crash_stale_runs
from tasks.hardware import (
    load_policies,
    lock_environment,
    measure_suite,
    pick_device,
    publish_slos,
)
from tasks.monitoring import gpu_monitor
from tasks.reports import publish_tiered_report, run_dir
from tasks.result_store import prefect_results_dir
from tasks.review import collect_reviews
from tasks.summary import summary_printer

__all__ = ["REPORT_KEY", "GpuBaselineParams", "gpu_baseline", "main"]

REPORT_KEY = "gpu-baseline-report"


@flow(name="gpu-baseline", log_prints=True, result_storage=prefect_results_dir())
def gpu_baseline(params: GpuBaselineParams = GpuBaselineParams()) -> dict[str, Any]:  # noqa: B008
    """Measure this machine's compute and memory throughput; publish a tiered report."""
    crash_stale_runs()
    log = get_run_logger()
    trust_policy, slo_policy = load_policies(params.trust_policy_block, params.slo_policy_block)
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

    target = params.target_device
    run = BaselineRun.of(
        run_dir("gpu-baseline").name, choice, sizes, params.repeats, params.warmup, measurements
    )
    evidence = baseline_evidence(lock, measurements, choice, target, run.reproduction(trust_policy))
    assessment = assess_baseline(evidence, trust_policy)
    if params.review:
        if review_applies(assessment):
            reviews = collect_reviews(
                trust_policy.min_reviewers,
                timeout_s=params.review_timeout_s,
                poll_interval_s=params.review_poll_s,
            )
            assessment = with_reviews(evidence, reviews, trust_policy)
        else:
            log.warning(
                "review skipped: dual review applies to a reproduced T2 result; still missing: %s",
                "; ".join(assessment.missing_for_next),
            )

    slo_results = publish_slos(
        slo_measurements(measurements, choice, target),
        slo_policy,
        tier_block=tier_line(assessment, REPORT_KEY),
        tier=assessment.tier,
    )
    regressed = regressions(slo_results)
    out = run_dir("gpu-baseline")
    published = publish_tiered_report(
        key=REPORT_KEY,
        title=baseline_title(choice),
        body_md=baseline_body(choice, measurements, grant, regressed, monitor.report),
        assessment=assessment,
        lock=lock,
        payload=baseline_payload(choice, sizes, measurements, grant, slo_results),
        out_dir=out,
    )
    run.record(lock)
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
        "values": run.values,
        "report": published,
        "regressed": regressed,
        "results_dir": str(out),
    }


CLI_ALIASES = {"--size": "sizes"}
"""Spellings of the hand-written CLI this one replaced, still accepted (``--size NAME=VALUE``)."""


def _head(out: dict[str, Any]) -> list[str]:
    fallback = " (CPU fallback)" if out["fallback"] else ""
    return [f"\ngpu-baseline finished: {out['tier']} on {out['device']}{fallback}"]


def main(argv: list[str] | None = None) -> int:
    """The command line, generated from :class:`GpuBaselineParams` (``--help`` lists every field)."""
    return run_cli(
        gpu_baseline,
        GpuBaselineParams,
        argv,
        prog="python -m flows.gpu_baseline",
        description=__doc__.split("\n\n")[0],
        aliases=CLI_ALIASES,
        report=summary_printer("gpu-baseline", _head),
    )


if __name__ == "__main__":
    raise SystemExit(main())
