"""Numba kernels of the batched, multi-m sweep: many (series, tau) items, every m, one pass each.

Called through :func:`gpuflows.pipelines.rqa_sweep.engine.sweep_units`; the float64 dtype
contract is :mod:`gpuflows.pipelines.rqa_sweep.engine`'s. What differs from
:mod:`gpuflows.pipelines.rqa_sweep.engine_numba` (the per-(m, tau) kernels, kept as the oracle):

* **Every m of one (series, tau) from one pass.** Along diagonal k the per-coordinate terms
  ``s_c[t] = term(x_c[t] - x_c[t+k])`` are computed once; the accumulated distance of embedding
  m+1 is that of m plus ``s[i + m*tau]``, added last, exactly as the reference's left fold
  (component-major, then lag) does for one component. With d > 1 components (euclidean,
  manhattan) the first component's fold is incremental and the others are folded per m in
  the reference's order; supremum (max, exact in any order) is incremental throughout.
* **Vertical runs in the same pass, no N x N matrix.** R is symmetric, so the vertical lines of
  column c are the runs along full row c = (upper column c, read upwards) + R_cc + (upper row
  c). Walking the diagonals k = 1, 2, ... visits both halves outwards from the diagonal, one
  entry per diagonal: each row and each column keeps its open-run starts (one per eps) and its
  last threshold index, updated only where the index changes. Per diagonal, the steps where
  an index changes (along the diagonal, the row, the column) are first listed without a
  branch, then scanned: the jumps the CPU cannot predict are paid once per change, not three
  times per step. The run through R_cc (always
  recurrent) is the left half's first run joined to the right half's, added at the end.
* **One parallel region for the whole batch.** Items are assigned to threads beforehand
  (longest first, to the least loaded thread); each thread runs its items one after another,
  so there is no per-call thread start, no per-thread histogram merge and no idle core while
  a short item finishes.

Outputs go to flat per-unit buffers (offsets from Python), so each unit's histograms are
contiguous views.
"""

from __future__ import annotations

import numpy as np

from gpuflows.pipelines.rqa_sweep.engine_numba import HAVE_NUMBA
from gpuflows.pipelines.rqa_sweep.kernels import loi_and_symmetry

