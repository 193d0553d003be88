"""Shared pieces of :mod:`gpuflows.pipelines.gpu_baseline.hwbench`: the measurement record, unit
arithmetic, and the device / peak resolution helpers every measurement uses. Pure compute, no Prefect.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
from pydantic import BaseModel, Field

from gpuflows.pipelines.gpu_baseline.cpu_peak import CPU_ESTIMATE_SOURCE, cpu_peak_estimate
from gpuflows.pipelines.gpu_baseline.datasheet import DevicePeak, peak_for

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
        bf16 = field == "bf16_tflops"
        flop = d["bf16_flop_per_cycle_per_core"] if bf16 else d["fp32_flop_per_cycle_per_core"]
        source = (
            f"{source}: {d['cores']} cores x {d['bound_mhz']:.0f} MHz x "
            f"{flop} FLOP/cycle ({d['bf16_isa'] if bf16 else d['isa']}), upper bound"
        )
    return value, source, ""


def _generator(dev: torch.device) -> torch.Generator:
    return torch.Generator(device=dev).manual_seed(_SEED)


__all__ = [
    "GIB",
    "MIB",
    "HwMeasurement",
    "gbs_from_ms",
    "matmul_flops",
    "tflops_from_ms",
]
