"""An upper-bound FP32 (and BF16) peak for the CPU, which has no datasheet here.

:func:`cpu_peak_estimate` derives it from /proc/cpuinfo and lscpu (cores x max clock x FLOP per
cycle from the ISA flags: AVX-512 / AVX2+FMA for FP32, AMX or AVX-512 BF16 for BF16), marked
``source="estimated from cpuinfo"``; GPU peaks are in
:mod:`gpuflows.pipelines.gpu_baseline.datasheet`.

It is a *ceiling*, used to catch impossible figures (a missing synchronise), so every guess errs
high: when the machine exposes no maximum clock (a VM shows only the nominal or current clock,
and turbo runs above it) the bound uses :data:`CLOCK_CEILING_MHZ`, the fastest boost clock any
shipping x86/Arm core reaches.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path

from gpuflows.pipelines.gpu_baseline.datasheet import DevicePeak

CPU_ESTIMATE_SOURCE = "estimated from cpuinfo"

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

# BF16 FLOP/cycle/core. AMX (Sapphire Rapids and later): one TDPBF16PS multiplies a 16x32 by a
# 32x16 bf16 tile (8192 multiply-adds) every 16 cycles = 1024 FLOP/cycle/core (Intel's
# optimisation manual). AVX-512 BF16 (VDPBF16PS): twice the FP32 FMA rate of the same vector.
AMX_BF16_FLOP_PER_CYCLE = 1024

# Highest boost clock of a shipping CPU core (i9-14900KS, 6.2 GHz), MHz: the clock of the bound
# when no maximum clock is exposed (lscpu 'CPU max MHz', sysfs cpuinfo_max_freq).
CLOCK_CEILING_MHZ = 6200.0


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
    """Upper-bound CPU FP32 and BF16 peaks: cores x max MHz x FLOP/cycle/core from the ISA flags.

    ``peak = cores * MHz * 1e6 * (FMA units * fp32 lanes * 2) / 1e12`` TFLOP/s, with the table
    in ``_ISA_TABLE`` (e.g. avx512f: 2 * 16 * 2 = 64 FLOP/cycle/core). Cores are physical cores
    among ``os.sched_getaffinity(0)``, capped by a cgroup ``cpu.max`` quota. The clock is the
    exposed maximum (lscpu, sysfs); when only a nominal or current clock is known, the bound
    uses :data:`CLOCK_CEILING_MHZ` instead (``details["bound_mhz"]``). BF16: ``amx_bf16`` gives
    :data:`AMX_BF16_FLOP_PER_CYCLE`, ``avx512_bf16`` 2x FP32, otherwise bf16 is computed through
    fp32 and bounded by the FP32 peak. There is no TF32 on CPUs, and memory and host-link peaks
    are not estimated (the copy benchmark uses a measured ceiling instead). Every argument
    defaults to reading the live system; pass text to test. Missing files never raise: the
    figure that needs them is ``None`` and ``note`` says why.
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
        bound_mhz = None
    elif mhz_how.startswith(("lscpu", "sysfs")):
        bound_mhz = mhz
    else:
        bound_mhz = max(mhz, CLOCK_CEILING_MHZ)
        notes.append(
            f"no maximum clock exposed ({mhz_how}: {mhz:.0f} MHz; turbo runs above it): the "
            f"bound uses {bound_mhz:.0f} MHz, the fastest shipping boost clock"
        )

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
    if bound_mhz is not None and flop_cycle is not None:
        fp32 = cores * bound_mhz * 1e6 * flop_cycle / 1e12
    bf16 = None
    if bound_mhz is not None and "amx_bf16" in flags:
        bf16_isa = "amx_bf16"
        bf16_cycle: int | None = AMX_BF16_FLOP_PER_CYCLE
        bf16 = cores * bound_mhz * 1e6 * AMX_BF16_FLOP_PER_CYCLE / 1e12
    elif fp32 is not None and "avx512_bf16" in flags:
        bf16_isa, bf16_cycle, bf16 = "avx512_bf16", 2 * flop_cycle, 2 * fp32
    else:
        bf16_isa, bf16_cycle, bf16 = "fp32 (no amx_bf16/avx512_bf16)", flop_cycle, fp32
        notes.append("bf16: no amx_bf16/avx512_bf16 flag: computed through fp32, FP32 bound")
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
            "bound_mhz": bound_mhz,
            "isa": isa[0] if isa else None,
            "fp32_flop_per_cycle_per_core": flop_cycle,
            "flop_per_cycle_formula": (
                f"{isa[2]} units * {isa[1]} lanes * {isa[3]}" if isa else None
            ),
            "bf16_isa": bf16_isa,
            "bf16_flop_per_cycle_per_core": bf16_cycle,
        },
    )
