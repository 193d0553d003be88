"""Group statistics (gpuflows.pipelines.rqa_sweep.stats) against SciPy, brute force and a hand
example."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from gpuflows.core.faults import InputError
from gpuflows.pipelines.rqa_sweep import stats as rs

stats = pytest.importorskip("scipy.stats")

TOL = 1e-12


def _samples(rng: np.random.Generator, k: int, tied: bool) -> list[np.ndarray]:
    out = []
    for _ in range(k):
        n = int(rng.integers(1, 30))
        x = rng.normal(rng.normal(0, 0.5), 1.0, size=n)
        out.append(np.round(x, 1) if tied else x)
    return out


@pytest.mark.parametrize("tied", [False, True])
def test_kruskal_wallis_matches_scipy(tied):
    rng = np.random.default_rng(3)
    for _ in range(150):
        groups = _samples(rng, int(rng.integers(2, 6)), tied)
        if np.unique(np.concatenate(groups)).size < 2:
            continue
        ours = rs.kruskal_wallis(groups)
        ref = stats.kruskal(*groups)
        assert ours["H"] == pytest.approx(ref.statistic, rel=TOL, abs=TOL)
        assert ours["p"] == pytest.approx(ref.pvalue, rel=TOL, abs=TOL)
        n = sum(g.size for g in groups)
        assert ours["df"] == len(groups) - 1 and ours["n"] == n
        assert ours["epsilon_squared"] == pytest.approx(ours["H"] / (n - 1), rel=TOL)


def test_epsilon_squared_hand_example():
    # ranks: a = {1, 2}, b = {3, 4}, c = {5, 6}; n = 6, no ties
    # H = 12 / (6 * 7) * (3^2/2 + 7^2/2 + 11^2/2) - 3 * 7 = (12/42) * 89.5 - 21 = 32/7
    # eps^2 = H / ((n^2 - 1) / (n + 1)) = (32/7) / (35/7) = 32/35
    res = rs.kruskal_wallis({"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    assert res["H"] == pytest.approx(32 / 7, rel=TOL)
    assert res["epsilon_squared"] == pytest.approx(32 / 35, rel=TOL)
    assert res["p"] == pytest.approx(np.exp(-16 / 7), rel=TOL)  # chi^2 with 2 df: exp(-H/2)


def test_kruskal_wallis_nan_and_degenerate():
    res = rs.kruskal_wallis([[1.0, np.nan, 2.0], [3.0, 4.0], [np.nan]])
    ref = stats.kruskal([1.0, 2.0], [3.0, 4.0])
    assert res["H"] == pytest.approx(ref.statistic, rel=TOL) and res["df"] == 1 and res["n"] == 4
    constant = rs.kruskal_wallis([[2.0, 2.0], [2.0], [2.0, 2.0]])
    assert np.isnan(constant["H"]) and np.isnan(constant["p"]) and constant["n"] == 5
    one_group = rs.kruskal_wallis([[1.0, 2.0], [np.nan]])
    assert np.isnan(one_group["p"]) and one_group["df"] == 0
    with_inf = rs.kruskal_wallis([[1.0, np.inf], [0.5, 2.0, np.inf]])
    assert with_inf["H"] == pytest.approx(stats.kruskal([1, np.inf], [0.5, 2, np.inf]).statistic)


@pytest.mark.parametrize("tied", [False, True])
def test_mann_whitney_and_cliffs_delta(tied):
    rng = np.random.default_rng(5)
    for _ in range(150):
        a, b = _samples(rng, 2, tied)
        ours = rs.mann_whitney(a, b)
        ref = stats.mannwhitneyu(a, b, alternative="two-sided")
        assert ours["U"] == ref.statistic and ours["p"] == pytest.approx(ref.pvalue, abs=TOL)
        assert (ours["n_a"], ours["n_b"]) == (a.size, b.size)
        brute = np.sign(a[:, None] - b[None, :]).sum() / (a.size * b.size)
        assert rs.cliffs_delta(a, b) == brute
        assert rs.cliffs_delta(a, b) == pytest.approx(2 * ours["U"] / (a.size * b.size) - 1)
    assert rs.mann_whitney([1.0, 2.0], [3.0])["method"] == "exact"
    assert rs.mann_whitney([1.0, 2.0], [2.0])["method"] == "asymptotic"
    assert np.isnan(rs.mann_whitney([np.nan], [1.0])["p"])
    assert rs.cliffs_delta([3.0], [1.0, 2.0]) == 1.0 and np.isnan(rs.cliffs_delta([], [1.0]))


def test_benjamini_hochberg_matches_scipy_and_nan():
    rng = np.random.default_rng(7)
    for size in (1, 2, 5, 50, 400):
        p = rng.uniform(size=size) ** 3
        p[rng.integers(0, size, size=size // 5)] = p[0]  # ties
        assert np.allclose(
            rs.benjamini_hochberg(p),
            stats.false_discovery_control(p, method="bh"),
            rtol=TOL,
            atol=TOL,
        )
    p = rng.uniform(size=40)
    p[[3, 11, 30]] = np.nan
    q = rs.benjamini_hochberg(p)
    finite = ~np.isnan(p)
    assert np.isnan(q[~finite]).all()
    assert np.allclose(q[finite], stats.false_discovery_control(p[finite]), rtol=TOL, atol=TOL)
    order = np.argsort(p[finite])
    assert np.all(np.diff(q[finite][order]) >= 0)  # monotone in p
    assert rs.benjamini_hochberg(p.reshape(8, 5)).shape == (8, 5)
    with pytest.raises(InputError, match="outside"):
        rs.benjamini_hochberg([0.1, 1.5])


def _sweep_frame(rng: np.random.Generator, n_per_group: int) -> pd.DataFrame:
    rows = []
    for m, eps in itertools.product((1, 2), (0.1, 0.2)):
        for g, shift in (("control", 0.0), ("mci", 0.3), ("ad", 0.8)):
            for i in range(n_per_group):
                det = np.nan if rng.random() < 0.25 else rng.normal(shift)
                rows.append(
                    {
                        "m": m,
                        "eps": eps,
                        "group": g,
                        "subject": f"{g}{i}",
                        "RR": rng.normal(shift),
                        "L_max": float(rng.integers(0, 4)),
                        "DET": det,
                        "flat": 1.0,
                        "none": np.nan,
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("n_per_group", [4, 12])
def test_group_statistics_matches_one_test_functions(n_per_group):
    rng = np.random.default_rng(11)
    frame = _sweep_frame(rng, n_per_group)
    metrics = ["RR", "L_max", "DET", "flat", "none"]
    out = rs.group_statistics(frame, metrics, by=["m", "eps"])
    assert len(out) == 4 * len(metrics) * 4  # cells x (1 KW + 3 pairs)
    assert list(out.columns[:4]) == ["m", "eps", "metric", "test"]
    for (m, eps, metric), cell in out.groupby(["m", "eps", "metric"]):
        sub = frame[(frame["m"] == m) & (frame["eps"] == eps)]
        vals = {g: sub.loc[sub["group"] == g, metric].to_numpy() for g in ("control", "mci", "ad")}
        kw = rs.kruskal_wallis(vals)
        row = cell[cell["test"] == "kruskal_wallis"].iloc[0]
        for key, col in (("H", "statistic"), ("p", "p"), ("epsilon_squared", "effect")):
            assert row[col] == pytest.approx(kw[key], rel=TOL, abs=TOL, nan_ok=True)
        assert row["n"] == kw["n"] == sum(row[f"n_{g}"] for g in vals)
        for _, r in cell[cell["test"] == "mann_whitney"].iterrows():
            mw = rs.mann_whitney(vals[r["group_a"]], vals[r["group_b"]])
            assert r["statistic"] == pytest.approx(mw["U"], nan_ok=True)
            assert r["p"] == pytest.approx(mw["p"], rel=TOL, abs=TOL, nan_ok=True)
            assert r["method"] == mw["method"]
            delta = rs.cliffs_delta(vals[r["group_a"]], vals[r["group_b"]])
            assert r["effect"] == pytest.approx(delta, nan_ok=True)
    flat = out[(out["metric"] == "flat") & (out["test"] == "kruskal_wallis")]
    assert flat["p"].isna().all() and (flat["note"] == "all values identical").all()
    none = out[out["metric"] == "none"]
    assert none["p"].isna().all() and (none["n"] == 0).all()
    det = out[(out["metric"] == "DET") & (out["test"] == "kruskal_wallis")]
    assert (det["n"] < 3 * n_per_group).any()  # NaN subjects dropped and counted
    for test in rs.TESTS:
        fam = out[out["test"] == test]
        ok = fam["p"].notna()
        assert np.allclose(fam.loc[ok, "q"], rs.benjamini_hochberg(fam.loc[ok, "p"].to_numpy()))
        assert fam.loc[~ok, "q"].isna().all()


def test_group_statistics_bad_input():
    frame = pd.DataFrame({"group": ["control", "x"], "RR": [0.1, 0.2]})
    with pytest.raises(InputError, match="unknown groups"):
        rs.group_statistics(frame, ["RR"])
    with pytest.raises(InputError, match="not in the frame"):
        rs.group_statistics(frame, ["DET"])
