"""GPU telemetry as Prefect artifacts: ``with gpu_monitor(key=..., title=...):`` around GPU work.

On exit (also when the work raises) the samples become a table artifact ``<key>``, a PNG under
``results_root()/monitor/<flow_run_id or 'local'>/<key>.png`` and a markdown artifact
``<key>-summary``. On a machine without GPUs only the markdown is published, saying why
("GPU monitor inactive: ..."), so every run states whether it has GPU telemetry.

Example:
    >>> @flow
    ... def train():
    ...     with gpu_monitor(interval_s=0.5, key="train-gpu", title="train") as mon:
    ...         fit()
    ...     mon.report.png_path
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuflows.core.hardware.monitor import GpuSampler
from gpuflows.core.hardware.monitor_report import plot_samples, samples_table, summarize
from gpuflows.core.store.io import results_root
from tasks.artifacts import validate_key
from tasks.plots import embed_png

_MAX_ERRORS_SHOWN = 10


@dataclass(frozen=True)
class MonitorReport:
    """What ``gpu_monitor`` published for one sampler."""

    samples: int
    summary: list[dict[str, Any]]
    png_path: Path | None
    reason: str | None
    table_rows: int = 0
    errors: list[str] = field(default_factory=list)
    publish_errors: list[str] = field(default_factory=list)


@contextmanager
def gpu_monitor(
    *,
    interval_s: float = 1.0,
    key: str,
    title: str,
    gpu_indices: Sequence[int] | None = None,
    nvml: Any | None = None,
) -> Iterator[GpuSampler]:
    """Sample GPUs while the block runs, then publish table, PNG and summary artifacts.

    Args:
        interval_s: seconds between samples (> 0).
        key: artifact key (lowercase letters, digits, dashes); the summary is ``<key>-summary``.
        title: plot and summary heading.
        gpu_indices: NVML indices to watch (default: ``CUDA_VISIBLE_DEVICES``, else all).
        nvml: a pynvml-like module, for tests; default: the real pynvml, if installed.

    Yields:
        The running ``GpuSampler``; after the block, ``sampler.report`` is a ``MonitorReport``.
        Exceptions from the block propagate unchanged; publishing problems are logged and
        listed in ``report.publish_errors``, never raised.
    """
    validate_key(key)
    validate_key(f"{key}-summary")
    sampler = GpuSampler(interval_s, gpu_indices=gpu_indices, nvml=nvml)
    sampler.start()
    try:
        yield sampler
    finally:
        sampler.stop()
        sampler.report = publish_monitor(sampler, key=key, title=title)


def publish_monitor(sampler: GpuSampler, *, key: str, title: str) -> MonitorReport:
    """Publish a stopped sampler's samples as artifacts; returns what was published."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    log = _logger()
    samples = sampler.samples
    summary = summarize(samples)
    problems: list[str] = []
    rows: list[dict[str, Any]] = []
    png: Path | None = None
    if samples:
        rows = samples_table(samples)
        try:
            create_table_artifact(
                table=rows,
                key=key,
                description=f"GPU samples for {title} ({len(rows)} of {len(samples)} rows).",
                _sync=True,
            )
        except Exception as exc:  # noqa: BLE001 - telemetry must not fail the work
            problems.append(f"table artifact: {exc!r}")
            rows = []
        try:
            png = plot_samples(samples, monitor_dir() / f"{key}.png", title)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"plot: {exc!r}")
    report = MonitorReport(
        samples=len(samples),
        summary=summary,
        png_path=png,
        reason=sampler.reason,
        table_rows=len(rows),
        errors=list(sampler.errors),
        publish_errors=problems,
    )
    try:
        create_markdown_artifact(
            markdown=render_summary(report, sampler=sampler, key=key, title=title),
            key=f"{key}-summary",
            description=f"GPU monitor summary for {title}.",
            _sync=True,
        )
    except Exception as exc:  # noqa: BLE001
        problems.append(f"summary artifact: {exc!r}")
    for p in problems:
        log.warning("GPU monitor could not publish %s", p)
    if not sampler.active:
        log.info("GPU monitor inactive: %s", sampler.reason)
    return report


def monitor_dir() -> Path:
    """Folder for this flow run's monitor plots: ``results_root()/monitor/<run id or 'local'>``."""
    from prefect.runtime import flow_run

    return results_root() / "monitor" / (flow_run.id or "local")


def render_summary(report: MonitorReport, *, sampler: GpuSampler, key: str, title: str) -> str:
    """Markdown for the ``<key>-summary`` artifact."""
    lines = [f"# GPU monitor: {title}", ""]
    if not sampler.active:
        lines += [f"GPU monitor inactive: {report.reason}", ""]
        return "\n".join(lines)
    lines += [
        f"GPUs {sampler.gpu_indices} (NVML indices), every {sampler.interval_s:g} s, "
        f"{report.samples} samples.",
        "",
    ]
    if report.reason:
        lines += [f"**Sampling incomplete:** {report.reason}", ""]
    lines += [
        "| gpu | name | samples | span s | util mean % | util max % | mem max MiB "
        "| mem total MiB | power mean W | power max W | temp max °C |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    cols = (
        "gpu_index name samples span_s util_mean_pct util_max_pct memory_max_used_mib "
        "memory_total_mib power_mean_w power_max_w temperature_max_c"
    ).split()
    for row in report.summary:
        lines.append("| " + " | ".join(_cell(row[c]) for c in cols) + " |")
    lines.append("")
    if report.table_rows:
        note = f"Table: artifact `{key}`, {report.table_rows} rows"
        if report.table_rows < report.samples:
            note += f" (downsampled evenly from {report.samples} samples)"
        lines += [note + ".", ""]
    if report.png_path is not None:
        lines += [embed_png(report.png_path, alt=f"GPU monitor: {title}"), ""]
    if report.errors:
        lines += ["Sampler notes:", ""]
        lines += [f"- {e}" for e in report.errors[:_MAX_ERRORS_SHOWN]]
        if len(report.errors) > _MAX_ERRORS_SHOWN:
            lines.append(f"- ... and {len(report.errors) - _MAX_ERRORS_SHOWN} more")
        lines.append("")
    if report.publish_errors:
        lines += ["Not published:", ""] + [f"- {p}" for p in report.publish_errors] + [""]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
