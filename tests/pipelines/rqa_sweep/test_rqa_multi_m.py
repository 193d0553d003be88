"""The batched multi-m engine (``engine.sweep_units``) and the batched measures tables
(``measures_batch.measures_tables``) against the per-unit paths, value for value.

Tolerance: none. ``sweep_units`` must give, for every (series, m, tau) unit, the histograms and
recurrence counts of ``sweep_histograms`` integer for integer (which test_rqa_engine holds to the
reference), and ``measures_tables`` every value of ``SweepHistograms.table``.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpuflows.pipelines.rqa_sweep import engine as rqa_engine
from gpuflows.pipelines.rqa_sweep import rqa
from gpuflows.pipelines.rqa_sweep.engine import (
    sweep_histograms,
    sweep_histograms_multi_m,
    sweep_units,
)
from gpuflows.pipelines.rqa_sweep.measures_batch import measures_tables

pytestmark = pytest.mark.skipif(not rqa_engine.HAVE_NUMBA, reason="the batched kernel is numba")


def _series(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    kind = rng.integers(0, 3)
    e = rng.standard_normal((n, d))
    if kind == 0:
        x = np.cumsum(e, axis=0)
    elif kind == 1:
        x = np.sin(np.arange(n)[:, None] / rng.uniform(1.5, 6.0)) + 0.05 * e
    else:
        x = np.round(np.cumsum(e, axis=0))  # integer walk: many exact ties
    return x[:, 0] if d == 1 else x


def _same(a, b) -> None:
    assert a.N == b.N and a.backend == "numba" and a.dtype == "float64"
    np.testing.assert_array_equal(a.eps, b.eps)
    np.testing.assert_array_equal(a.P_d, b.P_d)
    np.testing.assert_array_equal(a.P_v, b.P_v)
    np.testing.assert_array_equal(a.n_recurrences, b.n_recurrences)


def _eps(rng, x, metric):
    """Rounded radii plus realised distances (ties: strict < must exclude them)."""
    z = rqa.zscore(x)
    D = rqa.distance_matrix(rqa.embed(z, 1, 1), metric)
    off = D[np.triu_indices(D.shape[0], 1)]
    ties = rng.choice(off[off > 0], 3) if np.any(off > 0) else np.array([0.5])
    return np.concatenate([ties, np.round(rng.uniform(0.05, 2.0, 5), 2)])


@pytest.mark.parametrize("seed", range(4))
def test_units_equal_per_unit_sweeps(seed):
    """Random series (d = 1, 2), every metric, Theiler 0..4, several taus and ms per series,
    some series at the shortest length the largest m allows."""
    rng = np.random.default_rng(seed)
    for metric in rqa.METRICS:
        series, units = [], []
        for s in range(3):
            d = int(rng.integers(1, 3))
            tau = int(rng.integers(1, 4))
            m_max = int(rng.integers(1, 6))
            shortest = (m_max - 1) * tau + 2
            n = shortest if s == 0 else int(rng.integers(shortest, shortest + 90))
            series.append(_series(rng, n, d))
            for t in sorted({tau, int(rng.integers(1, tau + 1))}):
                for m in sorted(set(rng.integers(1, m_max + 1, 3).tolist())):
                    if (m - 1) * t + 2 <= n:
                        units.append((s, m, t))
        theiler = int(rng.integers(0, 5))
        eps = _eps(rng, series[1], metric)
        got = sweep_units(series, units, eps, metric=metric, theiler=theiler, backend="numba")
        assert len(got) == len(units)
        for (s, m, t), h in zip(units, got, strict=True):
            ref = sweep_histograms(
                series[s], m, t, eps, metric=metric, theiler=theiler, backend="numba"
            )
            _same(h, ref)


def test_multi_m_of_one_series_and_edge_cases():
    x = np.random.default_rng(7).standard_normal(160)
    eps = [1e-12, 0.1, 0.3, 0.7, 1e6]
    hs = sweep_histograms_multi_m(x, [4, 1, 2, 4, 7], 3, eps, theiler=2)
    assert list(hs) == [4, 1, 2, 7]
    for m, h in hs.items():
        _same(h, sweep_histograms(x, m, 3, eps, theiler=2, backend="numba"))
    h7 = hs[7]
    assert h7.n_recurrences[0] == h7.N and h7.n_recurrences[-1] == h7.N**2  # LOI only / all
    # two vectors only; a constant series (every distance 0: all recurrent)
    for series, m, tau in ((x[:8], 4, 2), (np.full(40, 2.0), 3, 1)):
        (h,) = sweep_units([series], [(0, m, tau)], [0.2, 5.0], backend="numba")
        _same(h, sweep_histograms(series, m, tau, [0.2, 5.0], backend="numba"))
    assert h.n_recurrences.tolist() == [h.N**2] * 2 and h.P_v[0, h.N] == h.N


def test_units_validate_before_computing_and_other_backends():
    x = np.arange(30.0)
    with pytest.raises(ValueError, match="need at least"):
        sweep_units([x, x[:5]], [(0, 2, 1), (1, 4, 2)], [0.5], backend="numba")
    with pytest.raises(ValueError, match="series index"):
        sweep_units([x], [(1, 2, 1)], [0.5], backend="numba")
    with pytest.raises(ValueError, match="eps"):
        sweep_units([x], [(0, 2, 1)], [-1.0], backend="numba")
    assert sweep_units([x], [], [0.5], backend="numba") == []
    (a,) = sweep_units([x], [(0, 3, 2)], [0.5, 1.0], backend="numpy")
    assert a.backend == "numpy"
    _same(
        sweep_units([x], [(0, 3, 2)], [0.5, 1.0], backend="numba")[0],
        sweep_histograms(x, 3, 2, [0.5, 1.0], backend="numba"),
    )


def test_measures_tables_identical_to_table():
    rng = np.random.default_rng(3)
    series = [_series(rng, int(rng.integers(40, 200)), 1) for _ in range(3)]
    units = [(s, m, t) for s in range(3) for m, t in ((1, 1), (2, 1), (3, 2))]
    hs = sweep_units(series, units, [0.05, 0.2, 0.5, 1.0, 3.0, 100.0], backend="numba")
    l_mins = [1, 2, 3, 7, 150, 400]  # past the longest line too: none selected, NaN
    for v_min in (1, 2, 5, 300):
        for h, t in zip(hs, measures_tables(hs, l_mins, v_min), strict=True):
            ref = h.table(l_mins, v_min)
            assert list(t) == list(ref)
            for k in ref:
                assert t[k].dtype == ref[k].dtype, k
                np.testing.assert_array_equal(t[k], ref[k], err_msg=k)
    with pytest.raises(ValueError, match="l_min"):
        measures_tables(hs, [0])


def test_unit_runner_cpu_batch_equals_sweep_one():
    from gpuflows.pipelines.rqa_sweep.units import sweep_cpu, sweep_one

    rng = np.random.default_rng(11)
    series = {f"s{i}|x": _series(rng, int(rng.integers(20, 120)), 1 + i % 2) for i in range(4)}
    opts = {"metric": "euclidean", "theiler": 1, "normalize": True}
    got = sweep_cpu(series, 3, 2, [0.1, 0.4, 0.9], **opts)
    assert list(got) == list(series)
    for key, arr in series.items():
        _same(got[key], sweep_one(arr, 3, 2, [0.1, 0.4, 0.9], tile=None, device="cpu", **opts))
