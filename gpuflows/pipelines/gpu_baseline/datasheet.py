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

The CPU has no datasheet here: :func:`cpu_peak_estimate` derives an *upper-bound* FP32 peak from
/proc/cpuinfo and lscpu, marked ``source="estimated from cpuinfo"``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CPU_ESTIMATE_SOURCE = "estimated from cpuinfo"


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


# --- CPU estimate ------------------------------------------------------------------------------

# (flag, fp32 lanes per vector, FMA units assumed, FLOPs per lane per instruction).
# FLOP/cycle/core = units * lanes * flops_per_lane. First flag present wins. Two FMA units is
# right for Intel Haswell..Sapphire Rapids Gold/Platinum and AMD Zen 2+ (256-bit); Xeon
# Silver/Bronze and Zen 4 (double-pumped AVX-512) have one 512-bit FMA per cycle, so the avx512f
# row is an *upper bound* there (2x). AVX-512 licence down-clocking is not modelled either: the
# estimate is a ceiling, and measured/ceiling ratios read low rather than above 1.
_ISA_TABLE: tuple[tuple[str, int, int, int], ...] = (
    ("avx512f", 16, 2, 2),  # 2 x 512-bit FMA: 64 FLOP/cycle
    ("fma", 8, 2, 2),  # AVX2 + FMA3, 2 x 256-bit FMA: 32 FLOP/cycle
    ("avx", 8, 2, 1),  # one 256-bit add + one 256-bit mul port, no FMA: 16 FLOP/cycle
    ("sse2", 4, 2, 1),  # one 128-bit add + one 128-bit mul port: 8 FLOP/cycle
    ("asimd", 4, 2, 2),  # Arm NEON, 2 x 128-bit FMA (Neoverse N1); V1/V2 have 4: lower bound
)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _lscpu() -> str:
    exe = shutil.which("lscpu")
    if exe is None:
        return ""
    try:
        res = subprocess.run(
            [exe], capture_output=True, text=True, timeout=5, env={**os.environ, "LC_ALL": "C"}
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout if res.returncode == 0 else ""


def _cpuinfo_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\n\s*\n", text):
        block: dict[str, str] = {}
        for line in chunk.splitlines():
            key, sep, val = line.partition(":")
            if sep:
                block[key.strip().lower()] = val.strip()
        if block:
            blocks.append(block)
    return blocks


def _count_cores(blocks: list[dict[str, str]], affinity: set[int]) -> tuple[int, str]:
    """Physical cores among the CPUs this process may run on, and how they were counted."""
    cores: set[tuple[str, str]] = set()
    for b in blocks:
        try:
            cpu = int(b["processor"])
        except (KeyError, ValueError):
            continue
        if cpu not in affinity or "core id" not in b:
            continue
        cores.add((b.get("physical id", "0"), b["core id"]))
    if cores:
        return len(cores), "physical cores (physical id, core id) in sched_getaffinity"
    return len(affinity), "logical CPUs in sched_getaffinity (no core topology in cpuinfo)"


def _cgroup_cpu_limit(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` quota ("max 100000" means no limit)."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        return int(parts[0]) / int(parts[1])
    except (ValueError, ZeroDivisionError):
        return None


def _mhz(lscpu_text: str, blocks: list[dict[str, str]], sysfs_khz: str) -> tuple[float | None, str]:
    m = re.search(r"^CPU max MHz:\s*([0-9.]+)", lscpu_text, re.MULTILINE)
    if m and float(m.group(1)) > 0:
        return float(m.group(1)), "lscpu 'CPU max MHz'"
    if sysfs_khz.strip().isdigit() and int(sysfs_khz) > 0:
        return int(sysfs_khz) / 1000.0, "sysfs cpuinfo_max_freq"
    model = blocks[0].get("model name", "") if blocks else ""
    m = re.search(r"@\s*([0-9.]+)\s*GHz", model)
    if m:
        return float(m.group(1)) * 1000.0, "model name '@ GHz' (base clock)"
    for b in blocks:
        try:
            val = float(b["cpu mhz"])
        except (KeyError, ValueError):
            continue
        if val > 0:
            return val, "cpuinfo 'cpu MHz' (current clock)"
    return None, "no clock found in lscpu, sysfs or cpuinfo"


def cpu_peak_estimate(
    cpuinfo_text: str | None = None,
    lscpu_text: str | None = None,
    affinity: set[int] | None = None,
    cgroup_cpu_max: str | None = None,
    sysfs_max_khz: str | None = None,
) -> DevicePeak:
    """Upper-bound CPU FP32 peak: cores x max MHz x FLOP/cycle/core from the ISA flags.

    ``peak = cores * MHz * 1e6 * (FMA units * fp32 lanes * 2) / 1e12`` TFLOP/s, with the table
    in ``_ISA_TABLE`` (e.g. avx512f: 2 * 16 * 2 = 64 FLOP/cycle/core). Cores are physical cores
    among ``os.sched_getaffinity(0)``, capped by a cgroup ``cpu.max`` quota. BF16 is only given
    for ``avx512_bf16`` (2x FP32, dot-product instructions); AMX tiles are not modelled. There is
    no TF32 on CPUs, and memory and host-link peaks are not estimated (the copy benchmark uses a
    measured ceiling instead). Every argument defaults to reading the live system; pass text to
    test. Missing files never raise: the figure that needs them is ``None`` and ``note`` says why.
    """
    if cpuinfo_text is None:
        cpuinfo_text = _read("/proc/cpuinfo")
    if lscpu_text is None:
        lscpu_text = _lscpu()
    if affinity is None:
        try:
            affinity = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = set(range(os.cpu_count() or 1))
    if cgroup_cpu_max is None:
        cgroup_cpu_max = _read("/sys/fs/cgroup/cpu.max")
    if sysfs_max_khz is None:
        sysfs_max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")

    blocks = _cpuinfo_blocks(cpuinfo_text)
    notes: list[str] = []
    cores, core_how = _count_cores(blocks, affinity)
    limit = _cgroup_cpu_limit(cgroup_cpu_max)
    if limit is not None and limit < cores:
        cores = max(1, math.ceil(limit))
        core_how += f", capped by cgroup cpu.max quota {limit:.2f} CPUs"
    mhz, mhz_how = _mhz(lscpu_text, blocks, sysfs_max_khz)
    if mhz is None:
        notes.append(mhz_how)

    flags_line = ""
    for b in blocks:
        flags_line = b.get("flags") or b.get("features") or ""
        if flags_line:
            break
    if not flags_line:
        m = re.search(r"^Flags:\s*(.*)$", lscpu_text, re.MULTILINE)
        flags_line = m.group(1) if m else ""
    flags = set(flags_line.split())
    isa = next((row for row in _ISA_TABLE if row[0] in flags), None)
    if isa is None:
        notes.append("no known SIMD flag (avx512f/fma/avx/sse2/asimd) in cpuinfo")
        flop_cycle = None
    else:
        flag, lanes, units, per_lane = isa
        flop_cycle = lanes * units * per_lane

    fp32 = None
    if mhz is not None and flop_cycle is not None:
        fp32 = cores * mhz * 1e6 * flop_cycle / 1e12
    bf16 = None
    if fp32 is not None and "avx512_bf16" in flags:
        bf16 = 2 * fp32
    else:
        notes.append("bf16: no avx512_bf16 flag (AMX not modelled); torch converts to fp32")
    notes.append("memory bandwidth: no CPU datasheet; compare with a measured copy ceiling")

    model = blocks[0].get("model name", "") if blocks else ""
    if not model:
        m = re.search(r"^Model name:\s*(.*)$", lscpu_text, re.MULTILINE)
        model = m.group(1).strip() if m else "unknown CPU"
    return DevicePeak(
        name=model,
        fp32_tflops=fp32,
        tf32_tflops=None,
        bf16_tflops=bf16,
        mem_bw_gbs=None,
        host_link_gbs=None,
        source=CPU_ESTIMATE_SOURCE,
        note="; ".join(notes),
        details={
            "cores": cores,
            "cores_counted_as": core_how,
            "mhz": mhz,
            "mhz_from": mhz_how,
            "isa": isa[0] if isa else None,
            "fp32_flop_per_cycle_per_core": flop_cycle,
            "flop_per_cycle_formula": (
                f"{isa[2]} units * {isa[1]} lanes * {isa[3]}" if isa else None
            ),
        },
    )
