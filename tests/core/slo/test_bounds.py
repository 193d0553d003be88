"""Distribution-free percentile bounds and the Clopper-Pearson error bound, against SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gpuflows.core.slo import bounds


@pytest.mark.parametrize("errors, n", [(0, 10), (0, 372), (0, 373), (3, 400), (7, 50), (50, 50)])
def test_clopper_pearson_matches_scipy(errors, n):
    ours = bounds.clopper_pearson_upper(errors, n)
    # one-sided 95 % upper bound = upper end of the two-sided 90 % exact interval
    ref = stats.binomtest(errors, n).proportion_ci(confidence_level=0.90, method="exact").high
    assert ours == pytest.approx(ref, abs=1e-12)


def test_zero_errors_need_373_requests_for_08_percent():
    assert bounds.clopper_pearson_upper(0, 372) > 0.008
    assert bounds.clopper_pearson_upper(0, 373) < 0.008
    assert bounds.clopper_pearson_upper(0, 100) == pytest.approx(1 - 0.05 ** (1 / 100))


def test_p99_needs_299_samples():
    assert bounds.min_samples(0.99) == bounds.P99_MIN_N == 299
    assert bounds.order_statistic_rank(298, 0.99) is None
    assert bounds.order_statistic_rank(299, 0.99) == 299
    b = bounds.latency_bounds(np.arange(1.0, 299.0), failed=0)
    assert not b.percentiles["p99"].reported and b.percentiles["p99"].upper_ms is None
    b = bounds.latency_bounds(np.arange(1.0, 300.0), failed=0)
    assert b.percentiles["p99"].reported and b.percentiles["p99"].upper_ms == 299.0


@pytest.mark.parametrize("n, q", [(20, 0.5), (100, 0.95), (400, 0.95), (500, 0.99)])
def test_rank_is_the_smallest_with_binomial_coverage(n, q):
    k = bounds.order_statistic_rank(n, q)
    assert stats.binom.cdf(k - 1, n, q) >= 0.95
    assert k == 1 or stats.binom.cdf(k - 2, n, q) < 0.95


def test_bound_covers_the_true_quantile():
    """On exponential latencies the bound is above the true p95 in at least ~95 % of samples."""
    rng = np.random.default_rng(0)
    true_p95 = -math.log(0.05) * 10.0
    hits = [
        bounds.percentile_upper_bound(rng.exponential(10.0, 200), 0.95) >= true_p95
        for _ in range(2000)
    ]
    assert np.mean(hits) >= 0.94


def test_failed_requests_are_breaches_not_missing():
    ok = np.full(95, 10.0)
    b = bounds.latency_bounds(ok, failed=5)
    assert b.n == 100 and b.error_rate == 0.05
    assert b.percentiles["p95"].upper_ms == math.inf  # the bound lands on a failed request
    assert b.percentiles["p50"].upper_ms == 10.0
    assert b.error_rate_upper == pytest.approx(bounds.clopper_pearson_upper(5, 100))
