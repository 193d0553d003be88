"""Sweep-aware RQA engine: line histograms for every eps from one pass over the distances.

The NumPy reference (:mod:`gpuflows.pipelines.rqa_sweep.rqa`) builds one recurrence matrix per eps. In a parameter
sweep the distances depend only on (series, m, tau, metric), so this engine computes each
distance once, maps it to its *threshold index* q = #{eps_e <= dist} (eps sorted ascending;
R_ij = 1 at eps_e iff dist < eps_e iff e >= q) and updates the run counters of all eps at once.
Every l_min and v_min is then read from the histograms by :func:`gpuflows.pipelines.rqa_sweep.rqa.metrics_from_histograms`.

Definitions are exactly the reference's (see its module docstring): strict ``dist < eps``, P_d
over diagonals |k| >= theiler in both triangles, P_v over whole columns, n_recurrences with the
line of identity (LOI).

Dtype contract (why ties at eps resolve exactly as in the reference):
    The series is z-scored by :func:`gpuflows.pipelines.rqa_sweep.rqa.zscore` (float64). Every distance is float64,
    built from the same IEEE operations in the same order as :func:`gpuflows.pipelines.rqa_sweep.rqa.distance_matrix`:
    per coordinate (component-major, then lag) ``u = x[a] - x[b]``; euclidean accumulates
    ``acc = acc + u*u`` from 0 (the reference then takes ``sqrt``); manhattan accumulates
    ``acc + |u|``; supremum takes ``max(acc, |u|)``. No fused multiply-add, no reassociation,
    no ``|a|^2 + |b|^2 - 2ab``. The euclidean ``sqrt(acc) < eps`` is decided as ``acc < T``
    with exact float64 thresholds (:func:`decision_thresholds`), equivalent for a correctly
    rounded sqrt and independent of the device's own sqrt. The histograms are therefore
    integer-identical to the reference on every backend. The one exception is the
    torch backend's opt-in ``dtype="float32"`` (series, distances and eps in float32), which
    also counts ``flipped_pairs``: the R entries whose float32 decision differs from float64.

Backends:
    ``numba``: parallel JIT kernels (``prange`` over threads; blocks of 32 diagonals / rows
    strided over them; per-thread (E, N+1) histograms summed at the end). Along diagonal k the
    coordinate differences of an embedding are shifted copies of ``u_c[t] = x_c[t] - x_c[t+k]``,
    so each difference is computed once per diagonal and each pair costs m*d additions; q comes
    from one vectorised compare-and-add pass per threshold; one scan per diagonal then updates
    all eps at O(|q_i - q_(i-1)|) per step. Vertical runs of column j equal the runs along row
    j (R is symmetric); they are read from a uint8 N x N matrix of threshold indices filled by
    the diagonal pass when N^2 bytes <= ``QMATRIX_MAX_BYTES``, else the distances of each row
    are recomputed. No N x N float matrix is ever held.
    ``numpy``: vectorised tiles of diagonals and rows (float tiles bounded by ``TILE_BYTES``).
    ``torch``: :mod:`gpuflows.pipelines.rqa_sweep.engine_torch` (CUDA or CPU, tiled, ``estimate_bytes`` for VRAM).
    ``auto``: torch on CUDA when available, else numba, else numpy.

Minimum input: n >= (m-1)*tau + 2 samples (two vectors); 1 <= len(eps) <= 254, every eps > 0.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from gpuflows.pipelines.rqa_sweep import rqa

QMATRIX_MAX_BYTES = 512 * 2**20
"""The numba backend stores a uint8 N x N threshold-index matrix only up to this size
(N <= 23,170); above it, the vertical pass recomputes distances row by row."""
TILE_BYTES = 64 * 2**20
"""Memory budget of one float tile in the numpy backend."""
MAX_EPS = 254
"""Threshold indices are stored as uint8 (0..E), so at most 254 eps values per sweep."""
BACKENDS = ("auto", "numba", "numpy", "torch")
_METRIC_CODE = {"euclidean": 0, "manhattan": 1, "supremum": 2}


@dataclass
class SweepHistograms:
    """Line histograms of one (series, m, tau, metric, theiler) for every eps of a sweep.

    Attributes:
        N: number of embedded vectors.
        eps: (E,) float64, sorted ascending, unique.
        n_recurrences: (E,) int64, sum of R per eps (LOI included).
        P_d: (E, N+1) int64 diagonal run-length histograms (index = length; both triangles,
            |k| >= theiler).
        P_v: (E, N+1) int64 vertical run-length histograms over whole columns.
        flipped_pairs: float32 runs only: number of R entries (i != j, both triangles, summed
            over eps) whose float32 decision differs from float64; None for float64 runs.
        flipped_per_eps: (E,) int64 of the same count per eps, or None.
        backend: backend that ran ("numba", "numpy", "torch-cuda", "torch-cpu").
        dtype: "float64" or "float32" (distance and comparison dtype).
    """

    N: int
    eps: np.ndarray
    n_recurrences: np.ndarray
    P_d: np.ndarray
    P_v: np.ndarray
    flipped_pairs: int | None
    backend: str
    dtype: str
    flipped_per_eps: np.ndarray | None = None

    def metrics(self, l_min: int, v_min: int = 2) -> list[dict]:
        """RQA measures per eps (``rqa.metrics_from_histograms``), each dict with N and eps."""
        out = []
        for e, eps in enumerate(self.eps):
            row = {"eps": float(eps), "N": self.N}
            row.update(
                rqa.metrics_from_histograms(
                    self.P_d[e], self.P_v[e], self.N, int(self.n_recurrences[e]), l_min, v_min
                )
            )
            out.append(row)
        return out

    def table(self, l_mins, v_min: int = 2) -> dict[str, np.ndarray]:
        """Every measure for every (l_min, eps) as columns (``rqa_measures.measures_table``):
        the values of :meth:`metrics`, identical, without a Python call per combination."""
        from gpuflows.pipelines.rqa_sweep.measures import measures_table

        return measures_table(
            self.P_d, self.P_v, self.N, self.n_recurrences, self.eps, l_mins, v_min
        )


def prepare(series, m: int, tau: int, eps, metric: str, theiler: int, normalize: bool):
    """Validate and preprocess: returns (xs (d, n) float64 C-contiguous, N, eps sorted unique)."""
    x = rqa.zscore(series) if normalize else np.asarray(series, dtype=rqa.DIST_DTYPE)
    n_vec = rqa.embed(x, m, tau).shape[0]  # validates series, m, tau and the minimum length
    if metric not in rqa.METRICS:
        raise ValueError(f"metric must be one of {rqa.METRICS}, got {metric!r}")
    if isinstance(theiler, bool) or not isinstance(theiler, int | np.integer) or theiler < 0:
        raise ValueError(f"theiler must be an integer >= 0, got {theiler!r}")
    e = np.unique(np.asarray(eps, dtype=rqa.DIST_DTYPE).ravel())
    if e.size == 0 or not np.all(e > 0) or not np.all(np.isfinite(e)):
        raise ValueError(f"eps must be 1 or more finite values > 0, got {eps!r}")
    if e.size > MAX_EPS:
        raise ValueError(f"at most {MAX_EPS} eps values per sweep, got {e.size}")
    xs = np.ascontiguousarray(x.reshape(x.shape[0], -1).T, dtype=rqa.DIST_DTYPE)
    return xs, n_vec, e


def decision_thresholds(eps: np.ndarray, metric: str, dtype=np.float64) -> np.ndarray:
    """Thresholds T on the accumulated value that decide ``dist < eps`` exactly, in ``dtype``.

    Manhattan and supremum: T = eps. Euclidean: T_e = the smallest a with sqrt_rn(a) >= eps_e,
    so ``sqrt(acc) < eps_e`` iff ``acc < T_e`` for every acc (a correctly rounded sqrt is
    monotone). No backend then takes a square root, and none depends on its device's sqrt
    (torch's vectorised CPU sqrt is not correctly rounded: about 0.7% of float64 results
    differ from IEEE sqrt by one ulp).

    Example:
        >>> t = decision_thresholds(np.array([0.1]), "euclidean")[0]
        >>> bool(np.sqrt(t) >= 0.1), bool(np.sqrt(np.nextafter(t, 0)) < 0.1)
        (True, True)
    """
    e = np.asarray(eps, dtype=dtype)
    if metric != "euclidean":
        return e.copy()
    t = e * e
    for i in range(t.size):
        while np.sqrt(t[i]) < e[i]:  # move up to the first a with sqrt(a) >= eps
            t[i] = np.nextafter(t[i], dtype(np.inf))
        while t[i] > 0 and np.sqrt(np.nextafter(t[i], dtype(0))) >= e[i]:
            t[i] = np.nextafter(t[i], dtype(0))
    return t


def _loi_and_symmetry(diag_upper, n_upper, rows, N, theiler):
    """Both triangles from the upper one; the LOI adds one run of length N when theiler == 0."""
    P_d = 2 * diag_upper
    if theiler == 0:
        P_d[:, N] += 1
    return P_d, rows, 2 * n_upper + N


# -- numba backend ------------------------------------------------------------------------------

HAVE_NUMBA = importlib.util.find_spec("numba") is not None

if HAVE_NUMBA:
    from numba import njit, prange

    @njit(cache=True, inline="always")
    def _scan(q, qprev, i, start, hist, total, count):
        """One step of the all-eps run scan: runs of e in [qprev, q) end, of [q, qprev) start."""
        if q < qprev:
            for e in range(q, qprev):
                start[e] = i
        else:
            for e in range(qprev, q):
                ln = i - start[e]
                total[e] += ln
                if count:
                    hist[e, ln] += 1
        return q

    @njit(cache=True, inline="always")
    def _nb_combine(acc, b, L, metric):
        """acc[:L] = acc + b (sum metrics) or max(acc, b) (supremum), elementwise, in order."""
        if metric == 2:
            for i in range(L):
                acc[i] = max(acc[i], b[i])
        else:
            for i in range(L):
                acc[i] = acc[i] + b[i]

    @njit(cache=True, inline="always")
    def _terms(xa, xb, out, L, metric):
        """out[:L] = (xa - xb)^2 (euclidean) or |xa - xb|, the reference's per-coordinate term."""
        if metric == 0:
            for t in range(L):
                u = xa[t] - xb[t]
                out[t] = u * u
        else:
            for t in range(L):
                out[t] = abs(xa[t] - xb[t])

    @njit(cache=True, inline="always")
    def _q_row(acc, thr, L, out):
        """out[i] = #{thr <= acc[i]} (uint8 threshold index) for i < L: one vectorisable
        compare-and-add pass per threshold (2.5x faster than a binary search per element)."""
        out[:L] = 0
        for e in range(thr.size):
            t = thr[e]
            for i in range(L):
                out[i] += acc[i] >= t

    @njit(parallel=True, cache=True)
    def _diagonal_pass(xs, m, tau, N, thr, theiler, metric, chunks, qmat, store):
        """Upper diagonals k >= 1 in blocks of K (blocks strided over chunks): run histograms
        (k >= theiler) and recurrence totals for every eps; if store, qmat[i, i+k] = q."""
        d, n = xs.shape
        E, K = thr.size, 32
        hist = np.zeros((chunks, E, N + 1), dtype=np.int64)
        total = np.zeros((chunks, E), dtype=np.int64)
        n_blocks = (N - 1 + K - 1) // K
        for c in prange(chunks):
            s = np.empty((d, n))
            acc = np.empty(N)
            qblk = np.empty((K, N), dtype=np.uint8)
            start = np.zeros(E, dtype=np.int64)
            h, tot = hist[c], total[c]
            for blk in range(c, n_blocks, chunks):
                k0 = 1 + blk * K
                k1 = min(N, k0 + K)
                for k in range(k0, k1):
                    L, span = N - k, n - k
                    for comp in range(d):  # u_c[t] = x_c[t] - x_c[t+k], once per diagonal
                        _terms(xs[comp, :span], xs[comp, k:], s[comp], span, metric)
                    acc[:L] = s[0, :L]
                    for comp in range(d):
                        for j in range(1 if comp == 0 else 0, m):
                            _nb_combine(acc, s[comp, j * tau :], L, metric)
                    q = qblk[k - k0]
                    _q_row(acc, thr, L, q)
                    count = k >= theiler
                    qprev = E
                    for i in range(L):
                        qprev = _scan(q[i], qprev, i, start, h, tot, count)
                    _scan(E, qprev, L, start, h, tot, count)
                if store:  # both triangles, K consecutive bytes of a row at a time
                    for i in range(N - k0):  # upper: qmat[i, i+k0 : i+k1]
                        row = qmat[i]
                        for k in range(k0, min(k1, N - i)):
                            row[i + k] = qblk[k - k0, i]
                    for r in range(k0, N):  # lower: qmat[r, r-k1+1 : r-k0+1]
                        row = qmat[r]
                        for k in range(k0, min(k1, r + 1)):
                            row[r - k] = qblk[k - k0, r - k]
        return hist.sum(axis=0), total.sum(axis=0)

    @njit(parallel=True, cache=True)
    def _vertical_from_q(qmat, E, chunks):
        """Runs along every row of R (= its columns, R symmetric) from the full qmat."""
        N = qmat.shape[0]
        hist = np.zeros((chunks, E, N + 1), dtype=np.int64)
        total = np.zeros((chunks, E), dtype=np.int64)
        for c in prange(chunks):
            start = np.zeros(E, dtype=np.int64)
            h, tot = hist[c], total[c]
            for r in range(c, N, chunks):
                q = qmat[r]
                qprev = E
                for a in range(N):
                    qprev = _scan(q[a], qprev, a, start, h, tot, True)
                _scan(E, qprev, N, start, h, tot, True)
        return hist.sum(axis=0)

    @njit(parallel=True, cache=True)
    def _vertical_recompute(xs, m, tau, N, thr, metric, chunks):
        """Runs along every row of R with its distances recomputed (no qmat)."""
        E = thr.size
        hist = np.zeros((chunks, E, N + 1), dtype=np.int64)
        total = np.zeros((chunks, E), dtype=np.int64)
        for c in prange(chunks):
            acc = np.empty(N)
            term = np.empty(N)
            xi = np.empty(N)
            q = np.empty(N, dtype=np.uint8)
            start = np.zeros(E, dtype=np.int64)
            h, tot = hist[c], total[c]
            for i in range(c, N, chunks):
                for comp in range(xs.shape[0]):
                    for j in range(m):
                        off = j * tau
                        xi[:] = xs[comp, i + off]
                        if comp == 0 and j == 0:
                            _terms(xi, xs[comp, off:], acc, N, metric)
                        else:
                            _terms(xi, xs[comp, off:], term, N, metric)
                            _nb_combine(acc, term, N, metric)
                _q_row(acc, thr, N, q)
                qprev = E
                for a in range(N):
                    qprev = _scan(q[a], qprev, a, start, h, tot, True)
                _scan(E, qprev, N, start, h, tot, True)
        return hist.sum(axis=0)


