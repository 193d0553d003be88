"""Group statistics for RQA metrics: Kruskal-Wallis with epsilon^2, Mann-Whitney with Cliff's delta,
Benjamini-Hochberg FDR. Pure NumPy/pandas; SciPy for the distributions (chi^2, normal, the exact
Mann-Whitney null), imported lazily so this module loads without it.

Conventions (the same in the one-test functions and in the batched :func:`group_statistics`):

- NaN values are dropped and the counts used are reported (a metric can be 0/0 = NaN for some
  subjects, e.g. DET with no diagonal line). +/-inf are kept: rank tests only need an order, and
  DIV = 1 / L_max is legitimately inf when L_max = 0.
- Kruskal-Wallis (Kruskal & Wallis 1952): average ranks over all values, H = [12 / (n (n + 1))
  sum_i R_i^2 / n_i - 3 (n + 1)] / C with the tie correction C = 1 - sum_t (t^3 - t) / (n^3 - n);
  p = P(chi^2_{k-1} >= H) over the k groups that have values (as ``scipy.stats.kruskal``).
  Fewer than 2 such groups, or all values identical (C = 0, H = 0/0): H, p and epsilon^2 are NaN
  with a ``note`` - "no test possible", not "no difference" - and NaN p-values do not count in
  the FDR family.
- Effect size epsilon^2 = H / ((n^2 - 1) / (n + 1)) = H / (n - 1), in [0, 1] (Tomczak & Tomczak
  2014, "The need to report effect size estimates revisited", Trends in Sport Sciences 21(1):
  19-25, eq. for E^2_R).
- Mann-Whitney U (two-sided), exactly ``scipy.stats.mannwhitneyu(a, b, method="auto")`` as of
  SciPy 1.17: U is U_a = R_a - n_a (n_a + 1) / 2; exact null distribution when min(n_a, n_b) <= 8
  and no ties, otherwise the normal approximation with tie correction and continuity correction
  0.5. The batched path computes the normal approximation itself with SciPy's formula and asks
  SciPy for the exact cases (cached by (U, n_a, n_b)). Either sample empty: NaN.
- Cliff's delta = (#{a_i > b_j} - #{a_i < b_j}) / (n_a n_b) in [-1, 1] (Cliff 1993) = 2 U_a /
  (n_a n_b) - 1; positive when ``a`` tends to be larger.
- Benjamini-Hochberg (1995) adjusted p-values (q): q_(i) = min_{j >= i} min(1, m p_(j) / j) over
  the sorted p-values, as ``scipy.stats.false_discovery_control(method="bh")``; NaN p stay NaN and
  are not counted in m.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gpuflows.core.faults import InputError
from gpuflows.pipelines.rqa_sweep.schema import GROUPS

TESTS = ("kruskal_wallis", "mann_whitney")
"""Test names in the ``test`` column; each is one FDR family."""
EXACT_MAX_N = 8
"""SciPy 1.17 ``method="auto"``: exact Mann-Whitney when a sample has <= 8 values and no ties."""


def _clean(values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    return a[~np.isnan(a)]


def _tie_term(values: np.ndarray) -> float:
    """sum over tie blocks of t^3 - t."""
    _, t = np.unique(values, return_counts=True)
    t = t.astype(np.float64)
    return float(np.sum(t**3 - t))


def _avg_ranks(values: np.ndarray) -> np.ndarray:
    """1-based average ranks (ties share the mean of their positions)."""
    order = np.argsort(values, kind="mergesort")
    sv = values[order]
    start = np.r_[True, sv[1:] != sv[:-1]]
    block = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    last = np.r_[first[1:], sv.size] - 1
    ranks = np.empty(sv.size)
    ranks[order] = (first[block] + last[block]) / 2.0 + 1.0
    return ranks


def kruskal_wallis(values_by_group: Mapping[str, Any] | Sequence[Any]) -> dict[str, float]:
    """Kruskal-Wallis H test with epsilon^2 (conventions in the module docstring).

    Args:
        values_by_group: one array per group (mapping or sequence); NaN dropped.

    Returns:
        ``{"H", "p", "df", "epsilon_squared", "n"}`` (df = groups with values - 1).
    """
    raw = values_by_group.values() if isinstance(values_by_group, Mapping) else values_by_group
    samples = [s for s in (_clean(v) for v in raw) if s.size]
    k, n = len(samples), sum(s.size for s in samples)
    out = {"H": np.nan, "p": np.nan, "df": float(k - 1), "epsilon_squared": np.nan, "n": float(n)}
    if k < 2:
        return out
    data = np.concatenate(samples)
    tie = 1.0 - _tie_term(data) / (float(n) ** 3 - n)
    if tie <= 0.0:
        return out
    ranks = _avg_ranks(data)
    bounds = list(itertools.accumulate((s.size for s in samples), initial=0))
    ssbn = sum(ranks[bounds[i] : bounds[i + 1]].sum() ** 2 / samples[i].size for i in range(k))
    h = (12.0 / (n * (n + 1)) * ssbn - 3 * (n + 1)) / tie
    from scipy import special

    h = float(h)
    out.update(H=h, p=float(special.chdtrc(k - 1, h)), epsilon_squared=h / ((n * n - 1) / (n + 1)))
    return out


def _mwu_method(n_a: int, n_b: int, ties: bool) -> str:
    return "asymptotic" if (n_a > EXACT_MAX_N and n_b > EXACT_MAX_N) or ties else "exact"


def mann_whitney(a: Any, b: Any) -> dict[str, Any]:
    """Two-sided Mann-Whitney U test via ``scipy.stats.mannwhitneyu`` (method="auto").

    Returns:
        ``{"U", "p", "n_a", "n_b", "method"}``; U is U_a; NaN when a sample is empty.
    """
    a, b = _clean(a), _clean(b)
    if a.size == 0 or b.size == 0:
        return {"U": np.nan, "p": np.nan, "n_a": a.size, "n_b": b.size, "method": ""}
    from scipy import stats

    res = stats.mannwhitneyu(a, b, alternative="two-sided", use_continuity=True, method="auto")
    ties = np.unique(np.concatenate([a, b])).size < a.size + b.size
    method = _mwu_method(a.size, b.size, ties)
    return {
        "U": float(res.statistic),
        "p": float(res.pvalue),
        "n_a": int(a.size),
        "n_b": int(b.size),
        "method": method,
    }


def cliffs_delta(a: Any, b: Any) -> float:
    """Cliff's delta of ``a`` vs ``b`` in O((n_a + n_b) log n_b): each a_i is placed among the
    sorted b by binary search (its rank there), which counts the b below and above it exactly.
    NaN dropped; NaN when a sample is empty."""
    a, b = _clean(a), _clean(b)
    if a.size == 0 or b.size == 0:
        return float("nan")
    sb = np.sort(b)
    below = np.searchsorted(sb, a, side="left").sum()
    above = (b.size - np.searchsorted(sb, a, side="right")).sum()
    return float(below - above) / (a.size * b.size)


def benjamini_hochberg(pvalues: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q), same shape as the input; NaN stay NaN, not in m.

    Raises:
        InputError: a p-value outside [0, 1] (inf included).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    flat = p.reshape(-1)
    ok = ~np.isnan(flat)
    vals = flat[ok]
    if np.any((vals < 0) | (vals > 1)):
        bad = vals[(vals < 0) | (vals > 1)][0]
        raise InputError(f"p-value {bad!r} is outside [0, 1]: pass probabilities (NaN allowed)")
    q = np.full(flat.shape, np.nan)
    m = vals.size
    if m:
        order = np.argsort(vals, kind="mergesort")
        s = vals[order] * (m / np.arange(1, m + 1, dtype=np.float64))
        s = np.minimum.accumulate(s[::-1])[::-1]
        adj = np.empty(m)
        adj[order] = np.clip(s, 0.0, 1.0)
        q[ok] = adj
    return q.reshape(p.shape)


def _exact_p(u1: float, n_a: int, n_b: int, cache: dict, a: np.ndarray, b: np.ndarray) -> float:
    key = (u1, n_a, n_b)
    if key not in cache:
        from scipy import stats

        cache[key] = float(stats.mannwhitneyu(a, b, method="exact").pvalue)
    return cache[key]


def _cell_ranks(valid: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Average ranks within each cell, and the tie term sum(t^3 - t) per cell."""
    ranks = valid.groupby("cid", sort=False)["value"].rank(method="average")
    t = valid.groupby(["cid", "value"], sort=False).size().astype(np.float64)
    return ranks, (t**3 - t).groupby(level="cid").sum()


