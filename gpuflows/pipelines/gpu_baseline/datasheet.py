"""Peak figures a measurement is compared with: NVIDIA datasheets, and an estimate for the CPU.

GPU figures are *dense* (no 2:4 structured sparsity) vendor peaks at boost clock; tensor-core
figures are for FP32 accumulation, which is what ``torch.matmul`` uses. Memory bandwidth is in
GB/s (1e9 bytes/s); ``host_link_gbs`` is the PCIe figure *per direction* (datasheets quote the
bidirectional sum, e.g. "PCIe Gen5 128 GB/s" -> 64 GB/s each way; protocol overhead keeps real
copies at roughly 80-90 % of it).

A name matches an entry when every required word is in it and no excluded word is (words are
split on anything not a letter or digit, case-insensitive), so "NVIDIA L40S" never matches the
L4 entry and "NVIDIA H200 NVL" never matches the H200 SXM entry. Names with "MIG" get no peak:
a MIG slice has a fraction of the whole GPU.

The CPU has no datasheet here:
:func:`gpuflows.pipelines.gpu_baseline.cpu_peak.cpu_peak_estimate` derives an *upper-bound* FP32
peak from /proc/cpuinfo and lscpu, marked ``source="estimated from cpuinfo"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DevicePeak(BaseModel):
    """Peak figures for one device; ``None`` where unknown (``note`` says why)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Product name, e.g. 'H100 SXM5 80GB'.")
    fp32_tflops: float | None = Field(description="FP32 non-tensor peak, TFLOP/s.")
    tf32_tflops: float | None = Field(description="TF32 tensor-core dense peak, TFLOP/s.")
    bf16_tflops: float | None = Field(description="BF16 dense peak (FP32 accumulate), TFLOP/s.")
    mem_bw_gbs: float | None = Field(description="Device memory bandwidth, GB/s.")
    host_link_gbs: float | None = Field(description="Host link peak per direction, GB/s.")
    sm_count: int | None = Field(
        default=None, description="Streaming multiprocessors of the full product, if known."
    )
    source: str = Field(description="Document the figures come from, or how they were derived.")
    note: str = Field(default="", description="Caveats and reasons for missing figures.")
    details: dict[str, Any] = Field(
        default_factory=dict, description="Inputs of an estimate (cores, MHz, FLOP/cycle)."
    )


@dataclass(frozen=True)
class _Entry:
    require: tuple[str, ...]
    exclude: tuple[str, ...]
    peak: DevicePeak


_HOPPER_DS = "NVIDIA H100 Tensor Core GPU datasheet"
_H200_DS = "NVIDIA H200 Tensor Core GPU datasheet"
_A100_DS = "NVIDIA A100 Tensor Core GPU datasheet"

