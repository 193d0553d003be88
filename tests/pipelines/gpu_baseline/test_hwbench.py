"""gpu-baseline compute core: datasheet lookup, CPU peak estimate, measurements, checks.

CPU tests use tiny sizes (the whole file runs in a few seconds); `gpu` tests need CUDA.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from gpuflows.pipelines.gpu_baseline import common as hwbench_common
from gpuflows.pipelines.gpu_baseline import hwbench
from gpuflows.pipelines.gpu_baseline.cpu_peak import CPU_ESTIMATE_SOURCE, cpu_peak_estimate
from gpuflows.pipelines.gpu_baseline.datasheet import DevicePeak, peak_for
from gpuflows.pipelines.gpu_baseline.hwbench import (
    HwMeasurement,
    check_ratio,
    cpu_copy_ceiling_gbs,
    cuda_tf32,
    default_sizes,
    estimate_copy_bytes,
    estimate_matmul_bytes,
    estimate_suite_bytes,
    gbs_from_ms,
    host_device_bandwidth_gbs,
    matmul_flops,
    matmul_tflops,
    memory_bandwidth_gbs,
    run_suite,
    tf32_state,
    tflops_from_ms,
)

TINY = {
    "matmul_n_fp32": 64,
    "matmul_n_tf32": 64,
    "matmul_n_bf16": 32,
    "copy_nbytes": 1 << 20,
    "host_nbytes": 1 << 20,
    "inner": 1,
}


def _positive_finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x) and x > 0


@pytest.fixture
def restore_tf32():
    """Put the TF32 flags back to the state before the test, whatever the test did."""
    cuda, mkldnn = torch.backends.cuda.matmul, torch.backends.mkldnn.matmul
    before = (cuda.fp32_precision, mkldnn.fp32_precision, torch.get_float32_matmul_precision())
    yield
    torch.set_float32_matmul_precision(before[2])
    cuda.fp32_precision, mkldnn.fp32_precision = before[0], before[1]


# --- arithmetic (hand-checked) -----------------------------------------------------------------


def test_flop_and_byte_arithmetic_by_hand():
    assert matmul_flops(1000) == 2_000_000_000
    # 2e9 FLOP in 2 ms = 1e12 FLOP/s = 1 TFLOP/s.
    assert tflops_from_ms(1000, 2.0) == pytest.approx(1.0)
    # 2e9 bytes in 1 s = 2 GB/s (decimal GB).
    assert gbs_from_ms(2_000_000_000, 1000.0) == pytest.approx(2.0)


def test_value_is_median_best_is_min_ratio_is_value_over_peak(monkeypatch):
    """Inject timings and a peak: every derived number checked by hand."""
    monkeypatch.setattr(hwbench, "time_callable", lambda fn, **kw: [4.0, 2.0, 8.0])
    fake = DevicePeak(
        name="fake",
        fp32_tflops=0.001,
        tf32_tflops=None,
        bf16_tflops=None,
        mem_bw_gbs=None,
        host_link_gbs=None,
        source="test",
    )
    monkeypatch.setattr(hwbench_common, "_peak_info", lambda device: (fake, "fake", ""))
    m = matmul_tflops("cpu", "fp32", n=100, repeats=3, warmup=0)
    # 2 * 100^3 = 2e6 FLOP; median 4 ms -> 5e8 FLOP/s = 5e-4 TFLOP/s; min 2 ms -> 1e-3.
    assert m.value == pytest.approx(5e-4)
    assert m.best == pytest.approx(1e-3)
    assert m.peak == 0.001 and m.peak_source == "test"
    assert m.ratio == pytest.approx(0.5)
    assert m.samples_ms == [4.0, 2.0, 8.0]


# --- measurements on the CPU -------------------------------------------------------------------


def test_matmul_fp32_cpu():
    m = matmul_tflops("cpu", "fp32", n=64, repeats=3, warmup=1)
    assert m.name == "matmul_fp32" and m.unit == "TFLOP/s" and m.device == "cpu"
    assert _positive_finite(m.value) and _positive_finite(m.best)
    assert m.best >= m.value
    assert len(m.samples_ms) == m.repeats == 3 and m.warmup == 1
    assert m.params["n"] == 64 and m.params["flops"] == 2 * 64**3
    if m.peak is not None:
        assert m.ratio == pytest.approx(m.value / m.peak)
        assert m.peak_source.startswith(CPU_ESTIMATE_SOURCE)


def test_matmul_bf16_cpu_runs_and_says_if_emulated():
    m = matmul_tflops("cpu", "bf16", n=32, repeats=2, warmup=1)
    assert _positive_finite(m.value)
    assert len(m.samples_ms) == 2
    if cpu_peak_estimate().bf16_tflops is None:
        assert "emulated" in m.note and m.ratio is None


def test_tf32_is_skipped_on_cpu():
    m = matmul_tflops("cpu", "tf32", n=32, repeats=2, warmup=0)
    assert m.value is None and m.repeats == 0 and m.samples_ms == []
    assert "not applicable on cpu" in m.note


def test_cpu_copy_ceiling_single_and_multi_thread():
    for threads in (1, 2):
        c = cpu_copy_ceiling_gbs(1 << 20, repeats=3, warmup=1, threads=threads)
        assert _positive_finite(c.value) and len(c.samples_ms) == 3
        assert c.params["bytes_moved"] == 2 * (1 << 20)
        assert c.params["threads"] == threads


def test_memory_bandwidth_cpu_against_measured_ceiling():
    ceiling = cpu_copy_ceiling_gbs(1 << 20, repeats=3, warmup=1)
    m = memory_bandwidth_gbs("cpu", 1 << 20, repeats=3, warmup=1, ceiling=ceiling)
    assert _positive_finite(m.value) and len(m.samples_ms) == 3
    assert m.params["bytes_moved"] == 2 * m.params["nbytes"] == 2 * (1 << 20)
    assert m.peak == ceiling.value and "np.copyto" in m.peak_source
    assert m.ratio == pytest.approx(m.value / m.peak)
    # Without a ceiling given, one is measured.
    m2 = memory_bandwidth_gbs("cpu", 1 << 20, repeats=2, warmup=0)
    assert _positive_finite(m2.peak) and m2.ratio == pytest.approx(m2.value / m2.peak)


@pytest.mark.parametrize("direction", ["h2d", "d2h"])
@pytest.mark.parametrize("pinned", [True, False])
def test_host_device_copy_is_a_skip_record_on_cpu(direction, pinned):
    m = host_device_bandwidth_gbs("cpu", 1024, direction, pinned, repeats=2, warmup=0)
    assert m.value is None and m.ratio is None and m.repeats == 0
    assert m.note.startswith(f"{direction}: not applicable on cpu")
    assert m.name == f"{direction}_{'pinned' if pinned else 'pageable'}"


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        host_device_bandwidth_gbs("cpu", 1024, "sideways", True)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        matmul_tflops("cpu", "fp32", n=0)
    with pytest.raises(ValueError):
        memory_bandwidth_gbs("mps", 1 << 20)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            matmul_tflops("cuda", "fp32", n=8)


def test_run_suite_cpu_tiny(restore_tf32):
    before = tf32_state()
    out = run_suite("cpu", TINY, repeats=2, warmup=1)
    assert tf32_state() == before
    names = [m.name for m in out]
    assert names == [
        "matmul_fp32",
        "matmul_tf32",
        "matmul_bf16",
        "copy_numpy_ceiling",
        "memory_copy",
        "h2d_pinned",
        "h2d_pageable",
        "d2h_pinned",
        "d2h_pageable",
    ]
    for m in out:
        if m.value is None:
            assert m.note, f"{m.name} skipped without a reason"
        else:
            assert _positive_finite(m.value) and len(m.samples_ms) == m.repeats == 2
        assert HwMeasurement.model_validate_json(m.model_dump_json()) == m


# --- TF32 flags --------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["default", "legacy_on", "new_api_on", "set_precision_high"])
@pytest.mark.parametrize("enabled", [True, False])
def test_tf32_flags_restored(restore_tf32, user, enabled):
    m = torch.backends.cuda.matmul
    if user == "legacy_on":
        m.allow_tf32 = True
    elif user == "new_api_on":
        m.fp32_precision = "tf32"
    elif user == "set_precision_high":
        torch.set_float32_matmul_precision("high")
    before = tf32_state()
    with cuda_tf32(enabled):
        inside = tf32_state()
        # Both APIs agree inside (torch raises in cuBLAS when they are mixed).
        assert inside["cuda_matmul_fp32_precision"] == ("tf32" if enabled else "ieee")
        assert inside["mkldnn_matmul_fp32_precision"] == ("tf32" if enabled else "ieee")
        assert inside["float32_matmul_precision"] == ("high" if enabled else "highest")
        assert m.allow_tf32 is enabled
    assert tf32_state() == before


# --- sizes and memory estimates ----------------------------------------------------------------


def test_default_sizes_and_estimates():
    cpu = default_sizes("cpu")
    assert cpu["matmul_n_fp32"] <= 2048 and cpu["copy_nbytes"] == 64 << 20
    gpu = default_sizes("cuda", 80 << 30)
    assert gpu["matmul_n_bf16"] == 8192 and gpu["copy_nbytes"] == 1 << 30
    assert estimate_matmul_bytes(8192, "fp32") == 3 * 8192 * 8192 * 4
    assert estimate_matmul_bytes(8192, "bf16") == 3 * 8192 * 8192 * 2
    assert estimate_copy_bytes(1 << 30) == 2 << 30
    assert estimate_suite_bytes(gpu) == 2 << 30
    small = default_sizes("cuda", 2 << 30)  # 2 GiB card: everything under 512 MiB
    assert estimate_suite_bytes(small) <= 0.25 * (2 << 30)
    with pytest.raises(ValueError):
        default_sizes("tpu")  # type: ignore[arg-type]


# --- checks ------------------------------------------------------------------------------------


def _m(value, peak, note=""):
    return HwMeasurement(
        name="matmul_fp32",
        device="cuda:0",
        device_name="NVIDIA Mystery GPU",
        unit="TFLOP/s",
        value=value,
        best=value,
        samples_ms=[1.0] if value is not None else [],
        warmup=0,
        repeats=1 if value is not None else 0,
        peak=peak,
        peak_source="test sheet" if peak else None,
        ratio=value / peak if value is not None and peak else None,
        note=note,
    )


def test_check_ratio():
    ok = check_ratio(_m(40.0, 50.0), 0.7)
    assert ok.passed and ok.name == "matmul_fp32_vs_peak" and ok.numbers["ratio"] == 0.8
    low = check_ratio(_m(20.0, 50.0), 0.7)
    assert not low.passed and low.numbers["ratio"] == 0.4
    nopeak = check_ratio(_m(20.0, None), 0.7)
    assert not nopeak.passed and nopeak.reason == "no datasheet peak for NVIDIA Mystery GPU"
    skipped = check_ratio(_m(None, None, note="bf16 not supported on this GPU"), 0.7)
    assert not skipped.passed and "bf16 not supported" in skipped.reason


# --- datasheet ---------------------------------------------------------------------------------


def test_peak_for_known_names():
    h100 = peak_for("NVIDIA H100 80GB HBM3")
    assert h100 is not None
    assert (h100.fp32_tflops, h100.tf32_tflops, h100.bf16_tflops) == (67.0, 494.7, 989.4)
    assert (h100.mem_bw_gbs, h100.host_link_gbs) == (3352.0, 64.0)
    pcie = peak_for("NVIDIA H100 PCIe")
    assert (pcie.fp32_tflops, pcie.tf32_tflops, pcie.bf16_tflops) == (51.0, 378.0, 756.0)
    assert pcie.mem_bw_gbs == 2039.0
    h200 = peak_for("NVIDIA H200")
    assert h200.bf16_tflops == 989.4 and h200.mem_bw_gbs == 4800.0
    a100 = peak_for("NVIDIA A100-SXM4-80GB")
    assert (a100.fp32_tflops, a100.tf32_tflops, a100.bf16_tflops) == (19.5, 156.0, 312.0)
    assert (a100.mem_bw_gbs, a100.host_link_gbs) == (2039.0, 32.0)
    assert peak_for("NVIDIA A100-PCIE-40GB").mem_bw_gbs == 1555.0
    assert peak_for("NVIDIA L4").name == "L4"
    assert peak_for("NVIDIA A10").name == "A10"
    assert peak_for("NVIDIA GeForce RTX 4090").bf16_tflops == 165.2
    for p in (h100, pcie, h200, a100):
        assert "datasheet" in p.source


@pytest.mark.parametrize(
    "name",
    [
        "NVIDIA L40S",  # not the L4
        "NVIDIA A10G",  # not the A10
        "NVIDIA H200 NVL",  # lower clocks than the H200 SXM
        "NVIDIA H100 NVL",
        "NVIDIA GeForce RTX 4090 D",
        "NVIDIA H100 80GB HBM3 MIG 1g.10gb",  # a slice, not the whole GPU
        "Tesla T4",
        "",
    ],
)
def test_peak_for_unknown_is_none(name):
    assert peak_for(name) is None


# --- CPU estimate ------------------------------------------------------------------------------


def test_cpu_peak_estimate_live():
    p = cpu_peak_estimate()
    assert p.source == CPU_ESTIMATE_SOURCE
    assert p.tf32_tflops is None and p.mem_bw_gbs is None and p.host_link_gbs is None
    if p.fp32_tflops is not None:
        assert p.fp32_tflops > 0 and p.details["cores"] >= 1


_SMT_CPUINFO = "\n\n".join(
    f"processor\t: {i}\nmodel name\t: Test CPU @ 2.00GHz\nphysical id\t: 0\n"
    f"core id\t\t: {i // 2}\ncpu MHz\t\t: 1200.000\nflags\t\t: sse2 avx fma avx2"
    for i in range(4)
)


def test_cpu_peak_estimate_by_hand():
    # 4 logical CPUs = 2 cores x 2 SMT threads; avx2+fma: 2 units x 8 lanes x 2 = 32 FLOP/cycle.
    # lscpu max MHz wins over the model name and the current 'cpu MHz'.
    p = cpu_peak_estimate(_SMT_CPUINFO, "CPU max MHz:  3000.0000\n", {0, 1, 2, 3}, "max 100000", "")
    assert p.details["cores"] == 2 and p.details["mhz"] == 3000.0
    assert p.details["fp32_flop_per_cycle_per_core"] == 32
    assert p.fp32_tflops == pytest.approx(2 * 3000e6 * 32 / 1e12)  # 0.192
    assert p.name == "Test CPU @ 2.00GHz" and p.bf16_tflops == p.fp32_tflops  # bf16 via fp32
    # Affinity to one core's two threads -> 1 core; no lscpu -> model-name clock 2000 MHz.
    p1 = cpu_peak_estimate(_SMT_CPUINFO, "", {0, 1}, "", "")
    assert p1.details["cores"] == 1 and p1.details["mhz"] == 2000.0
    # sysfs max frequency (kHz) before the model name.
    p2 = cpu_peak_estimate(_SMT_CPUINFO, "", {0, 1}, "", "3500000\n")
    assert p2.details["mhz"] == 3500.0
    # cgroup quota of 0.5 CPU caps 2 cores to 1.
    p3 = cpu_peak_estimate(_SMT_CPUINFO, "", {0, 1, 2, 3}, "50000 100000", "")
    assert p3.details["cores"] == 1


@pytest.mark.parametrize(
    "cpuinfo",
    [
        "",  # file missing
        "garbage without colons\n\x00\x01",
        "processor : x\nflags : \n",  # unparsable ids, no flags
        "processor\t: 0\nFeatures\t: fp asimd evtstrm\nCPU implementer\t: 0x41\n",  # aarch64
        "processor\t: 0\ncpu MHz\t: not-a-number\nflags\t: sse2\n",
    ],
)
def test_cpu_peak_estimate_unusual_cpuinfo_does_not_crash(cpuinfo):
    p = cpu_peak_estimate(cpuinfo, "", {0}, "", "")
    assert p.source == CPU_ESTIMATE_SOURCE
    if p.fp32_tflops is None:
        assert p.note  # says why


def test_cpu_peak_estimate_aarch64_with_clock():
    p = cpu_peak_estimate(
        "processor\t: 0\nFeatures\t: fp asimd\n", "CPU max MHz: 2000\n", {0}, "", ""
    )
    assert p.details["isa"] == "asimd" and p.fp32_tflops == pytest.approx(2000e6 * 16 / 1e12)


_EPYC = (
    "processor\t: 0\nmodel name\t: AMD EPYC\nphysical id\t: 0\ncore id\t: 0\n"
    "cpu MHz\t\t: 2596.152\nflags\t\t: sse2 avx fma avx2 avx512f avx512_bf16\n\n"
    "processor\t: 1\nmodel name\t: AMD EPYC\nphysical id\t: 0\ncore id\t: 1\n"
    "cpu MHz\t\t: 2596.152\nflags\t\t: sse2 avx fma avx2 avx512f avx512_bf16\n"
)


def test_cpu_bound_without_a_max_clock_uses_the_boost_ceiling():
    # A VM exposes only the current clock (2596 MHz); turbo runs above it, so the bound uses
    # CLOCK_CEILING_MHZ: 2 cores x 6200 MHz x 64 FLOP/cycle (avx512f) = 0.794 TFLOP/s fp32,
    # x 128 (avx512_bf16) = 1.587 bf16. The 0.43 fp32 / 1.53 bf16 are then below it.
    p = cpu_peak_estimate(_EPYC, "", {0, 1}, "", "")
    assert p.details["mhz"] == pytest.approx(2596.152) and p.details["bound_mhz"] == 6200.0
    assert p.fp32_tflops == pytest.approx(2 * 6200e6 * 64 / 1e12)
    assert p.bf16_tflops == pytest.approx(2 * 6200e6 * 128 / 1e12)
    assert "no maximum clock exposed" in p.note
    assert 0.43 / p.fp32_tflops < 1.0 and 1.53 / p.bf16_tflops < 1.0


def test_amx_bf16_bound_and_fp32_bound_for_emulated_bf16():
    amx = _EPYC.replace("avx512_bf16", "avx512_bf16 amx_tile amx_bf16")
    p = cpu_peak_estimate(amx, "CPU max MHz: 3800\n", {0, 1}, "", "")
    assert p.details["bf16_isa"] == "amx_bf16"
    assert p.bf16_tflops == pytest.approx(2 * 3800e6 * 1024 / 1e12)  # 7.78 TFLOP/s
    # no native bf16: computed through fp32, bounded by the fp32 peak (never unchecked)
    plain = cpu_peak_estimate(_SMT_CPUINFO, "CPU max MHz: 3000\n", {0, 1, 2, 3}, "", "")
    assert plain.bf16_tflops == plain.fp32_tflops and plain.details["bf16_isa"].startswith("fp32")


def _fig(name: str, value: float, peak: float, samples=(1.0,)) -> HwMeasurement:
    return HwMeasurement(
        name=name,
        device="cpu",
        device_name="AMD EPYC",
        unit="TFLOP/s",
        value=value,
        best=value,
        samples_ms=list(samples),
        warmup=0,
        repeats=len(samples),
        peak=peak,
        peak_source="estimated from cpuinfo: test, upper bound",
        ratio=value / peak,
    )


def test_plausibility_names_the_measurement_that_fails(caplog, monkeypatch):
    from gpuflows.pipelines.gpu_baseline.evidence import check_plausible

    ok = check_plausible([_fig("matmul_fp32", 0.43, 0.794), _fig("matmul_bf16", 1.53, 1.587)])
    assert ok.passed and "matmul_bf16 0.96" in ok.reason
    planted = check_plausible([_fig("matmul_fp32", 0.43, 0.794), _fig("matmul_bf16", 15.3, 1.587)])
    assert not planted.passed and planted.numbers["over_peak"] == 1
    assert "matmul_bf16 measured 15.3 TFLOP/s = 9.64x its bound 1.587 TFLOP/s" in planted.reason
    assert "matmul_fp32 measured" not in planted.reason
    # the report body shows it, and the terminal gets a warning naming it
    from types import SimpleNamespace

    from gpuflows.core.evidence.trust import TrustPolicy
    from gpuflows.pipelines.gpu_baseline.evidence import assess_baseline
    from gpuflows.pipelines.gpu_baseline.report import baseline_body

    figs = [_fig("matmul_fp32", 0.43, 0.794), _fig("matmul_bf16", 15.3, 1.587)]
    choice = SimpleNamespace(device="cpu", name="AMD EPYC", fallback=False, reason="")
    grant = SimpleNamespace(peak=None, limit=None)
    body = baseline_body(choice, figs, grant, [], SimpleNamespace(reason="off", samples=0))
    assert "| plausible_vs_peak | **FAIL** |" in body and "matmul_bf16 measured 15.3" in body
    from gpuflows.pipelines.gpu_baseline import evidence as ev_mod

    monkeypatch.setattr(ev_mod, "assess", lambda ev, pol: SimpleNamespace(checks=[]))
    with caplog.at_level("WARNING", logger="gpuflows.gpu_baseline"):
        assess_baseline(SimpleNamespace(integrity=[planted]), TrustPolicy())
    assert "plausible_vs_peak failed: impossible figures: matmul_bf16 measured" in caplog.text


def test_reproduction_compares_samples_not_point_figures(tmp_path):
    import numpy as np

    from gpuflows.core.evidence.history import RunHistory
    from gpuflows.core.evidence.trust import TrustPolicy
    from gpuflows.pipelines.gpu_baseline.evidence import BaselineRun

    rng = np.random.default_rng(0)
    hist = RunHistory("gpu-baseline", root=tmp_path)
    pol = TrustPolicy()  # 5 % reproduction tolerance

    def run(name: str, scale: float, cv: float, like: BaselineRun | None = None) -> BaselineRun:
        s = (10.0 * scale * rng.lognormal(0, cv, 30)).tolist()
        if like is not None:  # the same spread, every time exactly `scale` x, in another order
            s = [scale * t for t in reversed(like.samples_ms["matmul_fp32"])]
        r = BaselineRun("r", {"sizes": {}}, "cpu-test", {"matmul_fp32": 1 / min(s)}, hist, {})
        r.run_name, r.samples_ms = name, {"matmul_fp32": s}
        return r

    class _Lock:
        class git:  # noqa: N801 - the lock's attribute shape
            commit = "abc"

    first = run("a", 1.0, 0.15)
    first.record(_Lock)
    # 10 % slower medians but a 15 % spread within each run: not a failed reproduction
    noisy = run("b", 1.10, 0.15, like=first).reproduction(pol)
    assert noisy.details["matmul_fp32.time_ratio"] == pytest.approx(1.10)
    assert noisy.matched and noisy.details["matmul_fp32.ci_low"] < 1.05
    # 40 % slower with a 1 % spread: a real difference, reported with formatted figures
    tight = run("c", 1.0, 0.01)
    tight.record(_Lock)
    slow = run("d", 1.40, 0.01).reproduction(pol)
    assert not slow.matched and slow.max_rel_diff > 0.3
    assert slow.details["matmul_fp32.ci_low"] > 1.3


def test_hwbench_does_not_import_prefect():
    code = "import sys, gpuflows.pipelines.gpu_baseline.hwbench; sys.exit('prefect' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- GPU ---------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["fp32", "tf32", "bf16"])
def test_gpu_matmul_ratio_plausible(dtype):
    m = matmul_tflops("cuda", dtype, n=8192, repeats=5, warmup=2, inner=3)
    assert _positive_finite(m.value)
    if m.peak is None:
        pytest.skip(f"no datasheet peak: {m.note}")
    assert 0 < m.ratio <= 1.2, m


@pytest.mark.gpu
def test_gpu_fp32_matmul_is_really_fp32(restore_tf32):
    """Inside cuda_tf32(False) the matmul error against float64 is FP32-sized, not TF32-sized."""
    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("TF32 needs compute capability >= 8.0 (Ampere)")
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.rand((1024, 1024), generator=gen, device="cuda")
    b = torch.rand((1024, 1024), generator=gen, device="cuda")
    ref = a.double() @ b.double()
    with cuda_tf32(False):
        err32 = ((a @ b).double() - ref).abs().max().item() / ref.abs().max().item()
    with cuda_tf32(True):
        errtf = ((a @ b).double() - ref).abs().max().item() / ref.abs().max().item()
    assert err32 < 1e-5 < errtf


@pytest.mark.gpu
def test_gpu_memory_copy_ratio_plausible():
    m = memory_bandwidth_gbs("cuda", 1 << 30, repeats=5, warmup=2, inner=5)
    assert _positive_finite(m.value)
    if m.peak is not None:
        assert 0 < m.ratio <= 1.2, m


@pytest.mark.gpu
def test_gpu_h2d_pinned_faster_than_pageable():
    pinned = host_device_bandwidth_gbs("cuda", 256 << 20, "h2d", True, repeats=5, warmup=2)
    pageable = host_device_bandwidth_gbs("cuda", 256 << 20, "h2d", False, repeats=5, warmup=2)
    assert pinned.value > pageable.value, (pinned.value, pageable.value)
    if pinned.peak is not None:
        assert 0 < pinned.ratio <= 1.2


@pytest.mark.gpu
def test_gpu_run_suite_defaults():
    out = run_suite("cuda", repeats=3, warmup=1)
    assert all(_positive_finite(m.value) or m.note for m in out)
    assert {m.name for m in out if m.value is not None} >= {"matmul_fp32", "memory_copy"}
