"""Score statistics per category and overall: counts, mean, std, Student-t 95 % CI, min, max.

A record is ``(category, score, error)`` (or ``(category, score)``). It counts as *scored* when
``score`` is a finite number and ``error`` is None, otherwise as *failed* (no score, an error, or
a NaN/inf score). Per group (each category, then ``overall`` = every record pooled, i.e. the mean
over pairs, not the mean of the category means):

* ``n_scored``, ``n_failed`` (pairs that ran and got no score), ``n_rejected`` (pairs rejected
  at load, before any model: given separately, never counted as failed; overall: every rejected
  pair, also those that named no valid category);
* ``mean`` (NaN with no score), ``std`` — the *sample* standard deviation (``ddof=1``),
  NaN when ``n_scored < 2``;
* ``ci_low``, ``ci_high`` — a 95 % interval of the mean that respects the score's scale
  (:data:`SCALE`, 0-10): the BCa bootstrap of the mean (``scipy.stats.bootstrap``, seeded, 9,999
  resamples; it lies within the scores' range), or, when every score is equal (no spread to
  resample), Hoeffding's distribution-free interval for a variable bounded by the scale, cut
  to the scale. NaN when ``n_scored < MIN_N_CI`` (5): too few scores for an interval;
  ``ci_method`` says which was used (or why none). A Student-t interval is not used: at small
  n it leaves the scale ([7.52, 10.95]) and at zero spread it claims certainty ([9.90, 9.90]);
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
FIELDS = ("n_scored", "n_failed", "n_rejected", "mean", "std", "ci_low", "ci_high", "min", "max")
SCALE = (0.0, 10.0)
"""The judge's score scale: every interval lies inside it."""
MIN_N_CI = 5
"""Fewer scores than this: no interval (NaN), ``ci_method`` says so."""
_BOOT_SEED = 0  # resamples the measured scores only; fixed so a report is reproducible


def mean_interval(
    x: np.ndarray, level: float = LEVEL, scale: tuple[float, float] = SCALE
) -> tuple[float, float, str]:
    """(low, high, method) of the mean of ``x`` (module docstring); NaNs below MIN_N_CI."""
    n = int(x.size)
    if n < MIN_N_CI:
        return math.nan, math.nan, f"none: n={n} < {MIN_N_CI} scores"
    mean = float(x.mean())
    if np.ptp(x) == 0:
        half = (scale[1] - scale[0]) * math.sqrt(math.log(2 / (1 - level)) / (2 * n))
        return max(scale[0], mean - half), min(scale[1], mean + half), "hoeffding (no spread)"
    res = stats.bootstrap(
        (np.sort(x),),  # sorted: the interval depends on the scores, not on their order
        np.mean,
        confidence_level=level,
        n_resamples=9999,
        method="BCa",
        rng=np.random.default_rng(_BOOT_SEED),
    )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return max(scale[0], lo), min(scale[1], hi), "bootstrap BCa"


def describe(
    scores: Iterable[float], n_failed: int = 0, level: float = LEVEL, n_rejected: int = 0
) -> dict[str, Any]:
    """The statistics of one group (module docstring) from its finite scores."""
    x = np.asarray(list(scores), dtype=np.float64)
    n = int(x.size)
    mean = float(x.mean()) if n else math.nan
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    lo, hi, method = mean_interval(x, level)
    return {
        "n_scored": n,
        "n_failed": int(n_failed),
        "n_rejected": int(n_rejected),
        "mean": mean,
        "std": std,
        "ci_low": lo,
        "ci_high": hi,
        "min": float(x.min()) if n else math.nan,
        "max": float(x.max()) if n else math.nan,
        "ci_method": method,
    }


def is_scored(score: Any, error: Any) -> bool:
    """A record counts as scored: a finite number and no error (else it failed)."""
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
    rejected: Iterable[str | None] = (),
) -> dict[str, dict[str, Any]]:
    """Statistics per category and ``overall`` (module docstring), ready for a table.

    Args:
        records: ``(category, score | None, error | None)`` or ``(category, score | None)``;
            category names may be aliases (物理 …) and are reported by their English key.
        categories: rows always shown, in this order, even with no record (default: the
            categories present, in :data:`CATEGORIES` order, then any others as first seen).
        level: confidence level of the interval.
        rejected: the category of each pair rejected at load (None or an unknown name: it
            counts in ``overall`` only).

    Returns:
        ``{category: {n_scored, n_failed, n_rejected, mean, std, ci_low, ci_high, min, max},
        ..., "overall": {...}}``.
    """
    groups: dict[str, tuple[list[float], list[int]]] = {}
    for rec in records:
        cat_raw, score = rec[0], rec[1]
        error = rec[2] if len(rec) > 2 else None
        cat = canonical_category(cat_raw) or str(cat_raw)
        scored, failed = groups.setdefault(cat, ([], [0]))
        if is_scored(score, error):
            scored.append(float(score))
        else:
            failed[0] += 1
    rejected = list(rejected)
    n_rej: dict[str, int] = {}
    for c in rejected:
        cat = canonical_category(c) if c is not None else None
        if cat is not None:
            n_rej[cat] = n_rej.get(cat, 0) + 1
            groups.setdefault(cat, ([], [0]))
    if categories is not None:
        order = [canonical_category(c) or str(c) for c in categories]
    else:
        order = [c for c in CATEGORIES if c in groups]
    order += [c for c in groups if c not in order]
    out = {}
    for cat in order:
        scored, failed = groups.get(cat, ([], [0]))
        out[cat] = describe(scored, failed[0], level, n_rej.get(cat, 0))
    every = [s for scored, _ in groups.values() for s in scored]
    out["overall"] = describe(every, sum(f[0] for _, f in groups.values()), level, len(rejected))
    return out


def summarize(records: Iterable[Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """:func:`summarize_scores` with its defaults (the name earlier callers use)."""
    return summarize_scores(records)


def _fmt(v: float, digits: int) -> str:
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def render_markdown(
    summary: dict[str, dict[str, Any]], digits: int = 2, level: float = LEVEL
) -> str:
    """A markdown table of a :func:`summarize_scores` result (NaN as ``n/a``); a ``rejected``
    column when any pair was rejected at load."""
    rej = any(s.get("n_rejected") for s in summary.values())
    rows = [
        f"| category | scored | failed |{' rejected |' if rej else ''} mean | std | "
        f"{level * 100:g} % CI | min | max |",
        "|---|---:|---:|" + ("---:|" if rej else "") + "---:|---:|---|---:|---:|",
    ]
    for cat, s in summary.items():
        ci = (
            "n/a"
            if math.isnan(s["ci_low"])
            else f"[{_fmt(s['ci_low'], digits)}, {_fmt(s['ci_high'], digits)}]"
        )
        cells = [_fmt(s[k], digits) for k in ("mean", "std")] + [ci]
        cells += [_fmt(s[k], digits) for k in ("min", "max")]
        counts = [s["n_scored"], s["n_failed"]] + ([s.get("n_rejected", 0)] if rej else [])
        rows.append(f"| {cat} | " + " | ".join(map(str, counts + cells)) + " |")
    return "\n".join(rows)
