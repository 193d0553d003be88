"""The measures tables of many sweep units at once, identical to one ``measures_table`` each.

:func:`gpuflows.pipelines.rqa_sweep.measures.measures_table` reads one unit's (E, N+1)
histograms with a few dozen NumPy calls, and its ENT loops over every (eps, l_min) pair; a
grid has tens of units, and those calls would cost more than the histograms. Here:

* the integer sums (every suffix sum measures_table takes, L_max, V_max) come from one
  compiled pass per unit (exact int64, so in any order);
* ENT for every (unit, eps, l_min) takes one division, one ``np.log`` and one product over all
  the terms of the batch, then one ``np.add.reduceat``. Each segment starts with the term
  ``1 * log(1) = 0.0``: ``reduceat`` adds a segment's first element to the pairwise sum of the
  rest, so a zero first element gives exactly ``np.sum`` of the rest (its pairwise sum from
  0.0), the reference's ``(p * np.log(p)).sum()``;
* the ratios are the same float64 divisions of the same integers, vectorised over units.

Every value is therefore the one ``measures_table`` (and ``rqa.metrics_from_histograms``)
gives, NaN and inf included; the tests compare them value for value.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gpuflows.pipelines.rqa_sweep.engine_numba import HAVE_NUMBA
from gpuflows.pipelines.rqa_sweep.measures import COLUMNS
from gpuflows.pipelines.rqa_sweep.rqa import _check_int

if HAVE_NUMBA:
    from numba import njit

    @njit(cache=True, nogil=True)
    def _sums(P_d, P_v, lm, vm):
        """Integer parts of one unit: (d_all, d_sel, n_lines, L_max, V_max, v_all, v_sel,
        v_lines, ent_counts, ent_den, ent_len); the ENT terms of segment (e, j) are a leading
        (1, 1) then the nonzero counts of lengths >= lm[j] over n_lines[e, j], ascending."""
        E, W = P_d.shape
        L = lm.size
        d_all = np.zeros(E, np.int64)
        d_sel = np.zeros((E, L), np.int64)
        n_lines = np.zeros((E, L), np.int64)
        L_max = np.zeros(E, np.int64)
        V_max = np.zeros(E, np.int64)
        v_all = np.zeros(E, np.int64)
        v_sel = np.zeros(E, np.int64)
        v_lines = np.zeros(E, np.int64)
        nz_len = np.empty((E, W), np.int64)  # nonzero lengths of P_d[e], ascending
        n_nz = np.zeros(E, np.int64)
        first = np.zeros((E, L), np.int64)  # index in nz_len[e] of the first length >= lm[j]
        for e in range(E):
            k = 0
            for ln in range(1, W):
                c = P_d[e, ln]
                if c:
                    d_all[e] += ln * c
                    nz_len[e, k] = ln
                    k += 1
                c = P_v[e, ln]
                if c:
                    v_all[e] += ln * c
                    V_max[e] = ln
                    if ln >= vm:
                        v_sel[e] += ln * c
                        v_lines[e] += c
            n_nz[e] = k
            if k:
                L_max[e] = nz_len[e, k - 1]
            for j in range(L):
                a = k
                while a > 0 and nz_len[e, a - 1] >= lm[j]:
                    a -= 1
                first[e, j] = a
                for b in range(a, k):
                    ln = nz_len[e, b]
                    d_sel[e, j] += ln * P_d[e, ln]
                    n_lines[e, j] += P_d[e, ln]
        size = E * L + (n_nz[:, None] - first).sum()
        counts = np.ones(size, np.int64)
        den = np.ones(size, np.int64)
        seg = np.empty(E * L, np.int64)
        p = 0
        for e in range(E):
            for j in range(L):
                seg[e * L + j] = p
                p += 1  # the leading (1, 1) term
                for b in range(first[e, j], n_nz[e]):
                    counts[p] = P_d[e, nz_len[e, b]]
                    den[p] = n_lines[e, j]
                    p += 1
        return d_all, d_sel, n_lines, L_max, V_max, v_all, v_sel, v_lines, counts, den, seg


_THREADS = max(1, min(4, os.cpu_count() or 1))
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """One shared pool (the compiled sums release the GIL, so do NumPy's ufuncs)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(_THREADS, thread_name_prefix="rqa-measures"))
    return _POOL[0]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1), np.nan)