if HAVE_NUMBA:
    from numba import njit, prange

    from gpuflows.pipelines.rqa_sweep.engine_numba import _nb_combine, _q_row, _terms

    @njit(cache=True, inline="always")
    def _half(start, qprev, q, pos, hist, first):
        """One step of a vertical half-row scan at ``pos`` (offset from the diagonal): runs of
        e in [q, qprev) start, of [qprev, q) end. A run that started at the diagonal (start 0)
        is the central one: its length goes to ``first``, not the histogram. Branch-free in
        the direction (a start adds 0 to the histogram): the direction is data, not a jump."""
        lo, hi = min(q, qprev), max(q, qprev)
        end = q > qprev
        for e in range(lo, hi):
            s = start[e]
            central = s == 0
            hist[e, pos - s] += end and not central
            if end and central:
                first[e] = pos
            start[e] = s if end else pos

    @njit(cache=True, inline="always")
    def _diag(q, qprev, i, start, hist, total, count):
        """One step of the all-eps diagonal run scan (``engine_numba._scan``), branch-free in
        the direction; a start's length index is clamped (its stale start may lie ahead)."""
        lo, hi = min(q, qprev), max(q, qprev)
        end = q > qprev
        for e in range(lo, hi):
            s = start[e]
            ln = max(i - s, 0)
            total[e] += ln if end else 0
            hist[e, ln] += end and count
            start[e] = s if end else i
        return q

    @njit(cache=True)
    def _item(xs, tau, ms, Ns, offs, thr, theiler, metric, pd_flat, pv_flat, tot_):
        """Every m of one (series xs (d, n), tau): upper-triangle diagonal histograms
        (k >= theiler), recurrence totals and full vertical histograms of m = ms[a] (ascending,
        N_a = Ns[a]) into the zeroed (E, N_a + 1) blocks at offs[a] of pd_flat / pv_flat and
        into tot_[a]."""
        d, n = xs.shape
        M, E = ms.size, thr.size
        N0 = Ns[0]
        s = np.empty((d, n))
        acc = np.empty(N0)
        p0 = np.empty(N0)
        q = np.empty(N0, dtype=np.uint8)
        rowq = np.zeros((M, N0), dtype=np.uint8)  # R_cc is recurrent for every eps: q = 0
        colq = np.zeros((M, N0), dtype=np.uint8)
        rst = np.zeros((M, N0, E), dtype=np.int32)
        cst = np.zeros((M, N0, E), dtype=np.int32)
        fr = np.ones((M, N0, E), dtype=np.int32)  # central run lengths (R_cc alone: 1)
        fl = np.ones((M, N0, E), dtype=np.int32)
        dstart = np.zeros(E, dtype=np.int64)
        ev_d = np.empty(N0 + 1, dtype=np.int64)
        ev_r = np.empty(N0 + 1, dtype=np.int64)
        ev_c = np.empty(N0 + 1, dtype=np.int64)
        incremental = d == 1 or metric == 2
        for k in range(1, N0):
            span = n - k
            for c in range(d):
                _terms(xs[c, :span], xs[c, k:], s[c], span, metric)
            lag = 0  # lags of the incremental fold held in p0 (all components if incremental)
            for a in range(M):
                m, L = ms[a], Ns[a] - k
                if L <= 0:
                    break
                if lag == 0:
                    p0[:L] = s[0, :L]
                    if incremental:
                        for c in range(1, d):
                            _nb_combine(p0, s[c], L, metric)
                    lag = 1
                while lag < m:
                    if incremental:
                        for c in range(d):
                            _nb_combine(p0, s[c, lag * tau :], L, metric)
                    else:
                        _nb_combine(p0, s[0, lag * tau :], L, metric)
                    lag += 1
                if incremental:
                    dist = p0
                else:
                    acc[:L] = p0[:L]
                    for c in range(1, d):
                        for j in range(m):
                            _nb_combine(acc, s[c, j * tau :], L, metric)
                    dist = acc
                _q_row(dist, thr, L, q)
                o, w = offs[a], Ns[a] + 1
                h = pd_flat[o : o + E * w].reshape((E, w))
                hv = pv_flat[o : o + E * w].reshape((E, w))
                tot = tot_[a]
                rq, cq = rowq[a], colq[a]
                rs, cs, fra, fla = rst[a], cst[a], fr[a], fl[a]
                count = k >= theiler
                # 1) where the index changes, as lists (branch-free: a slot is always written,
                # the count advances only on a change); 2) the run scans at those steps only
                nd = nr = nc = 0
                qp = E
                for i in range(L):
                    qi = q[i]
                    ev_d[nd] = i
                    nd += qi != qp
                    qp = qi
                    ev_r[nr] = i
                    nr += qi != rq[i]
                    ev_c[nc] = i
                    nc += qi != cq[i + k]
                qd = E
                for j in range(nd):
                    i = ev_d[j]
                    qd = _diag(q[i], qd, i, dstart, h, tot, count)
                for j in range(nr):  # row i, right half, offset k
                    i = ev_r[j]
                    _half(rs[i], rq[i], q[i], k, hv, fra[i])
                for j in range(nc):  # column i + k, left half, offset k
                    i = ev_c[j]
                    c = i + k
                    _half(cs[c], cq[c], q[i], k, hv, fla[c])
                _diag(E, qd, L, dstart, h, tot, count)
                rq[:L] = q[:L]
                cq[k : k + L] = q[:L]
                r = L - 1  # the last diagonal through row L-1 and column k: close both halves
                _half(rs[r], rq[r], E, k + 1, hv, fra[r])
                _half(cs[k], cq[k], E, k + 1, hv, fla[k])
        for a in range(M):
            o, w = offs[a], Ns[a] + 1
            hv = pv_flat[o : o + E * w].reshape((E, w))
            fra, fla = fr[a], fl[a]
            for r in range(Ns[a]):
                for e in range(E):
                    hv[e, fra[r, e] + fla[r, e] - 1] += 1

    @njit(parallel=True, cache=True)
    def _batch(xs_flat, d, x_off, x_len, items, units, thr, theiler, metric, order, bounds, out):
        """Thread t runs the items ``order[bounds[t]:bounds[t+1]]``, every thread at once.

        items[i] = (tau, first unit, number of units); units[u] = (m, N, output offset);
        out = (P_d flat, P_v flat, totals (U, E)), zeroed."""
        pd_flat, pv_flat, tot = out
        for t in prange(bounds.size - 1):
            for j in range(bounds[t], bounds[t + 1]):
                it = order[j]
                n = x_len[it]
                xs = xs_flat[x_off[it] : x_off[it] + d * n].reshape((d, n))
                tau, u0, nu = items[it, 0], items[it, 1], items[it, 2]
                u = units[u0 : u0 + nu]
                _item(
                    xs,
                    tau,
                    u[:, 0],
                    u[:, 1],
                    u[:, 2],
                    thr,
                    theiler,
                    metric,
                    pd_flat,
                    pv_flat,
                    tot[u0 : u0 + nu],
                )


