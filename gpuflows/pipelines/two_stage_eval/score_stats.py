"""Score statistics per category and overall: counts, mean, std, Student-t 95 % CI, min, max.

A record is ``(category, score, error)`` (or ``(category, score)``). It counts as *scored* when
``score`` is a finite number and ``error`` is None, otherwise as *failed* (no score, an error, or
a NaN/inf score). Per group (each category, then ``overall`` = every record pooled, i.e. the mean
over pairs, not the mean of the category means):

* ``n_scored``, ``n_failed``;
* ``mean`` (NaN with no score), ``std`` — the *sample* standard deviation (``ddof=1``),
  NaN when ``n_scored < 2``;
* ``ci_low``, ``ci_high`` — the two-sided Student-t interval
  ``mean ± t(0.975, n-1) * std / sqrt(n)`` (``scipy.stats.t``), NaN when ``n_scored < 2``;
* ``min``, ``max`` (NaN with no score).

NaN is written as ``n/a`` by :func:`render_markdown` (and as ``NaN`` by ``json.dumps``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy import stats

from gpuflows.pipelines.two_stage_eval.bench import CATEGORIES, canonical_category

LEVEL = 0.95
FIELDS = ("n_scored", "n_failed", "mean", "std", "ci_low", "ci_high", "min", "max")


def describe(scores: Iterable[float], n_failed: int = 0, level: float = LEVEL) -> dict[str, Any]:
    """The statistics of one group (module docstring) from its finite scores."""
    x = np.asarray(list(scores), dtype=np.float64)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
    return {
        "n_scored": n,
        "n_failed": int(n_failed),
        "mean": mean,
        "std": std,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "min": float(x.min()) if n else math.nan,
        "max": float(x.max()) if n else math.nan,
    }


def _is_scored(score: Any, error: Any) -> bool:
    if error is not None or score is None or isinstance(score, bool):
        return False
    try:
        return math.isfinite(float(score))
    except (TypeError, ValueError):
        return False


def summarize_scores(
    records: Iterable[Sequence[Any]],
    *,
    categories: Iterable[str] | None = None,
    level: float = LEVEL,
) -> dict[str, dict[str, Any]]:
    """Statistics per category and ``overall`` (module docstring), ready for a table.

    Args:
        records: ``(category, score | None, error | None)`` or ``(category, score | None)``;
            category names may be aliases (物理 …) and are reported by their English key.
        categories: rows always shown, in this order, even with no record (default: the
            categories present, in :data:`CATEGORIES` order, then any others as first seen).
        level: confidence level of the interval.

    Returns:
        ``{category: {n_scored, n_failed, mean, std, ci_low, ci_high, min, max}, ...,
        "overall": {...}}``.
    """
    groups: dict[str, tuple[list[float], list[int]]] = {}
    for rec in records:
        cat_raw, score = rec[0], rec[1]
        error = rec[2] if len(rec) > 2 else None
        cat = canonical_category(cat_raw) or str(cat_raw)
        scored, failed = groups.setdefault(cat, ([], [0]))
        if _is_scored(score, error):
            scored.append(float(score))
        else:
            failed[0] += 1
    if categories is not None:
        order = [canonical_category(c) or str(c) for c in categories]
    else:
        order = [c for c in CATEGORIES if c in groups]
    order += [c for c in groups if c not in order]
    out = {}
    for cat in order:
        scored, failed = groups.get(cat, ([], [0]))
        out[cat] = describe(scored, failed[0], level)
    every = [s for scored, _ in groups.values() for s in scored]
    out["overall"] = describe(every, sum(f[0] for _, f in groups.values()), level)
    return out


def summarize(records: Iterable[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """:func:`summarize_scores` with its defaults (the name earlier callers use)."""
    return summarize_scores(records)


def _fmt(v: float, digits: int) -> str:
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def render_markdown(
    summary: dict[str, dict[str, Any]], digits: int = 2, level: float = LEVEL
) -> str:
    """A markdown table of a :func:`summarize_scores` result (NaN as ``n/a``)."""
    rows = [
        f"| category | scored | failed | mean | std | {level * 100:g} % CI | min | max |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for cat, s in summary.items():
        ci = (
            "n/a"
            if math.isnan(s["ci_low"])
            else f"[{_fmt(s['ci_low'], digits)}, {_fmt(s['ci_high'], digits)}]"
        )
        cells = [_fmt(s[k], digits) for k in ("mean", "std")] + [ci]
        cells += [_fmt(s[k], digits) for k in ("min", "max")]
        rows.append(f"| {cat} | {s['n_scored']} | {s['n_failed']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)
