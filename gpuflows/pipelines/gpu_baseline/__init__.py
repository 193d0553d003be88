"""gpu-baseline: measure the machine the pipelines run on, as a tiered SLO-style report.

The public surface the flow (``flows.gpu_baseline``) and its tasks (``tasks.hardware``) use; the
modules behind it: :mod:`.params` (the flow's parameters), :mod:`.hwbench` (the suite; its pieces
in :mod:`.common`, :mod:`.copy_bandwidth`, :mod:`.tf32`, peaks in :mod:`.datasheet`),
:mod:`.suite` (sizes, operands record), :mod:`.evidence` (checks, history, reproduction, review
rule) and :mod:`.report` (table, SLO measurements, body, payload).
"""

from gpuflows.pipelines.gpu_baseline.evidence import (
    BaselineRun,
    assess_baseline,
    baseline_evidence,
    check_core_measured,
    check_plausible,
    default_slo_policy,
    review_applies,
    with_reviews,
)
from gpuflows.pipelines.gpu_baseline.hwbench import (
    HwMeasurement,
    estimate_suite_bytes,
    run_suite,
)
from gpuflows.pipelines.gpu_baseline.params import GpuBaselineParams
from gpuflows.pipelines.gpu_baseline.report import (
    baseline_body,
    baseline_payload,
    baseline_title,
    measurement_table,
    regressions,
    slo_measurements,
    tier_line,
)
from gpuflows.pipelines.gpu_baseline.suite import (
    OPERANDS_VERSION,
    measured,
    operands_ref,
    suite_sizes,
)

__all__ = [
    "OPERANDS_VERSION",
    "BaselineRun",
    "GpuBaselineParams",
    "HwMeasurement",
    "assess_baseline",
    "baseline_body",
    "baseline_evidence",
    "baseline_payload",
    "baseline_title",
    "check_core_measured",
    "check_plausible",
    "default_slo_policy",
    "estimate_suite_bytes",
    "measured",
    "measurement_table",
    "operands_ref",
    "regressions",
    "review_applies",
    "run_suite",
    "slo_measurements",
    "suite_sizes",
    "tier_line",
    "with_reviews",
]