def measures_tables(hists, l_mins, v_min: int = 2) -> list[dict[str, np.ndarray]]:
    """``h.table(l_mins, v_min)`` of every :class:`SweepHistograms` ``h`` in ``hists``, in
    order, value for value (:func:`gpuflows.pipelines.rqa_sweep.measures.measures_table`);
    without numba, one ``measures_table`` per unit."""
    hists = list(hists)
    v_min = _check_int("v_min", v_min, 1)
    lm = np.array([_check_int("l_min", v, 1) for v in l_mins], dtype=np.int64)
    if not HAVE_NUMBA or not hists:
        return [h.table(l_mins, v_min) for h in hists]
    L = lm.size

    def sums(h):
        P_d = np.ascontiguousarray(h.P_d, dtype=np.int64)
        P_v = np.ascontiguousarray(h.P_v, dtype=np.int64)
        return _sums(P_d, P_v, lm, min(v_min, P_v.shape[1]))

    pool = _pool()
    res = list(pool.map(sums, hists, chunksize=max(1, len(hists) // _THREADS)))
    parts = [r[:8] for r in res]
    sizes = np.array([r[8].size for r in res], dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    c = np.concatenate([r[8] for r in res])
    d = np.concatenate([r[9] for r in res])
    seg = np.concatenate([r[10] + o for r, o in zip(res, offs, strict=True)])
    # the ENT terms in _THREADS slices cut at segment starts (NumPy releases the GIL)
    cuts = [0, *(int(seg[len(seg) * t // _THREADS]) for t in range(1, _THREADS)), c.size]

    def ent_part(t):
        a, b = cuts[t], cuts[t + 1]
        if a == b:
            return np.zeros(0)
        p = c[a:b] / d[a:b]
        return np.add.reduceat(p * np.log(p), seg[(seg >= a) & (seg < b)] - a)

    ent_sum = np.concatenate(list(pool.map(ent_part, range(_THREADS))))
    out, s0 = [], 0
    for h, (d_all, d_sel, n_lines, L_max, V_max, v_all, v_sel, v_lines) in zip(
        hists, parts, strict=True
    ):
        E, N = h.eps.size, h.N
        ent = np.where(n_lines != 0, 0.0 - ent_sum[s0 : s0 + E * L].reshape(E, L), np.nan)
        s0 += E * L
        with np.errstate(divide="ignore"):
            div = np.where(L_max > 0, 1.0 / np.maximum(L_max, 1), np.inf)
        per_eps = {
            "RR": np.asarray(h.n_recurrences, dtype=np.int64) / (N * N),
            "L_max": L_max,
            "DIV": div,
            "LAM": _ratio(v_sel, v_all),
            "TT": _ratio(v_sel, v_lines),
            "V_max": V_max,
        }
        per_pair = {
            "DET": _ratio(d_sel, d_all[:, None]),
            "L_mean": _ratio(d_sel, n_lines),
            "ENT": ent,
        }
        cols = {
            "eps": np.tile(np.asarray(h.eps, dtype=np.float64), L),
            "l_min": np.repeat(lm, E),
            "N": np.full(L * E, N, dtype=np.int64),
        }
        for k, v in per_eps.items():
            cols[k] = np.tile(v, L)
        for k, v in per_pair.items():
            cols[k] = v.T.reshape(-1)  # (E, L) -> l_min-major rows
        out.append({k: cols[k] for k in COLUMNS})
    return out
