"""What every backend of the sweep-aware RQA engine shares (numba, numpy and torch alike).

The eps limit, the exact decision thresholds (why no backend takes a square root: see
:func:`decision_thresholds`) and the step that turns upper-triangle counts into the histograms of
the whole matrix. :mod:`gpuflows.pipelines.rqa_sweep.engine` (dispatch) and every backend module
import this one; it imports none of them.
"""

from __future__ import annotations

import numpy as np

MAX_EPS = 254
"""Threshold indices are stored as uint8 (0..E), so at most 254 eps values per sweep."""


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


def loi_and_symmetry(diag_upper, n_upper, rows, N, theiler):
    """Both triangles from the upper one; the LOI adds one run of length N when theiler == 0."""
    P_d = 2 * diag_upper
    if theiler == 0:
        P_d[:, N] += 1
    return P_d, rows, 2 * n_upper + N
