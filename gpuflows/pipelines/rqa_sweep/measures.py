"""RQA measures for every (l_min, eps) of a sweep at once, from its line histograms.

:func:`gpuflows.pipelines.rqa_sweep.rqa.metrics_from_histograms` reads one (eps, l_min) per
call; a sweep unit has 17 eps x 10 l_min of them, and per-call NumPy overhead would cost more than the histograms.
:func:`measures_table` computes them all from suffix sums over the length axis. Every value is
*identical* to the per-call reference: the sums are exact int64, the single rounding is the same
final division, and ENT sums the same nonzero terms in the same order.

Example:
    >>> import numpy as np
    >>> P_d = np.array([[0, 2, 1, 0]]); P_v = np.array([[0, 1, 0, 1]])
    >>> t = measures_table(P_d, P_v, 3, np.array([7]), [0.5], [1, 2], v_min=2)
    >>> t["l_min"].tolist(), t["DET"].tolist(), t["L_max"].tolist()
    ([1, 2], [1.0, 0.5], [2, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpuflows.pipelines.rqa_sweep.rqa import _check_int

COLUMNS = ("eps", "l_min", "N", "RR", "DET", "L_max", "L_mean", "DIV", "ENT", "LAM", "TT", "V_max")
"""Columns of :func:`measures_table`, one row per (l_min, eps), l_min-major."""


def _suffix(a: np.ndarray) -> np.ndarray:
    """s[:, l] = sum of a[:, l:] (int64, exact), with one extra zero column at the end."""
    s = np.zeros((a.shape[0], a.shape[1] + 1), dtype=np.int64)
    s[:, :-1] = np.cumsum(a[:, ::-1], axis=1)[:, ::-1]
    return s


def _last_nonzero(h: np.ndarray) -> np.ndarray:
    """Largest length l >= 1 with h[:, l] > 0 per row, 0 when none."""
    nz = h[:, 1:] > 0
    last = h.shape[1] - 1 - np.argmax(nz[:, ::-1], axis=1)
    return np.where(nz.any(axis=1), last, 0).astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1), np.nan)


def _entropy(P_d: np.ndarray, l_mins: np.ndarray, n_lines: np.ndarray) -> np.ndarray:
    """ENT per (eps, l_min): the reference's sum over the nonzero counts, in its order."""
    out = np.full((P_d.shape[0], l_mins.size), np.nan)
    for e in range(P_d.shape[0]):
        lengths = np.flatnonzero(P_d[e])
        counts = P_d[e, lengths]
        for j, lm in enumerate(l_mins):
            n = n_lines[e, j]
            if n:
                p = counts[np.searchsorted(lengths, lm) :] / n
                out[e, j] = 0.0 - (p * np.log(p)).sum()
    return out


def measures_table(
    P_d,
    P_v,
    N: int,
    n_recurrences,
    eps: Sequence[float],
    l_mins: Sequence[int],
    v_min: int = 2,
) -> dict[str, np.ndarray]:
    """All RQA measures for every (l_min, eps): columns :data:`COLUMNS`, l_min-major rows.

    Args:
        P_d, P_v: (E, N+1) int diagonal / vertical run-length histograms, one row per eps.
        N: number of embedded vectors.
        n_recurrences: (E,) sums of R (LOI included).
        eps: the E radii (labels of the rows).
        l_mins: minimum diagonal line lengths, each >= 1.
        v_min: minimum vertical line length, >= 1.

    Returns:
        dict column -> (len(l_mins) * E,) array; L_max, V_max, N, l_min int64, the rest float64.
        NaN / inf exactly where :func:`gpuflows.pipelines.rqa_sweep.rqa.metrics_from_histograms`
        gives them.
    """
    N = _check_int("N", N, 1)
    v_min = _check_int("v_min", v_min, 1)
    lm = np.array([_check_int("l_min", v, 1) for v in l_mins], dtype=np.int64)
    P_d = np.asarray(P_d, dtype=np.int64)
    P_v = np.asarray(P_v, dtype=np.int64)
    E = P_d.shape[0]
    if P_v.shape[0] != E or len(eps) != E or np.shape(n_recurrences) != (E,):
        raise ValueError(
            f"P_d, P_v, eps and n_recurrences need one row per eps: got {P_d.shape}, "
            f"{P_v.shape}, {len(eps)}, {np.shape(n_recurrences)}"
        )
    cols = np.minimum(lm, P_d.shape[1])  # an l_min past the longest possible line selects none
    Wd, Sd = _suffix(np.arange(P_d.shape[1]) * P_d), _suffix(P_d)
    Wv, Sv = _suffix(np.arange(P_v.shape[1]) * P_v), _suffix(P_v)
    d_all, d_sel, n_lines = Wd[:, 1], Wd[:, cols], Sd[:, cols]  # (E,), (E, L), (E, L)
    vm = min(v_min, P_v.shape[1])
    L_max, V_max = _last_nonzero(P_d), _last_nonzero(P_v)
    with np.errstate(divide="ignore"):
        div = np.where(L_max > 0, 1.0 / np.maximum(L_max, 1), np.inf)
    per_eps = {
        "RR": np.asarray(n_recurrences, dtype=np.int64) / (N * N),
        "L_max": L_max,
        "DIV": div,
        "LAM": _ratio(Wv[:, vm], Wv[:, 1]),
        "TT": _ratio(Wv[:, vm], Sv[:, vm]),
        "V_max": V_max,
    }
    per_pair = {
        "DET": _ratio(d_sel, d_all[:, None]),
        "L_mean": _ratio(d_sel, n_lines),
        "ENT": _entropy(P_d, lm, n_lines),
    }
    L = lm.size
    out = {
        "eps": np.tile(np.asarray(eps, dtype=np.float64), L),
        "l_min": np.repeat(lm, E),
        "N": np.full(L * E, N, dtype=np.int64),
    }
    for k, v in per_eps.items():
        out[k] = np.tile(v, L)
    for k, v in per_pair.items():
        out[k] = v.T.reshape(-1)  # (E, L) -> l_min-major rows
    return {c: out[c] for c in COLUMNS}
