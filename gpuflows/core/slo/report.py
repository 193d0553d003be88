"""SLO report rendering: the markdown report and the latency plot (no Prefect).

Markdown is built line by line (no indented triple-quoted strings), so it renders the same in the
Prefect UI and on disk. The plot uses matplotlib's object API (no pyplot state, no GUI backend).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gpuflows.core.evidence.checks import CheckResult, checks_table
from gpuflows.core.slo.baseline import RegressionReport
from gpuflows.core.slo.bounds import P99_MIN_N
from gpuflows.core.slo.measure import SloMeasurement
from gpuflows.core.store.io import atomic_write_bytes


def _f(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


def _device_lines(m: SloMeasurement) -> list[str]:
    lines = [f"- Device used: `{m.device}`; target device: `{m.target_device}`."]
    if m.fallback:
        lines.append(
            f"- **Fallback:** measured on `{m.device}` for a `{m.target_device}` target. "
            f"These numbers are not a `{m.target_device}` baseline."
        )
    return lines


def _latency_lines(m: SloMeasurement) -> list[str]:
    if m.latency is None:
        return ["No request succeeded: no latency to report."]
    s = m.latency
    p99 = f"{s.p99_ms:.4g}" if s.count >= P99_MIN_N else f"— (n={s.count} < {P99_MIN_N})"
    return [
        f"{s.count} successful calls; {s.warmup_excluded} warm-up calls excluded.",
        "",
        "| p50 ms | p95 ms | p99 ms | mean ms | min ms | max ms | std ms |",
        "|---|---|---|---|---|---|---|",
        f"| {s.p50_ms:.4g} | {s.p95_ms:.4g} | {p99} | {s.mean_ms:.4g} "
        f"| {s.min_ms:.4g} | {s.max_ms:.4g} | {s.std_ms:.4g} |",
    ]


def _rate_lines(m: SloMeasurement) -> list[str]:
    bound = (
        "no latency bound" if m.goodput_latency_ms is None else f"<= {m.goodput_latency_ms:g} ms"
    )
    types = ", ".join(f"{k}: {v}" for k, v in sorted(m.error_types.items())) or "none"
    return [
        "| metric | value |",
        "|---|---|",
        f"| throughput (items/s) | {m.throughput_rps:.4g} |",
        f"| goodput (items/s, {bound}) | {m.goodput_rps:.4g} |",
        f"| error rate | {m.error_rate:.4%} ({m.errors} of {m.requests}) |",
        f"| error types | {types} |",
        f"| peak memory (MB) | {_f(m.peak_memory_mb)} |",
        f"| timed seconds | {m.measured_s:.4g} |",
    ]


def _regression_lines(r: RegressionReport, word: str = "**REGRESSED**") -> list[str]:
    if not r.comparable:
        return [f"Not compared: {r.reason}."]
    verdict = word if r.regressed else "within tolerance"
    lines = [
        f"Baseline from `{r.baseline_device}` at {r.baseline_measured_at}; "
        f"tolerance {r.tolerance:.0%}: {verdict} ({r.reason}). A sampled metric counts only "
        "when its whole 95 % CI (bootstrap, current/baseline) lies beyond the tolerance and the "
        "one-sided Mann-Whitney U test agrees (p < 0.05).",
        "",
        "| metric | baseline | current | change | 95 % CI of ratio | p | method | allowed "
        "| result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d in r.metrics:
        change = "n/a" if d.relative_change is None else f"{d.relative_change:+.1%}"
        ci = "—" if d.ci_low is None else f"[{d.ci_low:.3f}, {d.ci_high:.3f}]"
        p = "—" if d.p_value is None else f"{d.p_value:.2g}"
        mark = word if d.regressed else "ok"
        lines.append(
            f"| {d.name} | {d.baseline:.4g} | {d.current:.4g} | {change} | {ci} | {p} "
            f"| {d.method} | {d.allowed_change:.4g} | {mark} |"
        )
    return lines


def _bounds_lines(m: SloMeasurement) -> list[str]:
    b = m.bounds
    lines = [
        f"Over all {b.n} timed requests ({b.failed} failed, counted as breaches); "
        "distribution-free 95 % upper bounds (order statistics); p99 needs n >= 299.",
        "",
        "| percentile | estimate ms | 95 % upper bound ms |",
        "|---|---|---|",
    ]
    for name, pb in b.percentiles.items():
        if not pb.reported:
            lines.append(f"| {name} | not reported (n={b.n} < 299) | — |")
            continue
        lines.append(f"| {name} | {_f(pb.estimate_ms)} | {_f(pb.upper_ms)} |")
    lines += [
        "",
        f"Error rate {b.error_rate:.2%} ({b.failed} of {b.n}); Clopper-Pearson 95 % upper "
        f"bound {b.error_rate_upper:.2%} (the figure checked against the SLO).",
    ]
    return lines


def render_slo_markdown(
    m: SloMeasurement,
    checks: list[CheckResult],
    regression: RegressionReport,
    tier_block: str = "",
    drift: RegressionReport | None = None,
) -> str:
    """Complete markdown SLO report; ``tier_block`` is appended verbatim.

    Returns:
        Markdown with device (and any fallback), latency percentiles, rates, quality, the
        checks table and the baseline comparison.
    """
    failed = [c.name for c in checks if not c.passed]
    verdict = f"**FAIL** ({', '.join(failed)})" if failed else "pass"
    lines = [
        f"# SLO report: {m.service}",
        "",
        *_device_lines(m),
        f"- Measured at {m.measured_at}: {m.requests} timed requests "
        f"(batch size {m.batch_size}), {m.warmup} warm-up calls "
        f"({m.warmup_errors} failed); timer: {m.timer}.",
        f"- SLO checks: {verdict}. Baseline: "
        f"{'**REGRESSED**' if regression.regressed else 'no regression'}"
        + (
            ""
            if drift is None
            else f"; first baseline: {'**DRIFTED**' if drift.regressed else 'no drift'}"
        )
        + ".",
        "",
        "## Latency",
        "",
        *_latency_lines(m),
        "",
        "### Percentile bounds",
        "",
        *_bounds_lines(m),
        "",
        "## Throughput, goodput and errors",
        "",
        *_rate_lines(m),
        "",
        "## Quality",
        "",
    ]
    if m.quality:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in m.quality.items()]
    else:
        lines.append("No quality metric recorded.")
    lines += ["", "## SLO checks", ""]
    lines.append(checks_table(checks) if checks else "No SLO bound set: nothing checked.")
    lines += ["", "## Baseline comparison", "", *_regression_lines(regression), ""]
    if drift is not None:
        lines += [
            "## Cumulative drift (first baseline)",
            "",
            *_regression_lines(drift, "**DRIFTED**"),
            "",
        ]
    text = "\n".join(lines)
    return text + ("\n" + tier_block if tier_block else "")


def plot_latency(samples_ms: Sequence[float], path: str | os.PathLike[str], title: str) -> Path:
    """Histogram and empirical CDF of latencies with p50/p95/p99 lines, written as PNG.

    Args:
        samples_ms: latencies in ms (at least one).
        path: PNG file to write (atomically: temp file + ``os.replace``).
        title: figure title.

    Returns:
        The written path.
    """
    from matplotlib.figure import Figure  # lazy: the object API needs no pyplot or GUI backend

    a = np.sort(np.asarray(samples_ms, dtype=np.float64).ravel())
    if a.size == 0:
        raise ValueError("plot_latency needs at least one latency sample, got none")
    pcts = dict(zip(("p50", "p95", "p99"), np.percentile(a, [50, 95, 99]), strict=True))
    colours = {"p50": "tab:green", "p95": "tab:orange", "p99": "tab:red"}
    fig = Figure(figsize=(10, 4), dpi=100)
    hist, cdf = fig.subplots(1, 2)
    hist.hist(a, bins=int(min(60, max(10, np.sqrt(a.size)))), color="tab:blue", alpha=0.8)
    hist.set(xlabel="latency (ms)", ylabel="requests", title="histogram")
    cdf.step(a, np.arange(1, a.size + 1) / a.size, where="post", color="tab:blue")
    cdf.set(
        xlabel="latency (ms)", ylabel="fraction of requests", title="empirical CDF", ylim=(0, 1.02)
    )
    for name, v in pcts.items():
        for ax in (hist, cdf):
            ax.axvline(v, color=colours[name], linestyle="--", label=f"{name} = {v:.3g} ms")
    cdf.legend(loc="lower right")
    fig.suptitle(f"{title} (n={a.size})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return atomic_write_bytes(path, buf.getvalue())