def group_statistics(
    frame: pd.DataFrame,
    metric_cols: Sequence[str],
    by: Sequence[str] = (),
    *,
    group_col: str = "group",
    groups: Sequence[str] = GROUPS,
    fdr: bool = True,
) -> pd.DataFrame:
    """Kruskal-Wallis across groups and pairwise Mann-Whitney, per cell (combination x metric).

    Args:
        frame: one row per subject (and combination): ``by`` columns, ``group_col``, metrics.
        metric_cols: metric columns to test.
        by: columns naming a combination (e.g. ``["series", "m", "tau", "eps", "l_min"]``).
        groups: the groups, in order; pairs are (a, b) with a before b.
        fdr: add ``q``, Benjamini-Hochberg within each test over all rows returned. For a sweep
            computed in chunks, pass ``fdr=False`` and call :func:`adjust_fdr` on the whole.

    Returns:
        Tidy frame, one row per cell x test (x pair): ``*by, metric, test, group_a, group_b, n,
        n_<group>..., statistic (H or U_a), df, p, effect, effect_name (epsilon_squared or
        cliffs_delta), method, note[, q]``; ``n`` = values the test used, ``n_<group>`` = non-NaN
        values per group in the cell.
    """
    by, metric_cols, groups = list(by), list(metric_cols), list(groups)
    missing = [c for c in [*by, group_col, *metric_cols] if c not in frame.columns]
    if missing:
        raise InputError(f"group_statistics: columns {missing} not in the frame")
    if not metric_cols or len(groups) < 2:
        raise InputError("group_statistics: give at least one metric column and two groups")
    unknown = sorted(set(frame[group_col].dropna().astype(str)) - set(groups))
    if unknown:
        raise InputError(f"group_statistics: unknown groups {unknown}; expected {groups}")
    long = frame[[*by, group_col, *metric_cols]].melt(
        id_vars=[*by, group_col], value_vars=metric_cols, var_name="metric", value_name="value"
    )
    keys = [*by, "metric"]
    long["cid"] = long.groupby(keys, sort=True, dropna=False).ngroup()
    long["g"] = pd.Categorical(long[group_col].astype(str), categories=groups).codes
    cells = long.drop_duplicates("cid").sort_values("cid")[["cid", *keys]].reset_index(drop=True)
    n_cells, n_groups = len(cells), len(groups)
    valid = long.loc[long["value"].notna(), ["cid", "g", "value"]]
    counts = np.zeros((n_cells, n_groups))
    gc = valid.groupby(["cid", "g"]).size()
    counts[gc.index.get_level_values(0), gc.index.get_level_values(1)] = gc.to_numpy()
    count_cols = {f"n_{g}": counts[:, i].astype(np.int64) for i, g in enumerate(groups)}
    from scipy import special

    # Kruskal-Wallis over all groups of each cell
    ranks, tie_sum = _cell_ranks(valid)
    rsum = np.zeros((n_cells, n_groups))
    rs = ranks.groupby([valid["cid"], valid["g"]]).sum()
    rsum[rs.index.get_level_values(0), rs.index.get_level_values(1)] = rs.to_numpy()
    n = counts.sum(axis=1)
    k = (counts > 0).sum(axis=1)
    ties = np.zeros(n_cells)
    ties[tie_sum.index.to_numpy()] = tie_sum.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        ssbn = np.where(counts > 0, rsum**2 / np.where(counts > 0, counts, 1), 0.0).sum(axis=1)
        corr = 1.0 - ties / (n**3 - n)
        h = (12.0 / (n * (n + 1)) * ssbn - 3 * (n + 1)) / corr
        ok = (k >= 2) & (corr > 0)
        h = np.where(ok, h, np.nan)
        p = np.where(ok, special.chdtrc(np.maximum(k - 1, 1), h), np.nan)
        eps2 = h / ((n * n - 1) / (n + 1))
    note = np.where(
        k < 2, "fewer than 2 groups with values", np.where(ok, "", "all values identical")
    )
    parts = [
        pd.DataFrame(
            {
                "cid": cells["cid"],
                "test": "kruskal_wallis",
                "group_a": None,
                "group_b": None,
                "n": n.astype(np.int64),
                **count_cols,
                "statistic": h,
                "df": (k - 1).astype(float),
                "p": p,
                "effect": eps2,
                "effect_name": "epsilon_squared",
                "method": "chi2",
                "note": note,
            }
        )
    ]
    # Mann-Whitney + Cliff's delta for each pair
    cache: dict = {}
    for ia, ib in itertools.combinations(range(n_groups), 2):
        sub = valid[valid["g"].isin([ia, ib])]
        pr, ptie = _cell_ranks(sub)
        na, nb = counts[:, ia], counts[:, ib]
        ra = np.zeros(n_cells)
        s = pr[sub["g"] == ia].groupby(sub.loc[sub["g"] == ia, "cid"]).sum()
        ra[s.index.to_numpy()] = s.to_numpy()
        tt = np.zeros(n_cells)
        tt[ptie.index.to_numpy()] = ptie.to_numpy()
        nn = na + nb
        with np.errstate(divide="ignore", invalid="ignore"):
            u1 = ra - na * (na + 1) / 2
            big = np.maximum(u1, na * nb - u1)
            sd = np.sqrt(na * nb / 12 * ((nn + 1) - tt / (nn * (nn - 1))))
            z = (big - na * nb / 2 - 0.5) / sd
            pm = np.clip(2 * special.ndtr(-z), 0.0, 1.0)
            delta = (2 * u1 - na * nb) / (na * nb)
        empty = (na == 0) | (nb == 0)
        exact = ~empty & ~((na > EXACT_MAX_N) & (nb > EXACT_MAX_N)) & (tt == 0)
        if exact.any():
            for cid, cell in sub[sub["cid"].isin(np.flatnonzero(exact))].groupby("cid"):
                va = cell.loc[cell["g"] == ia, "value"].to_numpy()
                vb = cell.loc[cell["g"] == ib, "value"].to_numpy()
                pm[cid] = _exact_p(u1[cid], va.size, vb.size, cache, va, vb)
        u1, pm, delta = (np.where(empty, np.nan, v) for v in (u1, pm, delta))
        parts.append(
            pd.DataFrame(
                {
                    "cid": cells["cid"],
                    "test": "mann_whitney",
                    "group_a": groups[ia],
                    "group_b": groups[ib],
                    "n": nn.astype(np.int64),
                    **count_cols,
                    "statistic": u1,
                    "df": np.nan,
                    "p": pm,
                    "effect": delta,
                    "effect_name": "cliffs_delta",
                    "method": np.where(empty, "", np.where(exact, "exact", "asymptotic")),
                    "note": np.where(empty, "a group has no values", ""),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    out["_order"] = np.arange(len(out))
    out = out.merge(cells, on="cid").sort_values(["cid", "_order"], kind="stable")
    out = out[[*keys, *[c for c in parts[0].columns if c != "cid"]]].reset_index(drop=True)
    return adjust_fdr(out) if fdr else out


def adjust_fdr(stats: pd.DataFrame, *, p_col: str = "p", family_col: str = "test") -> pd.DataFrame:
    """Add ``q``: Benjamini-Hochberg over all rows of each family (each test), NaN-safe."""
    out = stats.copy()
    out["q"] = np.nan
    for _, idx in out.groupby(family_col, sort=False).groups.items():
        out.loc[idx, "q"] = benjamini_hochberg(out.loc[idx, p_col].to_numpy(dtype=np.float64))
    return out
