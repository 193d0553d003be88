"""Sweep-aware RQA engine: line histograms for every eps from one pass over the distances.

The NumPy reference (:mod:`gpuflows.pipelines.rqa_sweep.rqa`) builds one recurrence matrix per
eps. In a parameter sweep the distances depend only on (series, m, tau, metric), so this engine
computes each distance once, maps it to its *threshold index* q = #{eps_e <= dist} (eps sorted
ascending; R_ij = 1 at eps_e iff dist < eps_e iff e >= q) and updates the run counters of all
eps at once. Every l_min and v_min is then read from the histograms by
:func:`gpuflows.pipelines.rqa_sweep.rqa.metrics_from_histograms`.

Definitions are exactly the reference's (see its module docstring): strict ``dist < eps``, P_d
over diagonals |k| >= theiler in both triangles, P_v over whole columns, n_recurrences with the
line of identity (LOI).

Dtype contract (why ties at eps resolve exactly as in the reference):
    The series is z-scored by :func:`gpuflows.pipelines.rqa_sweep.rqa.zscore` (float64). Every
    distance is float64, built from the same IEEE operations in the same order as
    :func:`gpuflows.pipelines.rqa_sweep.rqa.distance_matrix`: per coordinate (component-major, then lag) ``u = x[a] - x[b]``; euclidean accumulates
    ``acc = acc + u*u`` from 0 (the reference then takes ``sqrt``); manhattan accumulates
    ``acc + |u|``; supremum takes ``max(acc, |u|)``. No fused multiply-add, no reassociation,
    no ``|a|^2 + |b|^2 - 2ab``. The euclidean ``sqrt(acc) < eps`` is decided as ``acc < T``
    with exact float64 thresholds (:func:`decision_thresholds`), equivalent for a correctly
    rounded sqrt and independent of the device's own sqrt. The histograms are therefore
    integer-identical to the reference on every backend. The one exception is the
    torch backend's opt-in ``dtype="float32"`` (series, distances and eps in float32), which
    also counts ``flipped_pairs``: the R entries whose float32 decision differs from float64.

Backends (one module each; the pieces they share are in
:mod:`gpuflows.pipelines.rqa_sweep.kernels`):
    ``numba`` (:mod:`gpuflows.pipelines.rqa_sweep.engine_numba`): parallel JIT kernels. Along
    diagonal k the coordinate differences of an embedding are shifted copies of
    ``u_c[t] = x_c[t] - x_c[t+k]``, so each difference is computed once per diagonal and each
    pair costs m*d additions; q comes from one vectorised compare-and-add pass per threshold;
    one scan per diagonal then updates all eps at O(|q_i - q_(i-1)|) per step. Vertical runs of
    column j equal the runs along row j (R is symmetric); they are read from a uint8 N x N
    matrix of threshold indices filled by the diagonal pass when N^2 bytes <=
    ``engine_numba.QMATRIX_MAX_BYTES``, else the distances of each row are recomputed. No
    N x N float matrix is ever held.
    ``numpy`` (:mod:`gpuflows.pipelines.rqa_sweep.engine_numpy`): vectorised tiles of diagonals
    and rows (float tiles bounded by ``engine_numpy.TILE_BYTES``).
    ``torch`` (:mod:`gpuflows.pipelines.rqa_sweep.engine_torch`): CUDA or CPU, tiled,
    ``estimate_bytes`` for VRAM.
    ``cupy`` (:mod:`gpuflows.pipelines.rqa_sweep.engine_cupy`): CUDA RawKernels, one thread
    per diagonal, then per row, every eps in one pass.
    ``auto``: :data:`CUDA_AUTO_BACKEND` on CUDA when available, else numba, else numpy.

Minimum input: n >= (m-1)*tau + 2 samples (two vectors); 1 <= len(eps) <= 254, every eps > 0.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

import gpuflows.pipelines.rqa_sweep.rqa as rqa
from gpuflows.pipelines.rqa_sweep.engine_numba import HAVE_NUMBA, sweep_numba
from gpuflows.pipelines.rqa_sweep.engine_numba_multi import sweep_numba_units
from gpuflows.pipelines.rqa_sweep.engine_numpy import sweep_numpy
from gpuflows.pipelines.rqa_sweep.kernels import MAX_EPS, decision_thresholds

__all__ = [
    "BACKENDS",
    "HAVE_NUMBA",
    "MAX_EPS",
    "SweepHistograms",
    "decision_thresholds",
    "prepare",
    "resolve_backend",
    "sweep_histograms",
    "sweep_histograms_multi_m",
    "sweep_units",
]

BACKENDS = ("auto", "numba", "numpy", "torch", "cupy")
CUDA_AUTO_BACKEND = "torch"
"""What ``auto`` runs on CUDA. torch until bench/rqa_gpu.py has measured cupy faster on a GPU."""


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
        backend: backend that ran ("numba", "numpy", "torch-cuda", "torch-cpu", "cupy").
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
        return CUDA_AUTO_BACKEND
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
        backend: "auto", "numba", "numpy", "torch" or "cupy".
        tile: torch only: diagonals / rows per tile (default: from the memory budget).
        dtype: "float64" (exact, every backend) or "float32" (torch only; counts flips).
        device: torch only: a torch device (default: CUDA if available, else CPU).

    Returns:
        :class:`SweepHistograms`; ``result.metrics(l_min, v_min)`` gives the reference's
        measures per eps. Integer-identical to ``gpuflows.pipelines.rqa_sweep.rqa.rqa_metrics``
        per eps in float64.

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
        import gpuflows.pipelines.rqa_sweep.engine_torch as rqa_torch

        res = rqa_torch.sweep_torch(xs, m, tau, N, e, metric, theiler, tile, dtype, device)
        (P_d, P_v, nrec), flips_e, used = res
        flips = None if flips_e is None else int(flips_e.sum())
    elif backend == "cupy":
        import gpuflows.pipelines.rqa_sweep.engine_cupy as rqa_cupy

        P_d, P_v, nrec = rqa_cupy.sweep_cupy(xs, m, tau, N, thr, metric, theiler)
        used = "cupy"
    elif backend == "numba":
        P_d, P_v, nrec = sweep_numba(xs, m, tau, N, thr, metric, theiler)
        used = "numba"
    else:
        P_d, P_v, nrec = sweep_numpy(xs, m, tau, N, thr, metric, theiler)
        used = "numpy"
    return SweepHistograms(N, e, nrec, P_d, P_v, flips, used, dtype, flips_e)


# -- many units at once ---------------------------------------------------------------------------


def sweep_units(
    series,
    units,
    eps,
    *,
    metric: str = "euclidean",
    theiler: int = 1,
    normalize: bool = True,
    backend: str = "auto",
) -> list[SweepHistograms]:
    """:func:`sweep_histograms` of many (series, m, tau) units in one call, float64.

    Args:
        series: a sequence of series, each as ``sweep_histograms`` takes it.
        units: a sequence of (series index, m, tau).
        eps, metric, theiler, normalize: as :func:`sweep_histograms`, shared by every unit.
        backend: "auto", "numba", "numpy" or "torch". numba (also what "auto" picks without
            CUDA) runs one pass per (series, tau) for all its m, every pass in one parallel
            region; the others call :func:`sweep_histograms` per unit.

    Returns:
        One :class:`SweepHistograms` per unit, in order; each equal, integer for integer, to
        ``sweep_histograms(series[i], m, tau, eps, ...)``.

    Example:
        >>> hs = sweep_units([[0, 0, 0, 3, 0, 0]], [(0, 1, 1), (0, 2, 1)], [0.5, 5.0],
        ...                  normalize=False, backend="numba")
        >>> [h.N for h in hs], hs[0].P_v[0].tolist()
        ([6, 5], [0, 1, 5, 5, 0, 0, 0])
    """
    series = list(series)
    units = [tuple(u) for u in units]
    backend = resolve_backend(backend)
    for u in units:
        if len(u) != 3 or not 0 <= int(u[0]) < len(series):
            raise ValueError(f"units must be (series index < {len(series)}, m, tau), got {u!r}")
    if backend != "numba":
        kw = {"metric": metric, "theiler": theiler, "normalize": normalize, "backend": backend}
        return [sweep_histograms(series[i], m, tau, eps, **kw) for i, m, tau in units]
    prepared: dict[int, np.ndarray] = {}
    e = None
    for i, m, tau in units:  # validates every unit before any compute
        xs, _, e = prepare(series[i], m, tau, eps, metric, theiler, normalize and i not in prepared)
        prepared.setdefault(i, xs)
    if e is None:
        return []
    groups: dict[tuple[int, int], set[int]] = {}
    for i, m, tau in units:
        groups.setdefault((i, tau), set()).add(m)
    keys = list(groups)
    items = [(prepared[i], tau, sorted(groups[(i, tau)])) for i, tau in keys]
    res = sweep_numba_units(items, decision_thresholds(e, metric), metric, theiler)
    by_unit = {}
    for (i, tau), (_, _, ms), per_m in zip(keys, items, res, strict=True):
        for m, (P_d, P_v, nrec) in zip(ms, per_m, strict=True):
            N = P_d.shape[1] - 1
            by_unit[(i, m, tau)] = SweepHistograms(N, e, nrec, P_d, P_v, None, "numba", "float64")
    return [by_unit[(i, m, tau)] for i, m, tau in units]


def sweep_histograms_multi_m(series, ms, tau: int, eps, **kw) -> dict[int, SweepHistograms]:
    """Every m of ``ms`` for one series and tau (:func:`sweep_units`; keywords as there):
    {m: histograms}, each equal to ``sweep_histograms(series, m, tau, eps, ...)``."""
    ms = list(dict.fromkeys(ms))
    return dict(zip(ms, sweep_units([series], [(0, m, tau) for m in ms], eps, **kw), strict=True))
