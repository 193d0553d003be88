"""Torch backend of the sweep-aware RQA engine (CUDA or CPU): tiles of diagonals, then rows.

Called through :func:`gpuflows.pipelines.rqa_sweep.engine.sweep_histograms`
(``backend="torch"``); the definitions and the float64 dtype contract are that module's. Algorithm per (series, m, tau):

1. Diagonal tiles of B diagonals k0..k0+B-1: ``u_c[b, t] = x_c[t] - x_c[t + k0 + b]`` (the
   shifted rows are a view, ``unfold``), ``s = u*u`` (euclidean) or ``|u|``; the distance of
   pair (i, i+k) is the sum (max) of ``s_c[b, i + j*tau]`` over c, then j, in the reference's
   order; ``q = bucketize(acc, T, right=True)`` = #{T_e <= acc} as uint8, with T the exact
   decision thresholds (euclidean: on the sum of squares, so no device sqrt is involved).
   Each tile's q is written into a uint8 matrix Q (N x (N+B), upper triangle; the B spare
   columns take the positions past each diagonal's end) and its runs are histogrammed.
2. Row tiles: row r of R is ``Q[r, r:]`` and ``Q[:r, r]`` (R symmetric); vertical runs of
   column r = runs along row r. When N*(N+B) bytes exceed ``QMATRIX_MAX_BYTES`` Q is not kept
   and each row tile recomputes its distances instead.
3. Runs for all eps at once: ``r = q <= e`` over an (E', tile) boolean block, transitions by
   ``!=``, ``nonzero``, start/end pairs, lengths, one ``bincount`` over e*(N+1) + length.

``dtype="float32"``: series, distances and thresholds in float32 (a plain float32
implementation's decisions, with a correctly rounded float32 sqrt) and, in the same tile, the
float64 q; ``flipped`` counts per eps the R entries (both triangles, i != j) whose two decisions
differ, = 2 * sum over pairs of |q32 - q64| split by eps. Memory: :func:`estimate_bytes`; no N x N float matrix is ever held.
"""

from __future__ import annotations

import numpy as np
import torch

from gpuflows.pipelines.rqa_sweep.kernels import decision_thresholds, loi_and_symmetry

QMATRIX_MAX_BYTES = 8 * 2**30
"""Keep the uint8 threshold-index matrix only up to this size (N ~ 90k); else recompute rows."""
DEFAULT_BUDGET_BYTES = {"cuda": 2 * 2**30, "cpu": 256 * 2**20}
"""Memory budget of one tile's temporaries, per device type (the Q matrix comes on top)."""


def _tile_elem_bytes(d: int, E: int, dtype: str) -> int:
    """Upper bound of the bytes one tile element needs at peak (see :func:`estimate_bytes`)."""
    fs = 8 + (4 if dtype == "float32" else 0)  # float64 (and float32) values
    # s_c per component, u, acc, int32 bucket index, 2 uint8 q, mask; runs: per eps 3 bool
    # (r, r != shifted r, padding) and, if every element toggles (the worst case), an int64
    # nonzero index plus three live int64 temporaries of half that length (lengths, e, bins)
    return fs * (d + 2) + 4 + 3 + E * (3 + 8 + 3 * 4)


def estimate_bytes(
    N: int, d: int, tile: int, E: int, *, n: int | None = None, dtype: str = "float64"
) -> int:
    """Peak device bytes of one :func:`sweep_torch` call (an upper bound, for VRAM reservation).

    Args:
        N: embedded vectors; d: components of the series (1, or 2 for x+y); tile: diagonals /
            rows per tile; E: number of eps values; n: samples (default N; n = N + (m-1)*tau);
        dtype: "float64" or "float32" (float32 keeps both dtypes' tiles).

    Returns:
        Bytes: the uint8 Q matrix N*(N+tile) when kept (N*(N+tile) <= QMATRIX_MAX_BYTES) plus
        tile*(n+1) elements at :func:`_tile_elem_bytes` each, plus the (E, N+1) int64 histograms.

    Example:
        >>> tile = choose_tile(5000, 2, 17, 5011, "float64", 2 * 2**30)
        >>> tile, round(estimate_bytes(5000, 2, tile, 17, n=5011) / 2**30, 2)  # GiB
        (996, 2.03)
    """
    n = N if n is None else n
    q = N * (N + tile) if N * (N + tile) <= QMATRIX_MAX_BYTES else 0
    return q + tile * (n + 1) * _tile_elem_bytes(d, E, dtype) + 4 * E * (N + 1) * 8


