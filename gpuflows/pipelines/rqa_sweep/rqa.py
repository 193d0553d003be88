"""Recurrence quantification analysis (RQA): the NumPy reference every fast path is tested against.

Pure NumPy (no Prefect, no torch), float64 distances, integer line histograms. Definitions follow
Marwan, Romano, Thiel & Kurths, "Recurrence plots for the analysis of complex systems", Physics
Reports 438 (2007) 237-329, and match pyunicorn 1.0.0 ``RecurrencePlot`` and PyRQA 8.1.0:

- Preprocess: each component z-scored over the whole series (population std, ddof=0). A constant
  component becomes all zeros (pyunicorn subtracts the mean and skips the division when std = 0;
  here "constant" is tested as "all values equal", so float rounding of the mean cannot leave
  noise that the division would blow up).
- Embedding: v_i = (x[i], x[i+tau], ..., x[i+(m-1)tau]), i = 0 .. n-(m-1)tau-1. A joint (n, d)
  series is embedded per component and concatenated, component-major: (x lags..., y lags...),
  so (x, y) gives 2m coordinates. N = number of vectors.
- Recurrence: R_ij = 1 iff dist(v_i, v_j) < eps (strict), distances in float64. Euclidean and
  manhattan sums are accumulated coordinate by coordinate in column order, exactly as pyunicorn's
  Cython loops do, so ties at eps resolve identically; supremum is the maximum |difference|.
- RR = sum(R) / N^2, the line of identity (LOI) included.
- P_d(l): maximal runs of 1s along every diagonal k = j - i with |k| >= w (Theiler window; w = 1
  excludes only the LOI; w = 0 includes it), both triangles counted.
- P_v(v): maximal runs of 1s in every whole column, no Theiler exclusion.
- DET = sum_{l>=l_min} l P_d(l) / sum_{l>=1} l P_d(l);  L_mean = sum_{l>=l_min} l P_d(l) /
  sum_{l>=l_min} P_d(l);  L_max = max{l : P_d(l) > 0} (not limited by l_min; 0 if no lines);
  DIV = 1 / L_max (inf when L_max = 0);  ENT = -sum_{l>=l_min} p(l) ln p(l) with
  p(l) = P_d(l) / sum_{l>=l_min} P_d(l), terms with P_d(l) = 0 omitted;
  LAM = sum_{v>=v_min} v P_v(v) / sum_{v>=1} v P_v(v);  TT = sum_{v>=v_min} v P_v(v) /
  sum_{v>=v_min} P_v(v);  V_max = max{v : P_v(v) > 0}.
- Undefined ratios (0/0) are NaN, never a crash: DET, L_mean, ENT when no diagonal line qualifies;
  TT when no vertical line is >= v_min. pyunicorn instead adds 1e-8 to every denominator (so it
  returns 0 there, and differs from these exact ratios by a factor den / (den + 1e-8)).

Histograms are int64 arrays of length N + 1 indexed by the line length (index 0 is always 0);
pyunicorn's ``diagline_dist``/``vertline_dist`` are indexed by length - 1.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

DIST_DTYPE = np.float64
"""Dtype of every distance and of the eps comparison in the reference."""
HIST_DTYPE = np.int64
"""Dtype of the line-length histograms."""
METRICS = ("euclidean", "supremum", "manhattan")
"""Supported distance metrics."""


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_series(series) -> np.ndarray:
    x = np.asarray(series)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"series must be real numbers, got dtype {x.dtype}")
    x = x.astype(DIST_DTYPE)
    if x.ndim not in (1, 2) or x.shape[-1] == 0 or (x.ndim == 2 and x.shape[0] == 0):
        raise ValueError(f"series must be 1-D (n,) or 2-D (n, d) and non-empty, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("series contains NaN or inf")
    return x


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def zscore(series) -> np.ndarray:
    """Z-score each component over the whole series: (x - mean) / std, population std (ddof=0).

    Args:
        series: (n,) or (n, d) finite real values.

    Returns:
        float64 array of the same shape. A constant component (all values equal) becomes zeros,
        as in pyunicorn's ``RecurrencePlot.normalize_time_series`` (which skips the division when
        std = 0); the division is never done on a zero or rounding-noise std.

    Example:
        >>> zscore([1.0, 2.0, 3.0]).round(4).tolist()
        [-1.2247, 0.0, 1.2247]
    """
    x = _check_series(series)
    x2 = x.reshape(x.shape[0], -1)
    out = np.zeros_like(x2)
    for c in range(x2.shape[1]):
        col = x2[:, c]
        if col.min() != col.max():
            out[:, c] = (col - col.mean()) / col.std()
    return out.reshape(x.shape)


def embed(series, m: int, tau: int) -> np.ndarray:
    """Time-delay embedding: rows v_i = (x[i], x[i+tau], ..., x[i+(m-1)tau]).

    Args:
        series: (n,) scalar series or (n, d) joint series; each component is embedded and the
            embeddings are concatenated component-major, giving d*m columns.
        m: embedding dimension, >= 1.
        tau: delay in samples, >= 1.

    Returns:
        float64 array (N, d*m), N = n - (m-1)*tau. Needs n >= (m-1)*tau + 2 (two vectors).
    """
    x = _check_series(series)
    m = _check_int("m", m, 1)
    tau = _check_int("tau", tau, 1)
    need = (m - 1) * tau + 2
    if x.shape[0] < need:
        raise ValueError(
            f"series has {x.shape[0]} samples; m={m}, tau={tau} need at least (m-1)*tau+2 = {need}"
        )
    x2 = x.reshape(x.shape[0], -1)
    n_vec = x2.shape[0] - (m - 1) * tau
    cols = [x2[j * tau : j * tau + n_vec, c] for c in range(x2.shape[1]) for j in range(m)]
    return np.ascontiguousarray(np.stack(cols, axis=1))


def distance_matrix(vectors, metric: str = "euclidean") -> np.ndarray:
    """All pairwise float64 distances between the rows of ``vectors`` (N, D).

    Euclidean sqrt(sum diff^2) and manhattan sum |diff| accumulate the coordinates in column
    order (bit-identical to pyunicorn's Cython loops); supremum is max |diff|. O(N^2 D) time,
    one N x N float64 matrix of memory plus one temporary.
    """
    _check_metric(metric)
    v = np.asarray(vectors, dtype=DIST_DTYPE)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"vectors must be 2-D (N, D) with N >= 1, got shape {v.shape}")
    acc = np.zeros((v.shape[0], v.shape[0]), dtype=DIST_DTYPE)
    for c in range(v.shape[1]):
        diff = np.abs(v[:, None, c] - v[None, :, c])
        if metric == "euclidean":
            acc += diff * diff
        elif metric == "manhattan":
            acc += diff
        else:
            np.maximum(acc, diff, out=acc)
    if metric == "euclidean":
        np.sqrt(acc, out=acc)
    return acc


def recurrence_matrix(vectors, eps: float, metric: str = "euclidean") -> np.ndarray:
    """Boolean recurrence matrix R_ij = dist(v_i, v_j) < eps (strict, float64 comparison)."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    return distance_matrix(vectors, metric) < eps


def _run_histogram(rows: np.ndarray, n_bins: int) -> np.ndarray:
    """Histogram of maximal runs of True along axis 1 of a 2-D bool array (length-indexed)."""
    padded = np.zeros((rows.shape[0], rows.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = rows
    d = np.diff(padded, axis=1).ravel()
    # every padded row starts and ends with 0, so starts and ends pair up row by row
    lengths = np.flatnonzero(d == -1) - np.flatnonzero(d == 1)
    return np.bincount(lengths, minlength=n_bins)[:n_bins].astype(HIST_DTYPE)


def _diagonals(R: np.ndarray) -> np.ndarray:
    """(N, N) array whose row k is the upper diagonal k of R, R[i, i+k], zero-padded at the end."""
    n = R.shape[0]
    wide = np.zeros((n, 2 * n), dtype=np.int8)
    wide[:, :n] = R
    # wide.ravel()[i*(2n+1) + k] = wide[i, i+k]; i+k < 2n always, the pad supplies the zeros
    view = np.lib.stride_tricks.as_strided(wide, shape=(n, n), strides=(2 * n + 1, 1))
    return np.ascontiguousarray(view.T)


def diagonal_histogram(R, theiler: int = 1) -> np.ndarray:
    """P_d(l): maximal diagonal runs of 1s on every diagonal k = j - i with |k| >= theiler.

    Both triangles are counted (a symmetric R gives even counts); ``theiler=0`` includes the
    line of identity. Returns int64 of length N + 1, index = line length.
    """
    R = np.asarray(R, dtype=bool)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"R must be a square matrix, got shape {R.shape}")
    theiler = _check_int("theiler", theiler, 0)
    n = R.shape[0]
    upper = _diagonals(R)[theiler:]
    lower = _diagonals(R.T)[max(theiler, 1) :]
    return _run_histogram(upper, n + 1) + _run_histogram(lower, n + 1)


def vertical_histogram(R) -> np.ndarray:
    """P_v(v): maximal runs of 1s in every whole column of R (no Theiler exclusion).

    Returns int64 of length N + 1, index = line length.
    """
    R = np.asarray(R, dtype=bool)
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ValueError(f"R must be a square matrix, got shape {R.shape}")
    return _run_histogram(R.T, R.shape[0] + 1)


def _ratio(num: float, den: float) -> float:
    return num / den if den != 0 else math.nan


def metrics_from_histograms(
    P_d, P_v, N: int, n_recurrences: int, l_min: int, v_min: int = 2
) -> dict[str, float | int]:
    """RQA measures from the line histograms (formulas in the module docstring).

    One pair of histograms serves every l_min and v_min, so a sweep reads them all for free.

    Args:
        P_d, P_v: length-indexed integer histograms (index 0 ignored), as returned by
            :func:`diagonal_histogram` and :func:`vertical_histogram`.
        N: number of embedded vectors (RR's denominator is N^2).
        n_recurrences: sum of R, line of identity included.
        l_min, v_min: minimum diagonal / vertical line length, >= 1.

    Returns:
        dict with RR, DET, L_max, L_mean, DIV, ENT, LAM, TT, V_max (floats; L_max and V_max int).
        0/0 ratios are NaN; DIV is inf when L_max = 0.
    """
    l_min = _check_int("l_min", l_min, 1)
    v_min = _check_int("v_min", v_min, 1)
    N = _check_int("N", N, 1)
    pd_ = np.asarray(P_d, dtype=HIST_DTYPE)
    pv = np.asarray(P_v, dtype=HIST_DTYPE)
    ld = np.arange(pd_.size, dtype=HIST_DTYPE)
    lv = np.arange(pv.size, dtype=HIST_DTYPE)
    # integer sums are exact; the only rounding is the final division
    d_all, d_sel = int((ld * pd_)[1:].sum()), int((ld * pd_)[l_min:].sum())
    n_lines = int(pd_[l_min:].sum())
    v_all, v_sel = int((lv * pv)[1:].sum()), int((lv * pv)[v_min:].sum())
    nz_d, nz_v = np.flatnonzero(pd_[1:]), np.flatnonzero(pv[1:])
    L_max = int(nz_d[-1] + 1) if nz_d.size else 0
    V_max = int(nz_v[-1] + 1) if nz_v.size else 0
    if n_lines:
        counts = pd_[l_min:]
        p = counts[counts > 0] / n_lines
        ent = float(0.0 - (p * np.log(p)).sum())  # 0.0, not -0.0, for one length
    else:
        ent = math.nan
    return {
        "RR": int(n_recurrences) / (N * N),
        "DET": _ratio(d_sel, d_all),
        "L_max": L_max,
        "L_mean": _ratio(d_sel, n_lines),
        "DIV": 1.0 / L_max if L_max else math.inf,
        "ENT": ent,
        "LAM": _ratio(v_sel, v_all),
        "TT": _ratio(v_sel, int(pv[v_min:].sum())),
        "V_max": V_max,
    }


def rqa_metrics(
    series,
    m: int,
    tau: int,
    eps: float,
    l_min: int,
    *,
    v_min: int = 2,
    metric: str = "euclidean",
    theiler: int = 1,
    normalize: bool = True,
) -> dict:
    """Fixed-radius RQA of one series: the reference every fast path must reproduce exactly.

    Steps: z-score (if ``normalize``) -> :func:`embed` -> :func:`recurrence_matrix` (float64,
    strict ``< eps``) -> :func:`diagonal_histogram` (Theiler window ``theiler``) and
    :func:`vertical_histogram` -> :func:`metrics_from_histograms`.

    Args:
        series: (n,) or (n, d) finite real values; n >= (m-1)*tau + 2.
        m, tau: embedding dimension and delay, >= 1.
        eps: recurrence radius, > 0 (in z-score units when normalize=True).
        l_min, v_min: minimum diagonal / vertical line length, >= 1.
        metric: "euclidean", "supremum" or "manhattan".
        theiler: Theiler window w >= 0 for diagonal lines (1 = exclude only the LOI).
        normalize: z-score each component first.

    Returns:
        dict: N, RR, DET, L_max, L_mean, DIV, ENT, LAM, TT, V_max, and the int64 histograms
        P_d, P_v (length N + 1, index = line length) for integer-exact comparison.

    Example:
        >>> r = rqa_metrics([0, 0, 0, 3, 0, 0], m=1, tau=1, eps=0.5, l_min=2, normalize=False)
        >>> r["DET"], r["L_max"], r["TT"]
        (0.6, 2, 2.5)
    """
    x = _check_series(series)
    m = _check_int("m", m, 1)
    tau = _check_int("tau", tau, 1)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    l_min = _check_int("l_min", l_min, 1)
    v_min = _check_int("v_min", v_min, 1)
    theiler = _check_int("theiler", theiler, 0)
    _check_metric(metric)
    if normalize:
        x = zscore(x)
    R = recurrence_matrix(embed(x, m, tau), eps, metric)
    n = R.shape[0]
    P_d = diagonal_histogram(R, theiler)
    P_v = vertical_histogram(R)
    out: dict = {"N": n}
    out.update(metrics_from_histograms(P_d, P_v, n, int(R.sum()), l_min, v_min))
    out["P_d"], out["P_v"] = P_d, P_v
    return out