# Order matters only for readability: require/exclude words make the entries disjoint.
_TABLE: tuple[_Entry, ...] = (
    # NVIDIA H100 Tensor Core GPU datasheet, H100 SXM column: FP32 67 TF, TF32 989 TF* and
    # BF16 1,979 TF* (*with sparsity; dense = half), 3.35 TB/s (3352 GB/s), PCIe Gen5 128 GB/s.
    _Entry(
        ("H100", "HBM3"),
        ("PCIE", "NVL", "MIG"),
        DevicePeak(
            name="H100 SXM5 80GB",
            fp32_tflops=67.0,
            tf32_tflops=494.7,
            bf16_tflops=989.4,
            mem_bw_gbs=3352.0,
            host_link_gbs=64.0,
            sm_count=132,
            source=_HOPPER_DS + " (SXM)",
        ),
    ),
    # Same datasheet, H100 PCIe column: FP32 51 TF, TF32 756 TF*, BF16 1,513 TF*, 2 TB/s
    # (2039 GB/s: 5120-bit HBM2e), PCIe Gen5 128 GB/s.
    _Entry(
        ("H100", "PCIE"),
        ("MIG",),
        DevicePeak(
            name="H100 PCIe 80GB",
            fp32_tflops=51.0,
            tf32_tflops=378.0,
            bf16_tflops=756.0,
            mem_bw_gbs=2039.0,
            host_link_gbs=64.0,
            sm_count=114,
            source=_HOPPER_DS + " (PCIe)",
        ),
    ),
    # NVIDIA H200 Tensor Core GPU datasheet, H200 SXM column: compute as H100 SXM, 4.8 TB/s,
    # PCIe Gen5 128 GB/s. (H200 NVL has lower compute: excluded, no entry.)
    _Entry(
        ("H200",),
        ("NVL", "MIG"),
        DevicePeak(
            name="H200 SXM 141GB",
            fp32_tflops=67.0,
            tf32_tflops=494.7,
            bf16_tflops=989.4,
            mem_bw_gbs=4800.0,
            host_link_gbs=64.0,
            sm_count=132,
            source=_H200_DS + " (SXM)",
        ),
    ),
    # NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5 TF, TF32 156 TF, BF16 312 TF (dense);
    # 80GB SXM 2,039 GB/s; 80GB PCIe 1,935 GB/s; 40GB (both) 1,555 GB/s; PCIe Gen4 64 GB/s.
    _Entry(
        ("A100", "SXM4", "80GB"),
        ("MIG",),
        DevicePeak(
            name="A100 SXM4 80GB",
            fp32_tflops=19.5,
            tf32_tflops=156.0,
            bf16_tflops=312.0,
            mem_bw_gbs=2039.0,
            host_link_gbs=32.0,
            sm_count=108,
            source=_A100_DS + " (80GB SXM)",
        ),
    ),
    _Entry(
        ("A100", "80GB", "PCIE"),
        ("MIG",),
        DevicePeak(
            name="A100 PCIe 80GB",
            fp32_tflops=19.5,
            tf32_tflops=156.0,
            bf16_tflops=312.0,
            mem_bw_gbs=1935.0,
            host_link_gbs=32.0,
            sm_count=108,
            source=_A100_DS + " (80GB PCIe)",
        ),
    ),
    _Entry(
        ("A100", "40GB"),
        ("MIG",),
        DevicePeak(
            name="A100 40GB",
            fp32_tflops=19.5,
            tf32_tflops=156.0,
            bf16_tflops=312.0,
            mem_bw_gbs=1555.0,
            host_link_gbs=32.0,
            sm_count=108,
            source=_A100_DS + " (40GB PCIe/SXM)",
        ),
    ),
    # NVIDIA L4 Tensor Core GPU datasheet: FP32 30.3 TF, TF32 120 TF*, BF16 242 TF* (*sparse),
    # 300 GB/s GDDR6, PCIe Gen4 x16 64 GB/s.
    _Entry(
        ("L4",),
        ("MIG",),
        DevicePeak(
            name="L4",
            fp32_tflops=30.3,
            tf32_tflops=60.0,
            bf16_tflops=121.0,
            mem_bw_gbs=300.0,
            host_link_gbs=32.0,
            source="NVIDIA L4 Tensor Core GPU datasheet",
        ),
    ),
    # NVIDIA A10 Tensor Core GPU datasheet: FP32 31.2 TF, TF32 62.5 | 125* TF,
    # BF16 125 | 250* TF, 600 GB/s GDDR6, PCIe Gen4 64 GB/s.
    _Entry(
        ("A10",),
        ("MIG",),
        DevicePeak(
            name="A10",
            fp32_tflops=31.2,
            tf32_tflops=62.5,
            bf16_tflops=125.0,
            mem_bw_gbs=600.0,
            host_link_gbs=32.0,
            sm_count=72,
            source="NVIDIA A10 Tensor Core GPU datasheet",
        ),
    ),
    # NVIDIA Ada GPU Architecture whitepaper, Appendix A (GeForce RTX 4090): FP32 82.6 TF,
    # TF32 tensor 82.6 dense, BF16 tensor with FP32 accumulate 165.2 dense (GeForce runs FP32
    # accumulate at half rate), 1008 GB/s GDDR6X, PCIe Gen4 x16. "4090 D" is a different SKU.
    _Entry(
        ("RTX", "4090"),
        ("D", "MIG"),
        DevicePeak(
            name="GeForce RTX 4090",
            fp32_tflops=82.6,
            tf32_tflops=82.6,
            bf16_tflops=165.2,
            mem_bw_gbs=1008.0,
            host_link_gbs=32.0,
            sm_count=128,
            source="NVIDIA Ada GPU Architecture whitepaper (RTX 4090)",
        ),
    ),
)


def _words(name: str) -> set[str]:
    return {w for w in re.split(r"[^A-Z0-9]+", name.upper()) if w}


def peak_for(device_name: str) -> DevicePeak | None:
    """Datasheet peaks for a GPU named as NVML/torch name it, or ``None`` if not in the table.

    Example:
        >>> peak_for("NVIDIA H100 80GB HBM3").bf16_tflops
        989.4
        >>> peak_for("NVIDIA L40S") is None
        True
    """
    words = _words(device_name)
    for entry in _TABLE:
        if all(w in words for w in entry.require) and not any(w in words for w in entry.exclude):
            return entry.peak
    return None
