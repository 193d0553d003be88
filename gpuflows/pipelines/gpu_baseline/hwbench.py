"""Measure the machine the pipelines run on: matmul TFLOP/s and copy GB/s against a peak.

Pure compute, no Prefect: the ``gpu-baseline`` flow wraps these in tasks. Every measurement is
an :class:`HwMeasurement` carrying its raw samples, warm-up and repeat counts, sizes, the peak it
is compared with and where that peak comes from (GPU: datasheet,
:mod:`gpuflows.pipelines.gpu_baseline.datasheet`; CPU compute: an upper-bound estimate from
cpuinfo, :mod:`gpuflows.pipelines.gpu_baseline.cpu_peak`; CPU copy: a measured ``np.copyto``
ceiling).
A measurement that cannot run here is still returned, with ``value=None`` and a note saying why.

Conventions:
    * ``value`` comes from the median sample, ``best`` from the fastest one.
    * Matmul: ``C = A @ B`` with ``n x n`` operands, FLOPs = ``2 n^3`` (one multiply and one add
      per inner-product term), TFLOP/s = 1e12 FLOP/s.
    * Device copy: ``dst.copy_(src)`` of ``nbytes`` moves ``2 * nbytes`` (read src + write
      dst), the convention of STREAM "Copy" and of datasheet bandwidth; GB/s = 1e9 B/s.
    * Host<->device copy: ``nbytes`` cross the link once; compared with the per-direction link
      peak.
    * Operands are filled from a seeded ``torch.Generator``; their values do not change
      throughput (no data-dependent fast paths for dense float matmul or memcpy), and no result
      depends on random numbers beyond that.
    * Timing uses :func:`gpuflows.core.hardware.timing.time_callable` with
      :func:`gpuflows.core.hardware.timing.device_sync`.

The pieces live in small modules, re-exported here: :mod:`gpuflows.pipelines.gpu_baseline.common`
(record, arithmetic, device/peak helpers), :mod:`gpuflows.pipelines.gpu_baseline.copy_bandwidth`
(copy bandwidths) and :mod:`gpuflows.pipelines.gpu_baseline.tf32` (TF32 flags); this module holds
the matmul measurement and the suite.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.hardware.timing import device_sync, time_callable
from gpuflows.pipelines.gpu_baseline.common import (
    GIB,
    MIB,
    HwMeasurement,
    _generator,
    _peak_figure,
    _peak_info,
    _resolve,
    _skipped,
    _summarise,
    gbs_from_ms,
    matmul_flops,
    tflops_from_ms,
)
from gpuflows.pipelines.gpu_baseline.copy_bandwidth import Direction as Direction
from gpuflows.pipelines.gpu_baseline.copy_bandwidth import (
    cpu_copy_ceiling_gbs,
    estimate_copy_bytes,
    estimate_host_device_bytes,
    host_device_bandwidth_gbs,
    memory_bandwidth_gbs,
)
from gpuflows.pipelines.gpu_baseline.tf32 import cuda_tf32, tf32_state

MatmulDtype = Literal["fp32", "tf32", "bf16"]

_TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
}


# --- memory estimates (device bytes a measurement allocates) -----------------------------------


def estimate_matmul_bytes(n: int, dtype: MatmulDtype) -> int:
    """Device bytes for A, B and the preallocated C: ``3 n^2 * itemsize``.

    cuBLAS workspace and the CUDA context are not included (add headroom for them).
    """
    return 3 * n * n * _TORCH_DTYPES[dtype].itemsize


def estimate_suite_bytes(sizes: dict[str, int]) -> int:
    """Peak device bytes of :func:`run_suite` with ``sizes``.

    Measurements run one at a time and free their tensors, so this is the largest single
    measurement, not the sum.
    """
    return max(
        estimate_matmul_bytes(sizes["matmul_n_fp32"], "fp32"),
        estimate_matmul_bytes(sizes["matmul_n_tf32"], "tf32"),
        estimate_matmul_bytes(sizes["matmul_n_bf16"], "bf16"),
        estimate_copy_bytes(sizes["copy_nbytes"]),
        estimate_host_device_bytes(sizes["host_nbytes"]),
    )


def default_sizes(
    device_kind: Literal["cpu", "cuda"],
    total_memory_bytes: int | None = None,
    max_fraction: float = 0.25,
) -> dict[str, int]:
    """Sizes that finish quickly yet load the device.

    CPU: fp32 matmul n=2048, bf16 n=1024 (bf16 is emulated on most CPUs, ~10x slower), copies
    of 64 MiB (past the last-level cache); the suite takes ~2-5 s on 2 cores. CUDA: matmul
    n=8192 (~1.1 TFLOP per matmul), copies of 1 GiB (far past L2), with ``inner=10`` matmuls or
    device copies per timed call so the synchronise costs under 1 %. Each measurement's device
    bytes are kept under ``max_fraction * total_memory_bytes`` by halving its size.

    Example:
        >>> default_sizes("cuda", 80 * 2**30)["matmul_n_bf16"]
        8192
    """
    if device_kind == "cpu":
        sizes = {
            "matmul_n_fp32": 2048,
            "matmul_n_tf32": 2048,
            "matmul_n_bf16": 1024,
            "copy_nbytes": 64 * MIB,
            "host_nbytes": 64 * MIB,
            "inner": 1,
        }
    elif device_kind == "cuda":
        sizes = {
            "matmul_n_fp32": 8192,
            "matmul_n_tf32": 8192,
            "matmul_n_bf16": 8192,
            "copy_nbytes": GIB,
            "host_nbytes": GIB,
            "inner": 10,
        }
    else:
        raise ValueError(f"device_kind must be 'cpu' or 'cuda', got {device_kind!r}")
    if total_memory_bytes is None:
        return sizes
    cap = max_fraction * total_memory_bytes
    for key, dtype in (
        ("matmul_n_fp32", "fp32"),
        ("matmul_n_tf32", "tf32"),
        ("matmul_n_bf16", "bf16"),
    ):
        while sizes[key] > 256 and estimate_matmul_bytes(sizes[key], dtype) > cap:
            sizes[key] //= 2
    while sizes["copy_nbytes"] > MIB and estimate_copy_bytes(sizes["copy_nbytes"]) > cap:
        sizes["copy_nbytes"] //= 2
    while sizes["host_nbytes"] > MIB and estimate_host_device_bytes(sizes["host_nbytes"]) > cap:
        sizes["host_nbytes"] //= 2
    return sizes


# --- measurements ------------------------------------------------------------------------------


def matmul_tflops(
    device: str, dtype: MatmulDtype, n: int, repeats: int = 10, warmup: int = 2, inner: int = 1
) -> HwMeasurement:
    """Dense ``n x n @ n x n`` matmul throughput in TFLOP/s (FLOPs = 2 n^3).

    ``fp32`` runs with TF32 off (true FP32 in cuBLAS and oneDNN), compared with the non-tensor
    FP32 peak; ``tf32`` (CUDA only) runs the same fp32 matmul with TF32 on, compared with the TF32
    tensor-core peak; ``bf16`` uses bfloat16 operands (FP32 accumulate), on CUDA only where
    ``torch.cuda.is_bf16_supported()``; on a CPU without native bf16 it runs emulated and the
    note says so. Global TF32 flags are restored afterwards. ``inner`` matmuls run per timed
    call (samples are per matmul).

    Args:
        device: 'cpu' or 'cuda[:i]'.
        dtype: 'fp32', 'tf32' or 'bf16'.
        n: matrix side (>= 1); device memory needed: :func:`estimate_matmul_bytes`.
        repeats: timed calls (>= 1). warmup: untimed calls first. inner: matmuls per call.
    """
    if n < 1 or inner < 1:
        raise ValueError(f"n and inner must be >= 1, got n={n}, inner={inner}")
    name = f"matmul_{dtype}"
    params: dict[str, Any] = {"n": n, "dtype": dtype, "flops": matmul_flops(n), "inner": inner}
    dev = _resolve(device)
    d = str(dev)
    notes: list[str] = []
    if dtype == "tf32" and dev.type != "cuda":
        return _skipped(
            name, d, "TFLOP/s", "tf32: CUDA tensor cores only; not applicable on cpu", params
        )
    if dtype == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        return _skipped(name, d, "TFLOP/s", "bf16 not supported on this GPU", params)
    if dev.type == "cpu":
        params["torch_threads"] = torch.get_num_threads()
        if dtype == "bf16":
            peak = _peak_info(d)[0]
            if peak is None or str(peak.details.get("bf16_isa", "")).startswith("fp32"):
                notes.append(
                    "bf16 on a CPU without native bf16 FMA (no avx512_bf16/AMX): emulated "
                    "through fp32 conversion, expected slower than fp32"
                )

    gen = _generator(dev)
    tdtype = _TORCH_DTYPES[dtype]
    a = torch.rand((n, n), generator=gen, device=dev, dtype=tdtype)
    b = torch.rand((n, n), generator=gen, device=dev, dtype=tdtype)
    c = torch.empty((n, n), device=dev, dtype=tdtype)

    def op() -> None:
        for _ in range(inner):
            torch.matmul(a, b, out=c)

    def timed() -> list[float]:
        ms = time_callable(op, repeats=repeats, warmup=warmup, sync=device_sync(d))
        return [t / inner for t in ms]

    if dtype in ("fp32", "tf32"):  # true IEEE fp32 (cuBLAS and oneDNN) unless tf32 asked
        with cuda_tf32(dtype == "tf32"):
            params["tf32_flags"] = tf32_state()
            samples = timed()
    else:
        samples = timed()

    field = {"fp32": "fp32_tflops", "tf32": "tf32_tflops", "bf16": "bf16_tflops"}[dtype]
    peak, source, why = _peak_figure(d, field)
    if why:
        notes.append(why)
    return _summarise(
        name=name,
        device=d,
        unit="TFLOP/s",
        samples_ms=samples,
        rate=lambda ms: tflops_from_ms(n, ms),
        warmup=warmup,
        params=params,
        peak=peak,
        peak_source=source,
        note="; ".join(notes),
    )


def run_suite(
    device: str, sizes: dict[str, int] | None = None, repeats: int = 10, warmup: int = 2
) -> list[HwMeasurement]:
    """Run every measurement that applies to ``device``; the others come back as skip records.

    Order: matmul fp32, tf32, bf16; copy ceiling (CPU only); memory copy; h2d and d2h, pinned
    and pageable. ``sizes`` defaults to :func:`default_sizes` for the device (capped by its
    memory on CUDA). Each measurement frees its tensors before the next (and on CUDA empties
    the allocator cache), so the device memory needed is :func:`estimate_suite_bytes`.
    """
    dev = _resolve(device)
    d = str(dev)
    if sizes is None:
        total = torch.cuda.get_device_properties(dev).total_memory if dev.type == "cuda" else None
        sizes = default_sizes(dev.type, total)  # type: ignore[arg-type]
    inner = int(sizes.get("inner", 1))

    def cleanup() -> None:
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    out: list[HwMeasurement] = []
    for dtype in ("fp32", "tf32", "bf16"):
        out.append(matmul_tflops(d, dtype, sizes[f"matmul_n_{dtype}"], repeats, warmup, inner))
        cleanup()
    ceiling = None
    if dev.type == "cpu":
        ceiling = cpu_copy_ceiling_gbs(sizes["copy_nbytes"], repeats=repeats, warmup=warmup)
        out.append(ceiling)
    out.append(memory_bandwidth_gbs(d, sizes["copy_nbytes"], repeats, warmup, inner, ceiling))
    cleanup()
    for direction in ("h2d", "d2h"):
        for pinned in (True, False):
            out.append(
                host_device_bandwidth_gbs(
                    d, sizes["host_nbytes"], direction, pinned, repeats, warmup
                )
            )
            cleanup()
    return out


def check_ratio(m: HwMeasurement, min_ratio: float) -> CheckResult:
    """``<name>_vs_peak``: passes when ``m.ratio >= min_ratio``.

    Fails (with the reason) when the measurement was skipped or there is no peak to compare
    with: a missing peak is never read as a pass.
    """
    name = f"{m.name}_vs_peak"
    numbers: dict[str, Any] = {
        "value": m.value,
        "peak": m.peak,
        "ratio": m.ratio,
        "min_ratio": min_ratio,
        "unit": m.unit,
    }
    if m.value is None:
        return CheckResult(
            name=name, passed=False, numbers=numbers, reason=f"not measured: {m.note}"
        )
    if m.peak is None or m.ratio is None:
        return CheckResult(
            name=name,
            passed=False,
            numbers=numbers,
            reason=f"no datasheet peak for {m.device_name}",
        )
    passed = m.ratio >= min_ratio
    cmp = ">=" if passed else "<"
    return CheckResult(
        name=name,
        passed=passed,
        numbers=numbers,
        reason=(
            f"{m.value:.4g} {m.unit} is {m.ratio:.1%} of peak {m.peak:.4g} ({m.peak_source}); "
            f"{cmp} {min_ratio:.0%}"
        ),
    )


__all__ = [
    "HwMeasurement",
    "check_ratio",
    "cpu_copy_ceiling_gbs",
    "cuda_tf32",
    "default_sizes",
    "estimate_copy_bytes",
    "estimate_host_device_bytes",
    "estimate_matmul_bytes",
    "estimate_suite_bytes",
    "gbs_from_ms",
    "host_device_bandwidth_gbs",
    "matmul_flops",
    "matmul_tflops",
    "memory_bandwidth_gbs",
    "run_suite",
    "tf32_state",
    "tflops_from_ms",
]
