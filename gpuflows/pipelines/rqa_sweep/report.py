"""The sweep's summary: the markdown body, the payload of ``report.json`` and the Trust Tier.

The body names the grid, the best-separating combinations (Kruskal-Wallis epsilon^2, BH q over
the whole sweep), the mean effect per parameter value, and what to keep in mind (synthetic data,
float32 flips, OOM fallbacks). ``tasks.reports.publish_tiered_report`` adds the tier, its checks
and the environment lock around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from gpuflows.core.evidence.envlock import EnvironmentLock
from gpuflows.core.evidence.trust import TrustAssessment
from gpuflows.pipelines.rqa_sweep.evidence import sweep_assessment
from gpuflows.pipelines.rqa_sweep.params import RqaSweepParams
from gpuflows.pipelines.rqa_sweep.results import SweepTables

SYNTHETIC_NOTE = (
    "Data: **synthetic** gaze (`gpuflows.pipelines.rqa_sweep.gaze`, invented group parameters): "
    "a test of the pipeline, not of the disease.\n\n"
)


def summary_md(
    p: RqaSweepParams,
    stats: pd.DataFrame,
    n_subjects: int,
    device_used: str,
    backend: str,
    plots: list[str],
) -> str:
    """Grid, top 10 combinations by Kruskal-Wallis epsilon^2, mean epsilon^2 per parameter."""
    kw = stats[(stats["test"] == "kruskal_wallis") & stats["effect"].notna()]
    lines = [
        f"Grid: m={p.m}, τ={p.tau}, ε={p.eps}, l_min={p.l_min}, v_min={p.v_min} "
        f"({p.n_combinations:,} combinations) × series {p.series}; metric {p.metric}, "
        f"Theiler {p.theiler}, z-score {p.normalize}.",
        f"Subjects: {n_subjects}. Device used: {device_used} (backend {backend}).",
        "",
        "## Best-separating combinations (Kruskal-Wallis ε², BH q across the whole sweep)",
        "",
        "| rank | measure | series | m | τ | ε | l_min | H | p | q | ε² |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    best10 = kw.sort_values(["effect", "p"], ascending=[False, True]).head(10)
    for i, (_, r) in enumerate(best10.iterrows(), 1):
        lines.append(
            f"| {i} | {r['metric']} | {r['series']} | {r['m']} | {r['tau']} | {r['eps']:g} | "
            f"{r['l_min']} | {r['statistic']:.3g} | {r['p']:.3g} | {r['q']:.3g} | "
            f"{r['effect']:.3f} |"
        )
    lines += ["", "## Mean ε² by parameter value (all measures and series)", ""]
    for par in ("m", "tau", "eps", "l_min"):
        mean = kw.groupby(par)["effect"].mean()
        if len(mean):
            vals = ", ".join(f"{k:g}: {v:.3f}" for k, v in mean.items())
            lines.append(f"- **{par}** (best {mean.idxmax():g}): {vals}")
    n_sig = int((kw["q"] < 0.05).sum())
    lines += [
        "",
        f"Kruskal-Wallis tests with q < 0.05: {n_sig} of {len(kw)}.",
        "",
        "Plots: " + ", ".join(f"`{x}`" for x in plots) if plots else "Plots: none (no test).",
    ]
    return "\n".join(lines)


@dataclass
class SweepReport:
    """What the flow publishes: the tier, the markdown body and the ``report.json`` payload."""

    assessment: TrustAssessment
    body: str
    payload: dict[str, Any]
    device_used: str


def build_report(
    p: RqaSweepParams,
    *,
    frame: pd.DataFrame,
    synthetic: bool,
    lock: EnvironmentLock,
    n_series: int,
    tables: SweepTables,
    results: list[dict],
    computed: dict[tuple[int, int], dict],
) -> SweepReport:
    """Assess the sweep and write its summary.

    Args:
        p: the sweep's parameters; frame: the gaze table; synthetic: generated data?
        lock: the run's environment lock; n_series: arrays computed per combination
            (subjects x series); tables: the written tables.
        results: one unit result per grid (m, tau) (``grid.expand_units``); computed: the
            distinct units as run (their seconds and float32 flips count once).
    """
    tidy = tables.tidy
    device_used = ",".join(sorted({r["device"] for r in results}))
    backend = ",".join(sorted({r["backend"] for r in results}))
    fallbacks = [f for r in results for f in r["fallbacks"]]
    n_subjects = int(frame["subject_id"].nunique())
    rows, expected = len(tidy), n_series * p.n_combinations  # the run's one row count
    assessment = sweep_assessment(
        p,
        synthetic=synthetic,
        lock=lock,
        n_subjects=n_subjects,
        rows=rows,
        expected=expected,
        device_used=device_used,
    )
    body = summary_md(p, tables.stats, n_subjects, device_used, backend, tables.plots)
    body += f"\n\nRows: {rows:,} of {expected:,} (subject x series x combination)."
    if synthetic:
        body = SYNTHETIC_NOTE + body
    flips = [r["flipped_pairs"] for r in computed.values() if r["flipped_pairs"] is not None]
    if p.dtype == "float32":
        body += (
            f"\n\nDistances in **float32**: {sum(flips):,} recurrence entries (pairs x eps) "
            "decided differently from float64 (within rounding of eps); rerun with "
            "dtype='float64' for the exact values."
        )
    if fallbacks:
        body += f"\n\nOOM fallbacks: {len(fallbacks)} failed attempt(s), see report.json."
    payload = {
        "table": str(tables.table),
        "plots": tables.plots,
        "rows": rows,
        "rows_expected": expected,
        "device_used": device_used,
        "backend": backend,
        "fallbacks": fallbacks,
        "task_seconds": [r["seconds"] for r in computed.values()],
        "dtype": p.dtype,
        "flipped_pairs": sum(flips) if flips else None,
    }
    return SweepReport(assessment=assessment, body=body, payload=payload, device_used=device_used)
