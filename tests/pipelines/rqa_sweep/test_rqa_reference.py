"""The NumPy RQA reference (gpuflows.pipelines.rqa_sweep.rqa) against pyunicorn 1.0.0, hand counts
and edge cases.

Conventions of pyunicorn 1.0.0 ``RecurrencePlot`` (read from its source) and how we compare:

1. Input precision: pyunicorn stores the series as float32 (``FIELD``), z-scores it in float32,
   then embeds into float64. We therefore z-score in float64, round to float32 once, and give the
   same float32 values to both sides with normalize=False; the embeddings are then identical and
   every float64 distance is bit-identical (pyunicorn accumulates coordinates in column order, as
   we do), so ties at eps resolve the same and the histograms must be equal integer for integer.
2. Regularised ratios: pyunicorn adds 1e-8 to every ratio's denominator (DET, L_mean, LAM, TT and
   ENT's p(l)); we divide exactly and return NaN for 0/0 (pyunicorn returns 0 there). We check
   pyunicorn == num / (den + 1e-8) from *our* integer sums to 1e-12 relative, i.e. the whole
   difference is that convention, and our exact ratios are within 1e-8/den of pyunicorn's.
3. Theiler window: pyunicorn has none; ``diagline_dist`` counts every diagonal k >= 1 of the
   lower triangle and doubles it (= w = 1, both triangles). For w > 1 we zero the band
   |k| < w of pyunicorn's R and compare its diagonal histogram with ours at theiler=w.
4. Same as the issue: strict ``distance < threshold``; RR = sum(R)/N^2 with the line of identity;
   DET's denominator excludes the LOI; vertical lines over whole columns, LOI included;
   L_max = 1 + last non-zero index (0 with no lines). Histograms: pyunicorn's index = length - 1.
5. Embedding: pyunicorn only embeds scalar series; a joint (x, y) embedding is compared by
   passing our (N, 2m) embedding to pyunicorn as a multivariate series without dim/tau.
6. Constant series: pyunicorn z-scores by "subtract mean, divide unless std == 0" in float32; when
   the float32 mean is inexact (e.g. all 0.1) the rounding noise is divided by a tiny std and
   becomes +/-1. We define "constant" as all-values-equal and return zeros.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from gpuflows.pipelines.rqa_sweep import rqa

# pyunicorn is a dev dependency (pyproject's dev extra): without it the exactness suite must
# fail, not silently skip. ALLOW_NO_PYUNICORN=1 says on purpose that it is absent (then skip).
ALLOW_MISSING = "ALLOW_NO_PYUNICORN"
try:
    import pyunicorn.timeseries as pyunicorn_ts
except ImportError as exc:  # pragma: no cover - exercised by test_missing_pyunicorn_fails
    if os.environ.get(ALLOW_MISSING) == "1":
        pytest.skip(
            f"pyunicorn not installed and {ALLOW_MISSING}=1: {exc}", allow_module_level=True
        )
    pytest.fail(
        f"pyunicorn is a dev dependency and failed to import ({exc}): pip install -e '.[dev]' "
        f"(or set {ALLOW_MISSING}=1 to skip the exactness suite on purpose)",
        pytrace=False,
    )
RecurrencePlot = pyunicorn_ts.RecurrencePlot

PYU_DELTA = 1e-8  # pyunicorn's RecurrencePlot._epsilon, added to every ratio denominator


# -- helpers --------------------------------------------------------------------------------------


def _signal(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    e = rng.standard_normal(n)
    if kind == "white":
        return e
    if kind == "ar1":
        x = np.empty(n)
        x[0] = e[0]
        for i in range(1, n):
            x[i] = 0.9 * x[i - 1] + e[i]
        return x
    if kind == "sine":
        return np.sin(2 * np.pi * np.arange(n) / rng.integers(8, 40)) + 0.05 * e
    return np.cumsum(e)  # random walk


def _f32(x: np.ndarray) -> np.ndarray:
    """z-score in float64, round once to float32: the values both implementations then see."""
    return rqa.zscore(x).astype(np.float32)


def _pyu_ratio(num: float, den: float) -> float:
    return num / (den + PYU_DELTA)


def _sums(P: np.ndarray, lo: int) -> tuple[int, int, int]:
    length = np.arange(P.size)
    return int((length * P)[lo:].sum()), int((length * P)[1:].sum()), int(P[lo:].sum())


def _pyu_entropy(P_d: np.ndarray, l_min: int) -> float:
    c = P_d[l_min:]
    c = c[c != 0]
    p = c / float(c.sum() + PYU_DELTA)
    return float(-(p * np.log(p)).sum())


def _assert_matches_pyunicorn(ours: dict, rp, l_min: int, v_min: int) -> None:
    n = ours["N"]
    assert rp.N == n
    pyu_d = np.asarray(rp.diagline_dist(), dtype=np.int64)
    pyu_v = np.asarray(rp.vertline_dist(), dtype=np.int64)
    # histograms: identical integers (pyunicorn index = length - 1; ours has length N+1)
    np.testing.assert_array_equal(ours["P_d"][1:], pyu_d)
    np.testing.assert_array_equal(ours["P_v"][1:], pyu_v)
    assert ours["RR"] == rp.recurrence_rate()
    assert ours["L_max"] == rp.max_diaglength()
    assert ours["V_max"] == rp.max_vertlength()
    d_sel, d_all, d_lines = _sums(ours["P_d"], l_min)
    v_sel, v_all, v_lines = _sums(ours["P_v"], v_min)
    cases = [
        ("DET", rp.determinism(l_min), d_sel, d_all),
        ("L_mean", rp.average_diaglength(l_min), d_sel, d_lines),
        ("LAM", rp.laminarity(v_min), v_sel, v_all),
        ("TT", rp.trapping_time(v_min), v_sel, v_lines),
    ]
    for name, pyu, num, den in cases:
        if den == 0:  # 0/0: NaN here, 0 in pyunicorn (0 / 1e-8)
            assert math.isnan(ours[name]) and pyu == 0.0, name
            continue
        assert ours[name] == num / den, name
        # pyunicorn == our integer sums with its 1e-8 regulariser, to 1e-12 relative ...
        assert pyu == pytest.approx(_pyu_ratio(num, den), rel=1e-12, abs=1e-300), name
        # ... so the raw difference is the regulariser alone: |rel| <= 1e-8 / den
        assert abs(ours[name] - pyu) <= ours[name] * (PYU_DELTA / den) * 1.001 + 1e-300, name
    pyu_ent = rp.diag_entropy(l_min)
    assert pyu_ent == pytest.approx(_pyu_entropy(ours["P_d"], l_min), rel=1e-12, abs=1e-15)
    if d_lines == 0:
        assert math.isnan(ours["ENT"]) and pyu_ent == 0.0
    else:
        assert ours["ENT"] == pytest.approx(pyu_ent, rel=1e-9, abs=1e-7)


def _random_cases(count: int, seed: int = 20240607):
    rng = np.random.default_rng(seed)
    kinds = ("white", "ar1", "sine", "walk")
    for i in range(count):
        kind = kinds[i % 4]
        m, tau = int(rng.integers(1, 7)), int(rng.integers(1, 4))
        n_vec = int(rng.integers(50, 601))
        metric = rqa.METRICS[i % 3]
        x = _f32(_signal(kind, n_vec + (m - 1) * tau, rng))
        # eps: half the time exactly a realised distance (a tie: strict < must exclude it),
        # otherwise a round value; recurrence rates from ~0.5% to ~40%
        dist = rqa.distance_matrix(rqa.embed(x.astype(np.float64), m, tau), metric)
        off = dist[np.triu_indices(dist.shape[0], 1)]
        q = float(rng.uniform(0.005, 0.4))
        eps = float(np.quantile(off[off > 0], q, method="lower"))
        if i % 2:
            eps = float(np.round(eps, 1)) or 0.05
        yield i, kind, x, m, tau, eps, metric, int(rng.integers(2, 5)), int(rng.integers(1, 4))


# -- (a) against pyunicorn on random inputs ----------------------------------------------------


@pytest.mark.parametrize("case", list(_random_cases(48)), ids=lambda c: f"{c[0]}-{c[1]}-{c[6]}")
def test_matches_pyunicorn_random(case):
    _, _, x, m, tau, eps, metric, l_min, v_min = case
    ours = rqa.rqa_metrics(
        x.astype(np.float64), m, tau, eps, l_min, v_min=v_min, metric=metric, normalize=False
    )
    rp = RecurrencePlot(
        x, dim=m, tau=tau, metric=metric, normalize=False, threshold=eps, silence_level=2
    )
    _assert_matches_pyunicorn(ours, rp, l_min, v_min)


@pytest.mark.parametrize("theiler", [2, 3, 7])
def test_theiler_window_matches_pyunicorn_banded_matrix(theiler):
    """pyunicorn has no Theiler window: zeroing |k| < w in its R reproduces our theiler=w."""
    for _, _, x, m, tau, eps, metric, l_min, _ in _random_cases(6, seed=theiler):
        ours = rqa.rqa_metrics(
            x.astype(np.float64),
            m,
            tau,
            eps,
            l_min,
            metric=metric,
            theiler=theiler,
            normalize=False,
        )
        rp = RecurrencePlot(x, dim=m, tau=tau, metric=metric, threshold=eps, silence_level=2)
        i, j = np.indices(rp.R.shape)
        rp.R = np.where(np.abs(i - j) < theiler, 0, rp.R).astype(np.int8)  # before any cache fill
        np.testing.assert_array_equal(ours["P_d"][1:], rp.diagline_dist())
        assert ours["L_max"] == rp.max_diaglength()
        d_sel, d_all, _ = _sums(ours["P_d"], l_min)
        if d_all:
            assert rp.determinism(l_min) == pytest.approx(_pyu_ratio(d_sel, d_all), rel=1e-12)


def test_zscore_matches_pyunicorn_normalize():
    x = _signal("ar1", 500, np.random.default_rng(1)) * 7.0 + 3.0
    pyu = x.astype(np.float32).reshape(-1, 1)
    RecurrencePlot.normalize_time_series(pyu)  # float32, in place
    np.testing.assert_allclose(rqa.zscore(x), pyu[:, 0], atol=1e-5)
    np.testing.assert_allclose(rqa.zscore(x).std(), 1.0, rtol=1e-12)  # population std


def test_joint_embedding_matches_pyunicorn_multivariate():
    rng = np.random.default_rng(5)
    xy = np.column_stack([_f32(_signal("ar1", 300, rng)), _f32(_signal("sine", 300, rng))])
    m, tau, eps = 3, 2, 1.2
    ours = rqa.rqa_metrics(xy.astype(np.float64), m, tau, eps, 2, normalize=False)
    vectors = rqa.embed(xy.astype(np.float64), m, tau).astype(np.float32)  # exact: values are f32
    rp = RecurrencePlot(vectors, metric="euclidean", threshold=eps, silence_level=2)
    _assert_matches_pyunicorn(ours, rp, 2, 2)


# -- (b) hand-checkable cases ------------------------------------------------------------------


def test_hand_count_vertical_and_diagonal():
    # x = [0, 0, 0, 3, 0, 0], m=1, eps=0.5: R_ij = 1 iff x_i == x_j.
    # Rows 0,1,2,4,5 are 1 at columns {0,1,2,4,5}; row 3 only at column 3. sum(R) = 25 + 1 = 26.
    # Columns 0,1,2,4,5 read 1 1 1 0 1 1 -> runs 3 and 2; column 3 -> one run of 1.
    #   P_v = {1: 1, 2: 5, 3: 5}; LAM = (10 + 15) / 26; TT = 25 / 10 = 2.5; V_max = 3.
    # Upper diagonals: k=1 (R01..R45) 1 1 0 0 1 -> 2, 1; k=2: 1 0 1 0 -> 1, 1; k=3: 0 1 1 -> 2;
    #   k=4: 1 1 -> 2; k=5: 1 -> 1.  Upper {1: 4, 2: 3}; both triangles P_d = {1: 8, 2: 6}.
    #   DET(2) = 12 / 20 = 0.6; L_mean = 12 / 6 = 2; L_max = 2; DIV = 0.5; ENT(2) = 0 (one length);
    #   ENT(1) = -(8/14 ln 8/14 + 6/14 ln 6/14).
    r = rqa.rqa_metrics([0, 0, 0, 3, 0, 0], 1, 1, 0.5, 2, normalize=False)
    assert r["N"] == 6 and r["RR"] == 26 / 36
    assert r["P_v"].tolist() == [0, 1, 5, 5, 0, 0, 0]
    assert r["P_d"].tolist() == [0, 8, 6, 0, 0, 0, 0]
    assert (r["LAM"], r["TT"], r["V_max"]) == (25 / 26, 2.5, 3)
    assert (r["DET"], r["L_mean"], r["L_max"], r["DIV"], r["ENT"]) == (0.6, 2.0, 2, 0.5, 0.0)
    r1 = rqa.rqa_metrics([0, 0, 0, 3, 0, 0], 1, 1, 0.5, 1, normalize=False)
    assert r1["ENT"] == pytest.approx(-(8 / 14 * math.log(8 / 14) + 6 / 14 * math.log(6 / 14)))
    assert r1["DET"] == 1.0
    # Theiler w=2 drops k = +/-1 (runs 2, 1 each side): P_d = {1: 6, 2: 4}; DET = 8 / 14.
    r2 = rqa.rqa_metrics([0, 0, 0, 3, 0, 0], 1, 1, 0.5, 2, theiler=2, normalize=False)
    assert r2["P_d"].tolist() == [0, 6, 4, 0, 0, 0, 0] and r2["DET"] == 8 / 14
    # Theiler w=0 adds the line of identity, one run of 6.
    r0 = rqa.rqa_metrics([0, 0, 0, 3, 0, 0], 1, 1, 0.5, 2, theiler=0, normalize=False)
    assert r0["P_d"].tolist() == [0, 8, 6, 0, 0, 0, 1] and r0["L_max"] == 6


def test_hand_count_alternating():
    # x = [0, 1, 0, 1, 0, 5], eps=0.5: zeros at {0,2,4}, ones at {1,3}, 5 alone. sum(R) = 9+4+1.
    # Diagonals: k=2 (R02,R13,R24,R35) = 1 1 1 0 -> 3; k=4 (R04,R15) = 1 0 -> 1; others 0.
    #   P_d = {1: 2, 3: 2}; DET(2) = 6/8; L_mean = 3. Every column alternates: P_v = {1: 14},
    #   so LAM = 0 and TT = 0/0 = NaN.
    r = rqa.rqa_metrics([0, 1, 0, 1, 0, 5], 1, 1, 0.5, 2, normalize=False)
    assert r["RR"] == 14 / 36 and r["P_d"].tolist() == [0, 2, 0, 2, 0, 0, 0]
    assert (r["DET"], r["L_mean"], r["L_max"]) == (0.75, 3.0, 3)
    assert r["P_v"].tolist() == [0, 14, 0, 0, 0, 0, 0]
    assert r["LAM"] == 0.0 and math.isnan(r["TT"]) and r["V_max"] == 1


def test_strict_threshold_and_metrics():
    # v0 = (0, 0), v1 = (3, 4): euclidean 5, supremum 4, manhattan 7; distance == eps is NOT a
    # recurrence (strict <).
    v = np.array([[0.0, 0.0], [3.0, 4.0]])
    for metric, d in (("euclidean", 5.0), ("supremum", 4.0), ("manhattan", 7.0)):
        assert rqa.distance_matrix(v, metric)[0, 1] == d
        assert not rqa.recurrence_matrix(v, d, metric)[0, 1]
        assert rqa.recurrence_matrix(v, np.nextafter(d, np.inf), metric)[0, 1]


# -- (c) edge cases -------------------------------------------------------------------------------


def test_tiny_eps_only_line_of_identity():
    x = np.random.default_rng(2).standard_normal(200)
    r = rqa.rqa_metrics(x, 2, 1, 1e-12, 2)
    n = r["N"]
    assert n == 199 and r["RR"] == 1 / n
    assert not r["P_d"].any() and r["L_max"] == 0 and r["DIV"] == math.inf
    assert math.isnan(r["DET"]) and math.isnan(r["L_mean"]) and math.isnan(r["ENT"])  # 0/0
    assert r["P_v"][1] == n and r["LAM"] == 0.0 and math.isnan(r["TT"]) and r["V_max"] == 1
    rp = RecurrencePlot(_f32(x), dim=2, tau=1, threshold=1e-12, silence_level=2)
    assert rp.max_diaglength() == 0 and rp.determinism(2) == 0.0  # pyunicorn: 0 / (0 + 1e-8)


@pytest.mark.parametrize("theiler", [1, 4])
def test_huge_eps_everything_recurrent(theiler):
    x = np.random.default_rng(3).standard_normal(120)
    r = rqa.rqa_metrics(x, 3, 2, 1e6, 3, theiler=theiler)
    n = r["N"]
    # every diagonal |k| >= w is one full line of length N - |k|, twice (both triangles)
    expected = np.zeros(n + 1, dtype=np.int64)
    expected[1 : n - theiler + 1] = 2
    np.testing.assert_array_equal(r["P_d"], expected)
    assert r["L_max"] == n - theiler and r["DIV"] == 1 / (n - theiler) and r["RR"] == 1.0
    total = (n - theiler) * (n - theiler + 1)  # sum_{l=1}^{N-w} 2 l
    assert r["DET"] == (total - 2 * 1 - 2 * 2) / total  # lengths 1 and 2 are below l_min=3
    assert r["ENT"] == pytest.approx(math.log(n - theiler - 2))  # uniform over l = 3..N-w
    assert r["P_v"][n] == n and r["LAM"] == 1.0 and r["TT"] == n and r["V_max"] == n


def test_constant_series():
    for c in (0.1, 3.0):
        x = np.full(80, c)
        np.testing.assert_array_equal(rqa.zscore(x), np.zeros(80))  # exactly zeros, no noise
        r = rqa.rqa_metrics(x, 2, 1, 0.01, 2)  # all vectors equal: distance 0 < any eps
        assert r["RR"] == 1.0 and r["L_max"] == r["N"] - 1 and r["V_max"] == r["N"]
    # pyunicorn agrees when its float32 mean is exact (3.0), not for 0.1 (docstring point 6)
    rp = RecurrencePlot(
        np.full(80, 3.0), dim=2, tau=1, normalize=True, threshold=0.01, silence_level=2
    )
    ours = rqa.rqa_metrics(np.full(80, 3.0), 2, 1, 0.01, 2)
    _assert_matches_pyunicorn(ours, rp, 2, 2)


def test_periodic_sine_lines_at_multiples_of_period():
    # sin with period p embedded with m=2, tau=p/4 is a circle of radius sqrt(2) (z-scored);
    # one sample of phase is a chord 2 sqrt(2) sin(pi/p) = 0.44 > eps, so R_ij = 1 exactly when
    # p divides j - i: full diagonals at k = +/-p, +/-2p, ..., DET = 1, L_max = N - p.
    p, n = 20, 400
    x = np.sin(2 * np.pi * np.arange(n) / p)
    r = rqa.rqa_metrics(x, 2, p // 4, 0.1, 2)
    N = r["N"]
    lengths = [N - j * p for j in range(1, N // p + 1) if N - j * p >= 1]
    expected = np.zeros(N + 1, dtype=np.int64)
    expected[lengths] = 2
    np.testing.assert_array_equal(r["P_d"], expected)
    assert r["DET"] == 1.0 and r["L_max"] == N - p
    R = rqa.recurrence_matrix(rqa.embed(rqa.zscore(x), 2, p // 4), 0.1)
    i, j = np.indices(R.shape)
    np.testing.assert_array_equal(R, (j - i) % p == 0)


def test_white_noise_low_determinism():
    x = np.random.default_rng(4).standard_normal(500)
    r = rqa.rqa_metrics(x, 1, 1, 0.1, 2)  # RR about 0.056 for N(0,1) at eps 0.1
    assert 0.03 < r["RR"] < 0.08
    assert r["DET"] < 0.2 and r["L_max"] < 10
    # contrast: a noisy sine (period 25) unfolded with m=2, tau=6 is almost all diagonal lines
    noisy_sine = np.sin(2 * np.pi * np.arange(500) / 25) + 0.01 * x
    sine = rqa.rqa_metrics(noisy_sine, 2, 6, 0.1, 2)
    assert sine["DET"] > 0.95 > 0.2 > r["DET"]


def test_metrics_from_histograms_reads_every_l_min():
    x = _signal("ar1", 300, np.random.default_rng(6))
    base = rqa.rqa_metrics(x, 3, 1, 0.8, 2)
    for l_min in range(1, 6):
        for v_min in range(1, 4):
            full = rqa.rqa_metrics(x, 3, 1, 0.8, l_min, v_min=v_min)
            n_rec = round(base["RR"] * base["N"] ** 2)
            fast = rqa.metrics_from_histograms(
                base["P_d"], base["P_v"], base["N"], n_rec, l_min, v_min
            )
            for key, value in fast.items():
                assert value == full[key] or (math.isnan(value) and math.isnan(full[key])), key


# -- (d) bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"series": [0.0, np.nan, 1.0, 2.0]}, "series"),
        ({"series": [0.0, np.inf, 1.0, 2.0]}, "series"),
        ({"series": np.zeros((4, 2, 2))}, "series"),
        ({"series": ["a", "b", "c", "d"]}, "series"),
        ({"m": 3, "tau": 2}, "series"),  # 5 samples < (3-1)*2 + 2 = 6
        ({"m": 0}, "m"),
        ({"m": 2.5}, "m"),
        ({"tau": 0}, "tau"),
        ({"eps": 0.0}, "eps"),
        ({"eps": -1.0}, "eps"),
        ({"eps": float("nan")}, "eps"),
        ({"l_min": 0}, "l_min"),
        ({"v_min": 0}, "v_min"),
        ({"theiler": -1}, "theiler"),
        ({"metric": "chebyshev"}, "metric"),
    ],
)
def test_bad_inputs_name_the_field(kwargs, field):
    args = {"series": [0.0, 1.0, 2.0, 1.0, 0.0], "m": 1, "tau": 1, "eps": 0.5, "l_min": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{field}\b"):
        rqa.rqa_metrics(**args)


# -- (e) joint (x, y) embedding ---------------------------------------------------------------


def test_joint_embedding_is_concatenation():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal(50), rng.standard_normal(50)
    m, tau = 4, 3
    joint = rqa.embed(np.column_stack([x, y]), m, tau)
    assert joint.shape == (50 - (m - 1) * tau, 2 * m)
    np.testing.assert_array_equal(joint, np.hstack([rqa.embed(x, m, tau), rqa.embed(y, m, tau)]))
    np.testing.assert_array_equal(rqa.embed(x, m, tau)[5], x[[5, 8, 11, 14]])
    # normalize=True z-scores x and y separately before embedding
    r = rqa.rqa_metrics(np.column_stack([x * 9, y + 4]), m, tau, 2.0, 2)
    R = rqa.recurrence_matrix(
        np.hstack([rqa.embed(rqa.zscore(x), m, tau), rqa.embed(rqa.zscore(y), m, tau)]), 2.0
    )
    np.testing.assert_array_equal(r["P_d"], rqa.diagonal_histogram(R))
    np.testing.assert_array_equal(r["P_v"], rqa.vertical_histogram(R))


def test_missing_pyunicorn_fails_unless_allowed(tmp_path):
    """A run where pyunicorn cannot be imported fails this module, unless ALLOW_NO_PYUNICORN=1."""
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "pyunicorn").mkdir()
    (tmp_path / "pyunicorn" / "__init__.py").write_text("raise ImportError('hidden for the test')")
    here = Path(__file__).resolve()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{here.parents[3]}"}
    env.pop(ALLOW_MISSING, None)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(here),
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "hand_count_never_matches",
        "--no-header",
    ]
    failed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and "pyunicorn is a dev dependency" in failed.stdout
    allowed = subprocess.run(
        cmd, env={**env, ALLOW_MISSING: "1"}, capture_output=True, text=True, timeout=300
    )
    assert allowed.returncode in (0, 5) and "skipped" in allowed.stdout, allowed.stdout