def plan_threads(costs: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Longest-processing-time assignment of items to threads: (order, bounds), thread t runs
    ``order[bounds[t]:bounds[t+1]]``."""
    loads = np.zeros(threads)
    lists: list[list[int]] = [[] for _ in range(threads)]
    for it in np.argsort(-np.asarray(costs, dtype=np.float64), kind="stable"):
        t = int(np.argmin(loads))
        lists[t].append(int(it))
        loads[t] += costs[it]
    order = np.array([i for lst in lists for i in lst], dtype=np.int64)
    bounds = np.cumsum([0] + [len(lst) for lst in lists]).astype(np.int64)
    return order, bounds


def sweep_numba_units(items, thr, metric: str, theiler: int):
    """Backend entry: ``items`` = [(xs (d, n) float64, tau, ms ascending unique)], thresholds
    ``thr`` (:func:`gpuflows.pipelines.rqa_sweep.kernels.decision_thresholds`). Returns, per
    item, one (P_d, P_v, n_recurrences) per m (both triangles, as ``sweep_numba``)."""
    import numba

    from gpuflows.pipelines.rqa_sweep.engine_numba import METRIC_CODE

    E = thr.size
    out: list[list | None] = [None] * len(items)
    by_d: dict[int, list[int]] = {}
    for i, (xs, _, _) in enumerate(items):
        by_d.setdefault(xs.shape[0], []).append(i)
    for d, idx in by_d.items():
        x_len = np.array([items[i][0].shape[1] for i in idx], dtype=np.int64)
        x_off = np.concatenate([[0], np.cumsum(d * x_len)[:-1]]).astype(np.int64)
        xs_flat = np.concatenate([items[i][0].ravel() for i in idx])
        rows, unit_rows, off = [], [], 0
        for j, i in enumerate(idx):
            _, tau, ms = items[i]
            rows.append((tau, len(unit_rows), len(ms)))
            for m in ms:
                N = int(x_len[j]) - (m - 1) * tau
                unit_rows.append((m, N, off))
                off += E * (N + 1)
        it_arr = np.array(rows, dtype=np.int64)
        un_arr = np.array(unit_rows, dtype=np.int64)
        costs = [sum(int(N) ** 2 for N in un_arr[u0 : u0 + nu, 1]) for _, u0, nu in rows]
        order, bounds = plan_threads(np.array(costs), numba.get_num_threads())
        res = (
            np.zeros(off, np.int64),
            np.zeros(off, np.int64),
            np.zeros((len(un_arr), E), np.int64),
        )
        _batch(
            xs_flat,
            d,
            x_off,
            x_len,
            it_arr,
            un_arr,
            thr,
            theiler,
            METRIC_CODE[metric],
            order,
            bounds,
            res,
        )
        pd_flat, pv_flat, tot = res
        for j, i in enumerate(idx):
            _, u0, nu = rows[j]
            per_m = []
            for u in range(u0, u0 + nu):
                _, N, o = (int(v) for v in un_arr[u])
                shape = (E, N + 1)
                diag = pd_flat[o : o + E * (N + 1)].reshape(shape)
                vert = pv_flat[o : o + E * (N + 1)].reshape(shape)
                per_m.append(loi_and_symmetry(diag, tot[u], vert, N, theiler))
            out[i] = per_m
    return out