def choose_tile(N: int, d: int, E: int, n: int, dtype: str, budget_bytes: int) -> int:
    """Largest tile (diagonals or rows) whose temporaries fit ``budget_bytes``, in [1, N]."""
    return int(max(1, min(N, budget_bytes // ((n + 1) * _tile_elem_bytes(d, E, dtype)))))


def _runs(q: torch.Tensor, E: int, N: int, hist: torch.Tensor) -> None:
    """Add the run-length histograms of ``q <= e`` along the rows of q, for every e, to hist."""
    B, W = q.shape
    if q.numel() == 0:
        return
    emin = int(q.min())  # e below the tile's smallest q has no recurrence at all
    if emin >= E:
        return
    sep = torch.full((B, W + 1), E, dtype=torch.uint8, device=q.device)
    sep[:, 1:] = q  # a leading separator per row, and one at the very end below
    flat = torch.cat([sep.reshape(-1), sep.new_full((1,), E)])
    es = torch.arange(emin, E, dtype=torch.uint8, device=q.device)
    r = flat[None, :] <= es[:, None]  # (E', F+1), each e-row starts and ends with False
    edges = torch.nonzero((r[:, 1:] != r[:, :-1]).reshape(-1)).squeeze(1)
    del r
    starts, ends = edges[0::2], edges[1::2]
    F = flat.numel() - 1
    bins = (starts // F + emin) * (N + 1) + (ends - starts)
    hist += torch.bincount(bins, minlength=E * (N + 1)).view(E, N + 1)


def _accumulate(s_list, m, tau, L, metric, rowwise=None):
    """Distances of a tile from per-component terms, in the reference's (c, then j) order."""
    acc = None
    for c, s in enumerate(s_list):
        for j in range(m):
            term = s[:, j * tau : j * tau + L] if rowwise is None else rowwise(c, j)
            if acc is None:
                acc = term.clone(memory_format=torch.contiguous_format)
            elif metric == "supremum":
                torch.maximum(acc, term, out=acc)
            else:
                acc.add_(term)
    return acc  # euclidean: the sum of squares, compared with sqrt-exact thresholds


def _term(u: torch.Tensor, metric: str) -> torch.Tensor:
    return u * u if metric == "euclidean" else u.abs_()


def _diag_tile_q(x, k0, B, N, m, tau, metric, eps):
    """uint8 threshold indices (B, N-k0) of diagonals k0..k0+B-1; past a diagonal's end: E."""
    d, n = x.shape
    W, L = n - k0, N - k0
    s_list = []
    for c in range(d):
        pad = torch.cat([x[c, k0:], x.new_zeros(B)])
        shifted = pad.unfold(0, W, 1)[:B]  # row b: x[c, k0 + b + t]
        s_list.append(_term(x[c, None, :W] - shifted, metric))
    acc = _accumulate(s_list, m, tau, L, metric)
    del s_list
    q = torch.bucketize(acc, eps, out_int32=True, right=True).to(torch.uint8)
    k = torch.arange(k0, k0 + B, device=x.device)
    past = torch.arange(L, device=x.device)[None, :] >= (N - k)[:, None]
    return q.masked_fill_(past, eps.numel()), past


def _row_tile_q(x, r0, B, N, m, tau, metric, eps):
    """uint8 threshold indices (B, N) of rows r0..r0+B-1, distances recomputed."""
    rows = torch.arange(r0, r0 + B, device=x.device)

    def rowwise(c, j):
        off = j * tau
        return _term(x[c, rows + off][:, None] - x[c, None, off : off + N], metric)

    acc = _accumulate(range(x.shape[0]), m, tau, N, metric, rowwise)
    return torch.bucketize(acc, eps, out_int32=True, right=True).to(torch.uint8)


def sweep_torch(xs, m, tau, N, eps, metric, theiler, tile, dtype, device, budget_bytes=None):
    """Backend entry: returns ((P_d upper, P_v, n_upper), flipped_per_eps or None, backend).

    ``xs`` (d, n) float64 NumPy (already z-scored), ``eps`` sorted unique float64 radii (the
    float64 thresholds are computed here too, with :func:`decision_thresholds`).
    """
    dev = torch.device(
        device if device is not None else "cuda" if torch.cuda.is_available() else "cpu"
    )
    d, n = xs.shape
    E = eps.size
    if tile is None:
        budget = budget_bytes or DEFAULT_BUDGET_BYTES.get(dev.type, DEFAULT_BUDGET_BYTES["cpu"])
        tile = choose_tile(N, d, E, n, dtype, budget)
    tile = int(max(1, min(tile, N)))
    x64 = torch.as_tensor(xs, dtype=torch.float64, device=dev)
    e64 = torch.as_tensor(decision_thresholds(eps, metric), dtype=torch.float64, device=dev)
    f32 = dtype == "float32"
    x = x64.float() if f32 else x64
    e = torch.as_tensor(decision_thresholds(eps, metric, np.float32), device=dev) if f32 else e64
    keep_q = N * (N + tile) <= QMATRIX_MAX_BYTES
    Q = torch.zeros(N * (N + tile) if keep_q else 1, dtype=torch.uint8, device=dev)
    diag = torch.zeros((E, N + 1), dtype=torch.int64, device=dev)
    n_up = torch.zeros((E, N + 1), dtype=torch.int64, device=dev)  # all k >= 1, for RR
    flips = torch.zeros(E + 1, dtype=torch.int64, device=dev) if f32 else None
    for k0 in range(1, N, tile):
        B = min(tile, N - k0)
        q, past = _diag_tile_q(x, k0, B, N, m, tau, metric, e)
        if f32:  # float64 decisions of the same pairs: flips per eps = #(lo <= e < hi)
            q64, _ = _diag_tile_q(x64, k0, B, N, m, tau, metric, e64)
            lo, hi = torch.minimum(q, q64)[~past].long(), torch.maximum(q, q64)[~past].long()
            flips += torch.bincount(lo, minlength=E + 1) - torch.bincount(hi, minlength=E + 1)
            del q64, lo, hi
        if keep_q:  # element (b, i) -> Q[i, i + k0 + b] in an N x (N + tile) layout
            view = Q.as_strided((B, N - k0), (1, N + tile + 1), k0)
            view.copy_(q)
        first = max(theiler - k0, 0)  # diagonals k < theiler count for RR only
        _runs(q[:first], E, N, n_up)
        if first < B:
            _runs(q[first:], E, N, diag)
        del q, past
    n_up += diag  # every run of an upper diagonal k >= 1, whatever the Theiler window
    rows = torch.zeros((E, N + 1), dtype=torch.int64, device=dev)
    Qm = Q[: N * (N + tile)].view(N, N + tile)[:, :N] if keep_q else None
    for r0 in range(0, N, tile):
        B = min(tile, N - r0)
        if keep_q:  # row r: Q[r, a] for a > r, Q[a, r] for a < r (Q is 0 on and below its diagonal)
            q = Qm[r0 : r0 + B] + Qm[:, r0 : r0 + B].T
        else:
            q = _row_tile_q(x, r0, B, N, m, tau, metric, e)
        _runs(q, E, N, rows)
        del q
    lengths = torch.arange(N + 1, dtype=torch.int64, device=dev)
    total = (n_up * lengths).sum(1)
    out = loi_and_symmetry(diag.cpu().numpy(), total.cpu().numpy(), rows.cpu().numpy(), N, theiler)
    flipped = None
    if f32:
        flipped = 2 * torch.cumsum(flips, 0)[:E].cpu().numpy()
    return out, flipped, f"torch-{dev.type}"
