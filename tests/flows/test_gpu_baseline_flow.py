"""gpu-baseline end to end under the Prefect harness: artifacts, tiers, reproduction, dual review."""

from __future__ import annotations

import pytest

from flows.gpu_baseline import REPORT_KEY, GpuBaselineParams, gpu_baseline
from tasks.artifacts import read_artifacts

TINY = {
    "matmul_n_fp32": 96,
    "matmul_n_tf32": 96,
    "matmul_n_bf16": 64,
    "copy_nbytes": 1 << 20,
    "host_nbytes": 1 << 20,
}


def test_auto_on_a_cpu_machine_is_a_t1_fallback_with_artifacts(prefect_harness):
    out = gpu_baseline(GpuBaselineParams(repeats=3, warmup=1, sizes=TINY, monitor_interval_s=0.2))
    assert out["device"] == "cpu" and out["fallback"] is True
    assert out["tier"] == "T1-Indicative"
    assert out["values"]["matmul_fp32"] > 0 and out["values"]["memory_copy"] > 0
    (report, *_) = read_artifacts(REPORT_KEY)
    assert (
        "T1-Indicative" in report.data
        and "measured on cpu for a cuda target (fallback)" in report.data
    )
    assert "Missing for T2-Internal" in report.data
    assert read_artifacts("gpu-baseline-monitor-summary")[0].data.count("GPU monitor inactive") == 1
    assert read_artifacts("gpu-baseline-slo-matmul-fp32"), "an SLO report per measured op"


def test_bad_parameters_fail_before_any_measurement():
    with pytest.raises(ValueError, match="device"):
        GpuBaselineParams(device="gpu0")
    with pytest.raises(ValueError, match="repeats"):
        GpuBaselineParams(repeats=0)
    with pytest.raises(ValueError, match="devcie"):
        GpuBaselineParams(devcie="cpu")


def test_unknown_size_name_fails_naming_it(prefect_harness):
    with pytest.raises(ValueError, match="sizes.matmul_n is unknown"):
        gpu_baseline(GpuBaselineParams(device="cpu", repeats=3, sizes={"matmul_n": 64}))


def test_cpu_for_cpu_target_passes_device_check_but_needs_reproduction(prefect_harness):
    from gpuflows.core.store.io import read_json

    out = gpu_baseline(
        GpuBaselineParams(
            device="cpu", repeats=30, warmup=1, sizes=TINY, seed=11, monitor_interval_s=0.2
        )
    )
    assert out["fallback"] is False
    report = read_artifacts(REPORT_KEY)[0].data
    assert "measured on the device it is for" in report
    # integrity passes on this CPU for honest reasons: every figure under its ISA upper bound
    md = open(out["report"]["markdown"], encoding="utf-8").read()  # report.md keeps the tables
    assert "| plausible_vs_peak | pass |" in md and "upper bound" in md
    dirty = read_json(out["report"]["json"])["lock"]["git"]["dirty"]
    if dirty:  # a shared working tree with uncommitted files: the lock is incomplete
        assert out["tier"] == "T1-Indicative" and "clean git tree" in report, report
    else:  # no reviews were asked for: T2 at most, and what T3 still needs is named
        assert out["tier"] == "T2-Internal", report
        assert "Missing for T3-Verified" in report and "0 of 2 distinct approvals" in report
