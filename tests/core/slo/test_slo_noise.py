"""Noise-aware regressions and cumulative drift on constructed samples (no Prefect)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gpuflows.core.slo.baseline import BaselineStore, compare_samples, compare_to_baseline
from gpuflows.core.slo.measure import SloMeasurement

DEV = "cpu"


def _m(samples) -> SloMeasurement:
    return SloMeasurement.from_samples("svc", list(map(float, samples)), device=DEV)


def _p50(report):
    return next(d for d in report.metrics if d.name == "p50_ms")


def test_noise_level_change_is_not_a_regression():
    # Two runs of a noisy service (CV 20 %, 10 calls): the medians differ by 12 %, beyond a 10 %
    # tolerance as point figures, but the samples' own spread covers it.
    rng = np.random.default_rng(7)
    base = 100 * rng.lognormal(0, 0.2, 10)
    cur = base[::-1] * 1.12 * rng.lognormal(0, 0.02, 10)
    r = compare_to_baseline(_m(cur), _m(base), 0.10)
    d = _p50(r)
    assert d.relative_change > 0.10  # a point comparison would call this a regression
    assert d.method == "samples" and d.ci_low < 1.10 < d.ci_high
    assert not r.regressed, r.reason


def test_real_regression_is_called_with_its_ci():
    rng = np.random.default_rng(8)
    base = 100 * rng.lognormal(0, 0.05, 30)
    cur = 130 * rng.lognormal(0, 0.05, 30)
    r = compare_to_baseline(_m(cur), _m(base), 0.10)
    d = _p50(r)
    assert r.regressed and d.regressed and d.ci_low > 1.10
    assert d.p_value < 1e-6
    # the p-value is SciPy's one-sided Mann-Whitney U
    assert d.p_value == pytest.approx(stats.mannwhitneyu(cur, base, alternative="greater").pvalue)
    # throughput (a whole-run rate) regresses too, its CI widened by the latency noise
    thr = next(x for x in r.metrics if x.name == "throughput_rps")
    assert thr.regressed and thr.method == "samples" and thr.ci_high < 0.90


def test_compare_samples_ci_covers_the_true_ratio_and_checks_input():
    rng = np.random.default_rng(9)
    c = compare_samples(50 * rng.lognormal(0, 0.1, 200), 40 * rng.lognormal(0, 0.1, 200))
    assert c.ci_low < 1.25 < c.ci_high and c.ci_high - c.ci_low < 0.1
    assert c.differs(0.05) > 0.15
    same = compare_samples([5.0, 5.0, 5.0], [5.0, 5.0])
    assert (same.ci_low, same.ci_high, same.differs(0.0)) == (1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="statistic"):
        compare_samples([1, 2], [1, 2], "p42")
    with pytest.raises(ValueError, match=">= 2 samples"):
        compare_samples([1], [1, 2])


def test_ten_runs_each_4pct_slower_are_caught_by_the_first_baseline(tmp_path):
    store = BaselineStore(tmp_path)
    rng = np.random.default_rng(10)
    shape = rng.lognormal(0, 0.01, 50)
    store.save(_m(100 * shape))
    run_to_run, drifted_at = [], None
    for k in range(1, 11):
        m = _m(100 * 1.04**k * shape[rng.permutation(50)])
        r = compare_to_baseline(m, store.load("svc", DEV), 0.05)
        run_to_run.append(r.regressed)
        drift = compare_to_baseline(m, store.load_first("svc", DEV), 0.05)
        if drift.regressed and drifted_at is None:
            drifted_at = k
        store.save(m)  # the old ratchet: every non-regressed run became the baseline
    assert not any(run_to_run), "each step is inside the 5 % tolerance"
    assert drifted_at is not None and drifted_at <= 3, drifted_at
    assert store.load_first("svc", DEV).latency.p50_ms == pytest.approx(
        _m(100 * shape).latency.p50_ms
    )
