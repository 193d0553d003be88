"""Scoring: the chosen option parsed from the answer, rows per c_r point, the aggregate table.

:func:`parse_choice` reads, in order: ``<choice>N</choice>`` (also unclosed: the synthesizer
stops at ``</choice>``), "option N" / "answer is N" / "answer: N", then a lone option number on
the last line. An answer with none of these, or a number outside 1..n_options, is *unparsed*
and counts as wrong: the reference drops unparsed answers from the denominator, which biases
accuracy up. The table reports the parse-failure rate beside accuracy.

Confidence intervals: Wilson score 95 % for proportions (accuracy, parse failures); the mean
retrieval calls get a normal 95 % interval (t for small n) on the per-episode counts.
The majority-class baseline: the share of the most frequent correct option among the questions
(what always answering that option scores).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from scipy import stats

_TAG = re.compile(r"<choice>\s*\(?(\d+)\)?", re.I)
_PHRASES = re.compile(
    r"(?:option|answer\s*(?:is|:)|choice\s*(?:is|:)?|correct\s*(?:option|answer)?\s*(?:is|:)?)"
    r"\s*\(?#?(\d+)\b",
    re.I,
)
_LONE = re.compile(r"^\W*(\d+)\W*$")


def parse_choice(text: str, n_options: int) -> int | None:
    """The option number the answer chose, or None (unparsed)."""
    for pattern in (_TAG, _PHRASES):
        m = pattern.findall(text or "")
        if m:
            k = int(m[-1])
            return k if 1 <= k <= n_options else None
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    if lines:
        m = _LONE.match(lines[-1])
        if m and 1 <= int(m.group(1)) <= n_options:
            return int(m.group(1))
    return None


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of k successes in n (95 % by default); (nan, nan) when n = 0."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95 % interval (t distribution); a single value gives (v, v, v)."""
    n = len(values)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    m = sum(values) / n
    if n == 1:
        return (m, m, m)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return (m, m - half, m + half)


def _tkey(d: dict[str, Any]) -> tuple[float, float]:
    return (round(float(d["theta_cont"]), 9), round(float(d["theta_star"]), 9))


def expand_rows(
    episodes: list[dict[str, Any]], thresholds: list[dict[str, Any]], c_p: float
) -> list[dict[str, Any]]:
    """One row per (question, strategy, c_r, seed): the episode that serves it, scored.

    Baseline episodes serve every c_r point; an ARGO episode serves the c_r points whose
    thresholds it ran with. ``episode`` names the shared episode, so sharing stays visible.
    """
    argo: dict[tuple[float, float], list[dict]] = {}
    base: list[dict] = []
    for ep in episodes:
        if ep["strategy"] == "argo":
            argo.setdefault(_tkey(ep), []).append(ep)
        else:
            base.append(ep)
    rows: list[dict[str, Any]] = []
    for t in thresholds:
        c_r = t["c_r"]
        served = base + argo.get(_tkey(t), [])
        for ep in served:
            choice = parse_choice(ep["answer"], ep["n_options"])
            rows.append(
                {
                    "question_id": ep["question_id"],
                    "difficulty": ep["difficulty"],
                    "strategy": ep["strategy"],
                    "c_r": c_r,
                    "seed": ep["seed"],
                    "episode": ep["episode"],
                    "actions": ep["actions"],
                    "retrievals": ep["retrievals"],
                    "successful_retrievals": ep["successful_retrievals"],
                    "reasoning_steps": ep["reasoning_steps"],
                    "cost": ep["retrievals"] * c_r + ep["reasoning_steps"] * c_p,
                    "answer": ep["answer"],
                    "parsed_choice": choice,
                    "answer_key": ep["answer_key"],
                    "correct": choice is not None and choice == ep["answer_key"],
                    "errors": len(ep["errors"]),
                }
            )
    return rows


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (difficulty, strategy, c_r): n, accuracy + Wilson CI, parse failures, retrievals."""
    cells: dict[tuple[str, str, float], list[dict]] = {}
    for r in rows:
        cells.setdefault((r["difficulty"], r["strategy"], r["c_r"]), []).append(r)
    out = []
    for (diff, strat, c_r), rs in sorted(cells.items()):
        n = len(rs)
        k = sum(r["correct"] for r in rs)
        fails = sum(r["parsed_choice"] is None for r in rs)
        lo, hi = wilson(k, n)
        m, mlo, mhi = mean_ci([float(r["retrievals"]) for r in rs])
        out.append(
            {
                "difficulty": diff,
                "strategy": strat,
                "c_r": c_r,
                "n": n,
                "accuracy": k / n,
                "acc_lo": lo,
                "acc_hi": hi,
                "parse_fail_rate": fails / n,
                "mean_retrievals": m,
                "ret_lo": mlo,
                "ret_hi": mhi,
                "mean_reasoning": sum(r["reasoning_steps"] for r in rs) / n,
                "mean_cost": sum(r["cost"] for r in rs) / n,
            }
        )
    return out


def majority_baseline(questions: list[Any]) -> dict[str, dict[str, Any]]:
    """Per difficulty (and 'all'): the most frequent correct option and its share."""
    groups: dict[str, list[int]] = {"all": []}
    for q in questions:
        groups.setdefault(q.difficulty, []).append(q.answer)
        groups["all"].append(q.answer)
    out = {}
    for name, answers in groups.items():
        if answers:
            option, count = Counter(answers).most_common(1)[0]
            out[name] = {"option": option, "accuracy": count / len(answers), "n": len(answers)}
    return out
