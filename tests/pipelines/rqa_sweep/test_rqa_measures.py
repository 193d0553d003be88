"""The vectorised measures table equals the per-combination reference, value for value."""

import math

import numpy as np
import pytest

from gpuflows.pipelines.rqa_sweep import rqa
from gpuflows.pipelines.rqa_sweep.engine import sweep_histograms
from gpuflows.pipelines.rqa_sweep.measures import COLUMNS, measures_table

NAMES = ("RR", "DET", "L_max", "L_mean", "DIV", "ENT", "LAM", "TT", "V_max")


def _identical(x, y) -> bool:
    return x == y or (math.isnan(x) and math.isnan(y))


def _check(P_d, P_v, N, nrec, eps, l_mins, v_min):
    t = measures_table(P_d, P_v, N, nrec, eps, l_mins, v_min)
    assert tuple(t) == COLUMNS and all(len(c) == len(l_mins) * len(eps) for c in t.values())
    r = 0
    for lm in l_mins:
        for e in range(len(eps)):
            ref = rqa.metrics_from_histograms(P_d[e], P_v[e], N, int(nrec[e]), lm, v_min)
            assert t["l_min"][r] == lm and t["eps"][r] == eps[e] and t["N"][r] == N
            for k in NAMES:
                assert _identical(t[k][r], ref[k]), (k, lm, e, t[k][r], ref[k])
            r += 1


@pytest.mark.parametrize("seed", range(6))
def test_random_histograms_identical_to_reference(seed):
    rng = np.random.default_rng(seed)
    E, N = int(rng.integers(1, 6)), int(rng.integers(3, 40))
    sparsity = rng.uniform(0.2, 1.0)
    P_d = rng.integers(0, 5, (E, N + 1)) * (rng.random((E, N + 1)) > sparsity)
    P_v = rng.integers(0, 5, (E, N + 1)) * (rng.random((E, N + 1)) > sparsity)
    P_d[:, 0] = P_v[:, 0] = 0
    P_d[0] = 0  # a row with no diagonal lines at all: NaN ratios, DIV inf
    nrec = rng.integers(N, N * N, E)
    eps = sorted(rng.uniform(0.01, 1, E))
    _check(P_d, P_v, N, nrec, eps, [1, 2, 3, N, N + 5], int(rng.integers(1, 4)))


def test_sweep_table_equals_metrics():
    x = np.sin(np.linspace(0, 30, 300)) + np.random.default_rng(0).normal(0, 0.2, 300)
    h = sweep_histograms(x, 3, 2, [0.05, 0.2, 0.5, 1.0, 100.0], backend="numpy")
    t = h.table([2, 3, 7], v_min=3)
    r = 0
    for lm in (2, 3, 7):
        for row in h.metrics(lm, 3):
            assert all(_identical(t[k][r], row[k]) for k in NAMES)
            r += 1


def test_bad_arguments_named():
    P = np.zeros((2, 5), dtype=np.int64)
    with pytest.raises(ValueError, match="l_min"):
        measures_table(P, P, 4, np.array([4, 4]), [0.1, 0.2], [0])
    with pytest.raises(ValueError, match="one row per eps"):
        measures_table(P, P, 4, np.array([4]), [0.1, 0.2], [2])


def test_compute_units_reuse_m1_across_tau_only():
    from gpuflows.pipelines.rqa_sweep.grid import compute_units, n_computed, relabel_tau

    units = compute_units([1, 2], [1, 3])
    assert units == [(1, 1, 1), (1, 3, 1), (2, 1, 1), (2, 3, 3)]
    cols = {"tau": [1, 1], "DET": [0.5, 0.25]}
    assert n_computed([1, 2], [1, 3]) == 3
    assert relabel_tau(cols, 3) == {"tau": [3, 3], "DET": [0.5, 0.25]} and cols["tau"] == [1, 1]