def _sweep_numba(xs, m, tau, N, eps, metric, theiler):
    import numba

    chunks = numba.get_num_threads()
    code = _METRIC_CODE[metric]
    store = N * N <= QMATRIX_MAX_BYTES
    qmat = np.zeros((N, N) if store else (1, 1), dtype=np.uint8)  # diagonal stays 0: dist 0
    diag, n_up = _diagonal_pass(xs, m, tau, N, eps, theiler, code, chunks, qmat, store)
    if store:
        rows = _vertical_from_q(qmat, eps.size, chunks)
    else:
        rows = _vertical_recompute(xs, m, tau, N, eps, code, chunks)
    return _loi_and_symmetry(diag, n_up, rows, N, theiler)


# -- numpy backend ------------------------------------------------------------------------------


def _runs(q: np.ndarray, E: int, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Run-length histograms of ``q <= e`` along rows of a uint8 tile for every e; q = E pads."""
    padded = np.full((q.shape[0], q.shape[1] + 2), E, dtype=np.uint8)
    padded[:, 1:-1] = q
    flat = padded.ravel()
    hist = np.zeros((E, N + 1), dtype=np.int64)
    total = np.zeros(E, dtype=np.int64)
    for e in range(int(q.min(initial=E)), E):  # e below the tile's min q has no recurrence
        r = flat <= e
        edges = np.flatnonzero(r[1:] != r[:-1])  # every padded row starts and ends with False
        lengths = edges[1::2] - edges[0::2]
        hist[e] = np.bincount(lengths, minlength=N + 1)
        total[e] = lengths.sum()
    return hist, total


def _combine(acc, s, metric):
    if metric == "supremum":
        np.maximum(acc, s, out=acc)
    else:
        acc += s


def _sweep_numpy(xs, m, tau, N, eps, metric, theiler, tile_bytes=TILE_BYTES):
    d, n = xs.shape
    E = eps.size
    absf = (lambda u: u * u) if metric == "euclidean" else np.abs
    block = max(1, tile_bytes // (8 * n * (d + 2)))
    diag = np.zeros((E, N + 1), dtype=np.int64)
    n_up = np.zeros(E, dtype=np.int64)
    for k0 in range(1, N, block):
        k = np.arange(k0, min(N, k0 + block))
        t = np.arange(n - k0)
        idx = t[None, :] + k[:, None]
        idx = np.where(idx < n, idx, 0)
        s = [absf(xs[c, t][None, :] - xs[c][idx]) for c in range(d)]  # u_c[t] = x[t] - x[t+k]
        L = N - k0
        acc = s[0][:, :L].copy()
        for c in range(d):
            for j in range(1 if c == 0 else 0, m):
                _combine(acc, s[c][:, j * tau : j * tau + L], metric)
        q = np.searchsorted(eps, acc, side="right").astype(np.uint8)
        q[np.arange(L)[None, :] >= (N - k)[:, None]] = E  # positions past each diagonal's end
        keep = k >= theiler
        h, tot = _runs(q, E, N)
        n_up += tot
        if keep.all():
            diag += h
        elif keep.any():
            diag += _runs(q[keep], E, N)[0]
    rows = np.zeros((E, N + 1), dtype=np.int64)
    block = max(1, tile_bytes // (8 * N * 3))
    for i0 in range(0, N, block):
        i = np.arange(i0, min(N, i0 + block))
        acc = None
        for c in range(d):
            for j in range(m):
                off = j * tau
                s = absf(xs[c, i + off][:, None] - xs[c, off : off + N][None, :])
                if acc is None:
                    acc = s
                else:
                    _combine(acc, s, metric)
        q = np.searchsorted(eps, acc, side="right").astype(np.uint8)
        rows += _runs(q, E, N)[0]
    return _loi_and_symmetry(diag, n_up, rows, N, theiler)


# -- dispatch -----------------------------------------------------------------------------------


def _cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def resolve_backend(backend: str = "auto") -> str:
    """The backend ``auto`` picks here: torch on CUDA, else numba, else numpy."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        if backend == "numba" and not HAVE_NUMBA:
            raise ValueError("backend='numba' needs the numba package (pip install numba)")
        return backend
    if _cuda_available():
        return "torch"
    return "numba" if HAVE_NUMBA else "numpy"


def sweep_histograms(
    series,
    m: int,
    tau: int,
    eps,
    *,
    metric: str = "euclidean",
    theiler: int = 1,
    normalize: bool = True,
    backend: str = "auto",
    tile: int | None = None,
    dtype: str = "float64",
    device=None,
) -> SweepHistograms:
    """Diagonal and vertical line histograms of one embedded series for every eps at once.

    Args:
        series: (n,) or (n, d) finite real values (a joint series is embedded component-major,
            d*m coordinates); n >= (m-1)*tau + 2.
        m, tau: embedding dimension and delay, >= 1.
        eps: one or more radii > 0 (sorted and de-duplicated in the result; at most 254).
        metric: "euclidean", "supremum" or "manhattan".
        theiler: Theiler window w >= 0 for the diagonal histogram (1 = exclude only the LOI).
        normalize: z-score each component first (:func:`gpuflows.pipelines.rqa_sweep.rqa.zscore`).
        backend: "auto", "numba", "numpy" or "torch".
        tile: torch only: diagonals / rows per tile (default: from the memory budget).
        dtype: "float64" (exact, every backend) or "float32" (torch only; counts flips).
        device: torch only: a torch device (default: CUDA if available, else CPU).

    Returns:
        :class:`SweepHistograms`; ``result.metrics(l_min, v_min)`` gives the reference's
        measures per eps. Integer-identical to ``gpuflows.pipelines.rqa_sweep.rqa.rqa_metrics`` per eps in float64.

    Example:
        >>> h = sweep_histograms([0, 0, 0, 3, 0, 0], 1, 1, [0.5, 5.0], normalize=False,
        ...                      backend="numpy")
        >>> h.P_v[0].tolist(), int(h.n_recurrences[1])
        ([0, 1, 5, 5, 0, 0, 0], 36)
    """
    xs, N, e = prepare(series, m, tau, eps, metric, theiler, normalize)
    thr = decision_thresholds(e, metric)
    backend = resolve_backend(backend)
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if dtype == "float32" and backend != "torch":
        raise ValueError("dtype='float32' is a torch-backend option (use backend='torch')")
    flips = flips_e = None
    if backend == "torch":
        from gpuflows.pipelines.rqa_sweep import engine_torch as rqa_torch

        res = rqa_torch.sweep_torch(xs, m, tau, N, e, metric, theiler, tile, dtype, device)
        (P_d, P_v, nrec), flips_e, used = res
        flips = None if flips_e is None else int(flips_e.sum())
    elif backend == "numba":
        P_d, P_v, nrec = _sweep_numba(xs, m, tau, N, thr, metric, theiler)
        used = "numba"
    else:
        P_d, P_v, nrec = _sweep_numpy(xs, m, tau, N, thr, metric, theiler)
        used = "numpy"
    return SweepHistograms(N, e, nrec, P_d, P_v, flips, used, dtype, flips_e)
