"""NumPy backend of the sweep-aware RQA engine: vectorised tiles of diagonals, then rows.

Called through :func:`gpuflows.pipelines.rqa_sweep.engine.sweep_histograms` (``backend="numpy"``);
the algorithm and the float64 dtype contract are described in that module's docstring. Float
tiles are bounded by :data:`TILE_BYTES`; no N x N float matrix is ever held.
"""

from __future__ import annotations

import numpy as np

from gpuflows.pipelines.rqa_sweep.kernels import loi_and_symmetry

TILE_BYTES = 64 * 2**20
"""Memory budget of one float tile in the numpy backend."""


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


def sweep_numpy(xs, m, tau, N, eps, metric, theiler, tile_bytes=TILE_BYTES):
    """Backend entry: (P_d, P_v, n_recurrences) of ``xs`` (d, n) float64 for thresholds ``eps``
    (:func:`gpuflows.pipelines.rqa_sweep.kernels.decision_thresholds`, sorted ascending)."""
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
    return loi_and_symmetry(diag, n_up, rows, N, theiler)
