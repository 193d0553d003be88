"""Measure the machine the pipelines run on: matmul TFLOP/s and copy GB/s against a peak.

Pure compute, no Prefect: the ``gpu-baseline`` flow wraps these in tasks. Every measurement is
an :class:`HwMeasurement` carrying its raw samples, warm-up and repeat counts, sizes, the peak it
is compared with and where that peak comes from (GPU: datasheet, :mod:`gpuflows.datasheet`; CPU
compute: an upper-bound estimate from cpuinfo; CPU copy: a measured ``np.copyto`` ceiling).
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
    * Timing uses :func:`gpuflows.timing.time_callable` with :func:`gpuflows.timing.device_sync`.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field

from gpuflows.checks import CheckResult
from gpuflows.datasheet import CPU_ESTIMATE_SOURCE, DevicePeak, cpu_peak_estimate, peak_for
from gpuflows.timing import device_sync, time_callable

MatmulDtype = Literal["fp32", "tf32", "bf16"]
Direction = Literal["h2d", "d2h"]

_TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "tf32": torch.float32,
    "bf16": torch.bfloat16,
}
_SEED = 0
MIB = 1 << 20
GIB = 1 << 30


class HwMeasurement(BaseModel):
    """One throughput measurement, with the samples and the peak it is judged against."""

    name: str = Field(description="What was measured, e.g. 'matmul_fp32', 'h2d_pinned'.")
    device: str = Field(description="torch device used, e.g. 'cuda:0' or 'cpu'.")
    device_name: str = Field(description="Product name, e.g. 'NVIDIA H100 80GB HBM3'.")
    unit: str = Field(description="'TFLOP/s' or 'GB/s'.")
    value: float | None = Field(description="Throughput from the median sample; None if skipped.")
    best: float | None = Field(description="Throughput from the fastest sample.")
    samples_ms: list[float] = Field(description="Time of each timed call, ms.")
    warmup: int = Field(ge=0, description="Untimed calls before the samples.")
    repeats: int = Field(ge=0, description="Timed calls (0 when skipped).")
    params: dict[str, Any] = Field(default_factory=dict, description="Sizes, dtype, flags.")
    peak: float | None = Field(default=None, description="Peak in the same unit, if known.")
    peak_source: str | None = Field(default=None, description="Where the peak comes from.")
    ratio: float | None = Field(default=None, description="value / peak.")
    note: str = Field(default="", description="Caveats, or why it was skipped.")
    higher_is_better: bool = True


# --- arithmetic --------------------------------------------------------------------------------


def matmul_flops(n: int) -> int:
    """FLOPs of an ``n x n @ n x n`` matmul: ``2 n^3``."""
    return 2 * n**3


def tflops_from_ms(n: int, ms: float) -> float:
    """TFLOP/s of an ``n x n`` matmul that took ``ms`` milliseconds."""
    return matmul_flops(n) / (ms * 1e-3) / 1e12


def gbs_from_ms(bytes_moved: int, ms: float) -> float:
    """GB/s (1e9 bytes/s) for ``bytes_moved`` bytes in ``ms`` milliseconds."""
    return bytes_moved / (ms * 1e-3) / 1e9


# --- memory estimates (device bytes a measurement allocates) -----------------------------------


def estimate_matmul_bytes(n: int, dtype: MatmulDtype) -> int:
    """Device bytes for A, B and the preallocated C: ``3 n^2 * itemsize``.

    cuBLAS workspace and the CUDA context are not included (add headroom for them).
    """
    return 3 * n * n * _TORCH_DTYPES[dtype].itemsize


def estimate_copy_bytes(nbytes: int) -> int:
    """Device bytes for a device copy: source + destination, ``2 * nbytes``."""
    return 2 * nbytes


def estimate_host_device_bytes(nbytes: int) -> int:
    """Device bytes for a host<->device copy: the device buffer, ``nbytes`` (host side extra)."""
    return nbytes


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
    device copies per timed call so the synchronise costs under 1 %. Each measurement's device bytes are
    kept under ``max_fraction * total_memory_bytes`` by halving its size.

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


# --- device and peak resolution ----------------------------------------------------------------


def _resolve(device: str) -> torch.device:
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{device!r} requested but torch.cuda.is_available() is False")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        return dev
    if dev.type == "cpu":
        return dev
    raise ValueError(f"only 'cpu' and 'cuda[:i]' devices are measured, got {device!r}")


@lru_cache(maxsize=8)
def _peak_info(device: str) -> tuple[DevicePeak | None, str, str]:
    """(peak, device name, reason when peak is None) for a resolved device string."""
    if device == "cpu":
        peak = cpu_peak_estimate()
        return peak, peak.name, ""
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev)
    peak = peak_for(name)
    if peak is None:
        return None, name, f"no datasheet peak for {name}"
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    if peak.sm_count is not None and sms != peak.sm_count:
        return (
            None,
            name,
            f"no datasheet peak for {name}: device reports {sms} SMs, datasheet {peak.sm_count}"
            " (MIG slice or another SKU)",
        )
    return peak, name, ""


def _summarise(
    *,
    name: str,
    device: str,
    unit: str,
    samples_ms: list[float],
    rate: Callable[[float], float],
    warmup: int,
    params: dict[str, Any],
    peak: float | None,
    peak_source: str | None,
    note: str,
) -> HwMeasurement:
    value = rate(statistics.median(samples_ms))
    best = rate(min(samples_ms))
    ratio = value / peak if peak else None
    return HwMeasurement(
        name=name,
        device=device,
        device_name=_peak_info(device)[1],
        unit=unit,
        value=value,
        best=best,
        samples_ms=samples_ms,
        warmup=warmup,
        repeats=len(samples_ms),
        params=params,
        peak=peak,
        peak_source=peak_source,
        ratio=ratio,
        note=note,
    )


def _skipped(
    name: str, device: str, unit: str, reason: str, params: dict[str, Any]
) -> HwMeasurement:
    try:
        dev_name = _peak_info(str(_resolve(device)))[1]
    except (RuntimeError, ValueError):
        dev_name = device
    return HwMeasurement(
        name=name,
        device=device,
        device_name=dev_name,
        unit=unit,
        value=None,
        best=None,
        samples_ms=[],
        warmup=0,
        repeats=0,
        params=params,
        note=reason,
    )


def _peak_figure(device: str, field: str) -> tuple[float | None, str | None, str]:
    peak, _, reason = _peak_info(device)
    if peak is None:
        return None, None, reason
    value = getattr(peak, field)
    if value is None:
        return None, peak.source, f"{peak.name}: no {field.removesuffix('_tflops')} peak"
    source = peak.source
    if source == CPU_ESTIMATE_SOURCE:
        d = peak.details
        source = (
            f"{source}: {d['cores']} cores x {d['mhz']:.0f} MHz x "
            f"{d['fp32_flop_per_cycle_per_core']} FLOP/cycle ({d['isa']}), upper bound"
        )
    return value, source, ""


def _generator(dev: torch.device) -> torch.Generator:
    return torch.Generator(device=dev).manual_seed(_SEED)


# --- TF32 flag handling ------------------------------------------------------------------------


@contextmanager
def cuda_tf32(enabled: bool) -> Iterator[None]:
    """Allow (or forbid) TF32 for fp32 matmul inside the block; restore every related flag after.

    Sets ``torch.set_float32_matmul_precision("high" | "highest")``, which on torch >= 2.9 sets
    the legacy flag (``torch.backends.cuda.matmul.allow_tf32``) and the new per-backend
    ``fp32_precision`` flags together: cuBLAS raises when the two APIs disagree, so a half-set
    state must never reach it. On exit the legacy precision and the new per-backend precisions
    are put back as they were. When the legacy value cannot be read (the caller had already
    mixed the APIs, typically by setting only ``fp32_precision``) it is restored to its
    default, ``"highest"``. Safe without a GPU (flags only).
    """
    new_api: list[tuple[Any, str]] = []
    for obj in (
        torch.backends.cuda.matmul,
        getattr(getattr(torch.backends, "mkldnn", None), "matmul", None),
    ):
        try:
            new_api.append((obj, obj.fp32_precision))
        except (AttributeError, RuntimeError):  # torch < 2.9: legacy API only
            pass
    try:
        legacy = torch.get_float32_matmul_precision()
    except RuntimeError:  # APIs already mixed by the caller: the legacy value is unreadable
        legacy = "highest"
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(legacy)
        for obj, old in new_api:
            obj.fp32_precision = old


def tf32_state() -> dict[str, str]:
    """The TF32-related flags, for provenance and for tests that check they were restored."""
    out: dict[str, str] = {}
    m = torch.backends.cuda.matmul
    for key, getter in (
        ("cuda_matmul_fp32_precision", lambda: m.fp32_precision),
        ("mkldnn_matmul_fp32_precision", lambda: torch.backends.mkldnn.matmul.fp32_precision),
        ("float32_matmul_precision", torch.get_float32_matmul_precision),
    ):
        try:
            out[key] = str(getter())
        except (AttributeError, RuntimeError) as exc:
            out[key] = f"unreadable: {type(exc).__name__}"
    return out


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
            if peak is None or peak.bf16_tflops is None:
                notes.append(
                    "bf16 on a CPU without native bf16 FMA (no avx512_bf16/AMX peak): emulated "
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


def cpu_copy_ceiling_gbs(
    nbytes: int, repeats: int = 10, warmup: int = 2, threads: int | None = None
) -> HwMeasurement:
    """Measured CPU copy ceiling: ``np.copyto`` of ``nbytes`` in ``threads`` chunks, in GB/s.

    A plain memcpy-speed copy (numpy releases the GIL for it), split over the same number of
    threads torch uses (``torch.get_num_threads()`` by default) so that a torch CPU copy of
    the same size can be compared with it: ratio ~1 expected. Bytes moved = ``2 * nbytes``.
    """
    if nbytes < 4:
        raise ValueError(f"nbytes must be >= 4, got {nbytes}")
    threads = threads or torch.get_num_threads()
    rng = np.random.default_rng(_SEED)
    src = rng.random(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    bounds = np.linspace(0, src.size, threads + 1, dtype=np.int64)
    chunks = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    def part(lohi: tuple[int, int]) -> None:
        lo, hi = lohi
        np.copyto(dst[lo:hi], src[lo:hi])

    moved = 2 * src.nbytes
    with ThreadPoolExecutor(max_workers=threads) as pool:
        if threads == 1:
            samples = time_callable(lambda: np.copyto(dst, src), repeats=repeats, warmup=warmup)
        else:
            samples = time_callable(
                lambda: list(pool.map(part, chunks)), repeats=repeats, warmup=warmup
            )
    return _summarise(
        name="copy_numpy_ceiling",
        device="cpu",
        unit="GB/s",
        samples_ms=samples,
        rate=lambda ms: gbs_from_ms(moved, ms),
        warmup=warmup,
        params={"nbytes": src.nbytes, "bytes_moved": moved, "threads": threads},
        peak=None,
        peak_source=None,
        note="measured ceiling (np.copyto), not a datasheet figure",
    )


def memory_bandwidth_gbs(
    device: str,
    nbytes: int,
    repeats: int = 10,
    warmup: int = 2,
    inner: int = 1,
    ceiling: HwMeasurement | None = None,
) -> HwMeasurement:
    """Device-memory copy bandwidth, ``dst.copy_(src)`` of ``nbytes``; bytes moved = 2 x nbytes.

    On CUDA compared with the datasheet memory bandwidth. On the CPU compared with a measured
    :func:`cpu_copy_ceiling_gbs` of the same size (``ceiling``, measured here when not given).
    ``inner`` copies run per timed call (samples are per copy).
    """
    if nbytes < 4 or inner < 1:
        raise ValueError(f"nbytes must be >= 4 and inner >= 1, got {nbytes}, {inner}")
    dev = _resolve(device)
    d = str(dev)
    numel = nbytes // 4
    src = torch.rand(numel, generator=_generator(dev), device=dev, dtype=torch.float32)
    dst = torch.empty_like(src)
    moved = 2 * src.nbytes

    def op() -> None:
        for _ in range(inner):
            dst.copy_(src)

    samples = [
        t / inner for t in time_callable(op, repeats=repeats, warmup=warmup, sync=device_sync(d))
    ]
    params: dict[str, Any] = {"nbytes": numel * 4, "bytes_moved": moved, "inner": inner}
    note = ""
    if dev.type == "cpu":
        params["torch_threads"] = torch.get_num_threads()
        if ceiling is None:
            ceiling = cpu_copy_ceiling_gbs(numel * 4, repeats=repeats, warmup=warmup)
        peak, source = (
            ceiling.value,
            (
                f"measured: np.copyto of {ceiling.params['nbytes']} bytes on "
                f"{ceiling.params['threads']} threads"
            ),
        )
    else:
        peak, source, note = _peak_figure(d, "mem_bw_gbs")
    return _summarise(
        name="memory_copy",
        device=d,
        unit="GB/s",
        samples_ms=samples,
        rate=lambda ms: gbs_from_ms(moved, ms),
        warmup=warmup,
        params=params,
        peak=peak,
        peak_source=source,
        note=note,
    )


def host_device_bandwidth_gbs(
    device: str,
    nbytes: int,
    direction: Direction,
    pinned: bool,
    repeats: int = 10,
    warmup: int = 2,
) -> HwMeasurement:
    """Host<->device copy bandwidth over the host link (PCIe/C2C), GB/s; CUDA only.

    ``nbytes`` cross the link once per copy, compared with the per-direction link peak. Pinned
    host buffers (``pin_memory=True``) are copied with ``non_blocking=True`` and the timer
    synchronises; pageable buffers are copied synchronously through a staging buffer. On the
    CPU there is no host<->device copy: a skip record is returned.
    """
    if direction not in ("h2d", "d2h"):
        raise ValueError(f"direction must be 'h2d' or 'd2h', got {direction!r}")
    if nbytes < 1:
        raise ValueError(f"nbytes must be >= 1, got {nbytes}")
    name = f"{direction}_{'pinned' if pinned else 'pageable'}"
    params: dict[str, Any] = {"nbytes": nbytes, "bytes_moved": nbytes, "pinned": pinned}
    dev = _resolve(device)
    d = str(dev)
    if dev.type != "cuda":
        return _skipped(
            name, d, "GB/s", f"{direction}: not applicable on cpu (no host<->device copy)", params
        )
    cpu = torch.device("cpu")
    host = torch.empty(nbytes, dtype=torch.uint8, device=cpu, pin_memory=pinned)
    host.random_(0, 256, generator=_generator(cpu))
    dev_buf = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    if direction == "h2d":

        def op() -> None:
            dev_buf.copy_(host, non_blocking=pinned)
    else:

        def op() -> None:
            host.copy_(dev_buf, non_blocking=pinned)

    samples = time_callable(op, repeats=repeats, warmup=warmup, sync=device_sync(d))
    peak, source, note = _peak_figure(d, "host_link_gbs")
    return _summarise(
        name=name,
        device=d,
        unit="GB/s",
        samples_ms=samples,
        rate=lambda ms: gbs_from_ms(nbytes, ms),
        warmup=warmup,
        params=params,
        peak=peak,
        peak_source=source,
        note=note,
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
