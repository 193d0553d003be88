"""What a GPU sampler saw, for people: per-GPU summary, table rows (downsampled) and a plot.

Pure (no Prefect); matplotlib is imported only to plot. Samples come from
:class:`gpuflows.core.hardware.monitor.GpuSampler`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpuflows.core.hardware.monitor import GpuSample
from gpuflows.core.store.io import atomic_write_bytes

MAX_TABLE_ROWS = 500


def _by_gpu(samples: Iterable[GpuSample]) -> dict[int, list[GpuSample]]:
    out: dict[int, list[GpuSample]] = {}
    for s in samples:
        out.setdefault(s.gpu_index, []).append(s)
    return dict(sorted(out.items()))


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _max(xs: list[float]) -> float | None:
    return max(xs) if xs else None


def summarize(samples: Iterable[GpuSample]) -> list[dict[str, Any]]:
    """Per GPU (by NVML index): sample count, time span, mean/max utilisation and power, peaks.

    Fields a GPU never reported (e.g. power on some boards) are None, not 0.

    Example:
        >>> summarize(s.samples)[0]["util_max_pct"]
    """
    rows = []
    for index, ss in _by_gpu(samples).items():
        util = [s.utilization_pct for s in ss if s.utilization_pct is not None]
        power = [s.power_w for s in ss if s.power_w is not None]
        temp = [s.temperature_c for s in ss if s.temperature_c is not None]
        rows.append(
            {
                "gpu_index": index,
                "name": ss[0].name,
                "samples": len(ss),
                "span_s": ss[-1].t_s - ss[0].t_s,
                "util_mean_pct": _mean(util),
                "util_max_pct": _max(util),
                "memory_max_used_mib": max(s.memory_used_mib for s in ss),
                "memory_total_mib": ss[0].memory_total_mib,
                "power_mean_w": _mean(power),
                "power_max_w": _max(power),
                "temperature_max_c": _max(temp),
            }
        )
    return rows


def _evenly(items: list[GpuSample], k: int) -> list[GpuSample]:
    """``k`` items spread evenly over ``items``, first and last included."""
    n = len(items)
    if n <= k:
        return items
    if k == 1:
        return [items[-1]]
    return [items[round(i * (n - 1) / (k - 1))] for i in range(k)]


def samples_table(
    samples: Iterable[GpuSample], max_rows: int = MAX_TABLE_ROWS
) -> list[dict[str, Any]]:
    """Rows for a table artifact, at most ``max_rows``: each GPU's samples thinned evenly.

    ``len(rows) < len(samples)`` tells the caller the table was downsampled (say so).
    """
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    groups = _by_gpu(samples)
    if not groups:
        return []
    per_gpu = max(1, max_rows // len(groups))
    kept = [s for ss in groups.values() for s in _evenly(ss, per_gpu)]
    kept.sort(key=lambda s: (s.t_s, s.gpu_index))
    return [
        {
            "t_s": round(s.t_s, 3),
            "gpu_index": s.gpu_index,
            "name": s.name,
            "utilization_pct": s.utilization_pct,
            "memory_used_mib": round(s.memory_used_mib, 1),
            "memory_total_mib": round(s.memory_total_mib, 1),
            "power_w": None if s.power_w is None else round(s.power_w, 1),
            "temperature_c": s.temperature_c,
        }
        for s in kept[:max_rows]
    ]


def plot_samples(samples: Iterable[GpuSample], path: str | os.PathLike[str], title: str) -> Path:
    """Write a PNG of utilisation, memory, power and temperature over time, one line per GPU.

    Uses matplotlib's object API (no pyplot, no global backend state), so it is safe in worker
    threads and headless machines. Written atomically.

    Raises:
        ValueError: no samples.
    """
    groups = _by_gpu(samples)
    if not groups:
        raise ValueError("plot_samples needs at least one sample")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 10), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    fig.suptitle(title)
    panels = [
        ("utilisation (%)", "utilization_pct"),
        ("memory (MiB)", "memory_used_mib"),
        ("power (W)", "power_w"),
        ("temperature (°C)", "temperature_c"),
    ]
    for ax, (label, field) in zip(axes, panels, strict=True):
        drawn = False
        for index, ss in groups.items():
            pts = [(s.t_s, getattr(s, field)) for s in ss if getattr(s, field) is not None]
            if not pts:
                continue
            marker = "." if len(pts) <= 100 else None  # dots only while they stay readable
            (line,) = ax.plot(
                *zip(*pts, strict=True), marker=marker, label=f"{index}: {ss[0].name}"
            )
            drawn = True
            if field == "memory_used_mib":
                ax.plot(
                    [s.t_s for s in ss],
                    [s.memory_total_mib for s in ss],
                    linestyle="--",
                    color=line.get_color(),
                    label=f"{index}: total",
                )
        if not drawn:
            ax.text(0.5, 0.5, "not reported", ha="center", va="center", transform=ax.transAxes)
        elif field == "utilization_pct":
            ax.set_ylim(-2, 102)
        elif field == "memory_used_mib":
            ax.set_ylim(bottom=0)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize="small")
    axes[1].legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("time since sampler start (s)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write_bytes(path, buf.getvalue())
