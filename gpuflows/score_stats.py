"""Score statistics per category and overall: mean, std, Student-t 95 % CI, scored/failed counts."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy import stats

from gpuflows.edit_bench import CATEGORIES


def describe(scores: Iterable[float], n_failed: int = 0, level: float = 0.95) -> dict:
    """n_scored, n_failed, mean, std (ddof=1), CI (t, two-sided), min, max; NaN where undefined
    (mean with no score; std and CI with fewer than 2)."""
    x = np.asarray(list(scores), dtype=np.float64)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {
        "n_scored": n, "n_failed": int(n_failed), "mean": mean, "std": std,
        "ci_low": mean - half, "ci_high": mean + half,
        "min": float(x.min()) if n else math.nan, "max": float(x.max()) if n else math.nan,
    }  # fmt: skip


def summarize(records: Iterable[tuple[str, float | None]]) -> dict[str, dict]:
    """Per category (in :data:`CATEGORIES` order, present ones) and ``overall``; a None score is
    a failed pair."""
    recs = list(records)
    out = {}
    for cat in [c for c in CATEGORIES if any(r[0] == c for r in recs)] + ["overall"]:
        sel = [s for c, s in recs if cat == "overall" or c == cat]
        out[cat] = describe([s for s in sel if s is not None], sum(s is None for s in sel))
    return out


def render_markdown(summary: dict[str, dict]) -> str:
    rows = ["| category | scored | failed | mean | std | 95 % CI |", "|---|---|---|---|---|---|"]
    for cat, s in summary.items():
        ci = "n/a" if math.isnan(s["ci_low"]) else f"[{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
        mean = "n/a" if math.isnan(s["mean"]) else f"{s['mean']:.2f}"
        std = "n/a" if math.isnan(s["std"]) else f"{s['std']:.2f}"
        rows.append(f"| {cat} | {s['n_scored']} | {s['n_failed']} | {mean} | {std} | {ci} |")
    return "\n".join(rows)
