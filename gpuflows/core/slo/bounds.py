"""Distribution-free upper confidence bounds for SLO checks (no Prefect, SciPy only).

An SLO such as "p95 < 300 ms" or "error rate < 0.8 %" is a claim about the service, not about
one sample; the check is made on a 95 % upper confidence bound of the figure.

* Percentile: with ``n`` samples, the k-th order statistic ``x_(k)`` is a ``confidence`` upper
  bound of the q-quantile when ``P(Binomial(n, q) <= k - 1) >= confidence`` (the number of
  samples below the true quantile is Binomial(n, q)); the smallest such k is used. No
  assumption about the latency distribution is needed. When even ``x_(n)`` does not reach the
  confidence there is no bound: for p99 at 95 % that means ``n < 299`` (``1 - 0.99**n < 0.95``),
  so p99 is only reported from 299 samples on.
* Failed requests are latencies of +inf (a breach), never missing samples: an order statistic
  landing on one makes the bound infinite.
* Error rate: the one-sided Clopper-Pearson (exact binomial) upper bound,
  ``Beta.ppf(confidence, e + 1, n - e)`` (1 when every request failed). With 0 errors it is
  ``1 - (1 - confidence)**(1/n)``: fewer than 373 requests cannot show < 0.8 % at 95 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

P99_MIN_N = 299


def order_statistic_rank(n: int, q: float, confidence: float = 0.95) -> int | None:
    """1-based rank k of the smallest order statistic that bounds the q-quantile from above
    with ``confidence``; None when n samples are too few."""
    if not 0 < q < 1 or not 0 < confidence < 1:
        raise ValueError(f"q={q}, confidence={confidence}: both must lie in (0, 1)")
    if n < 1:
        return None
    ks = np.arange(1, n + 1)
    ok = stats.binom.cdf(ks - 1, n, q) >= confidence
    return int(ks[ok][0]) if ok.any() else None


def min_samples(q: float, confidence: float = 0.95) -> int:
    """Smallest n for which the sample maximum bounds the q-quantile: ``1 - q**n >= confidence``."""
    return math.ceil(math.log(1 - confidence) / math.log(q) - 1e-12)


def percentile_upper_bound(
    samples: Sequence[float], q: float, confidence: float = 0.95
) -> float | None:
    """Distribution-free ``confidence`` upper bound of the q-quantile (None: too few samples).

    ``samples`` may hold +inf for failed requests.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64))
    k = order_statistic_rank(len(x), q, confidence)
    return None if k is None else float(x[k - 1])


def clopper_pearson_upper(errors: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact (Clopper-Pearson) upper bound of a binomial rate."""
    if n < 1 or not 0 <= errors <= n:
        raise ValueError(f"errors={errors}, n={n}: need 0 <= errors <= n and n >= 1")
    if errors == n:
        return 1.0
    return float(stats.beta.ppf(confidence, errors + 1, n - errors))


class PercentileBound(BaseModel):
    q: float
    estimate_ms: float | None = Field(description="Sample percentile (linear); None if hidden.")
    upper_ms: float | None = Field(description="95 % distribution-free upper bound, or None.")
    reported: bool = Field(description="False for p99 below P99_MIN_N samples.")


class LatencyBounds(BaseModel):
    """Percentiles over all requests (failed = +inf), each with its upper bound."""

    n: int
    failed: int
    confidence: float
    percentiles: dict[str, PercentileBound]
    error_rate: float
    error_rate_upper: float


def latency_bounds(
    latencies_ms: Sequence[float],
    failed: int,
    *,
    qs: Sequence[float] = (0.5, 0.95, 0.99),
    confidence: float = 0.95,
) -> LatencyBounds:
    """Bounds of the latency percentiles and the error rate over every request.

    Args:
        latencies_ms: latencies of the requests that succeeded.
        failed: requests that failed (exception, timeout, invalid output): counted as +inf.
    """
    x = np.concatenate([np.asarray(latencies_ms, np.float64), np.full(failed, np.inf)])
    n = len(x)
    if n == 0:
        raise ValueError("no requests: nothing to bound")
    out = {}
    for q in qs:
        name = f"p{round(q * 100):d}"
        shown = not (q >= 0.99 and n < P99_MIN_N)
        est = float(np.percentile(x, q * 100)) if shown and np.isfinite(x).all() else None
        if shown and not np.isfinite(x).all():
            k = math.ceil(q * n)  # nearest-rank with failures in the sample
            est = float(np.sort(x)[k - 1])
        out[name] = PercentileBound(
            q=q,
            estimate_ms=est,
            upper_ms=percentile_upper_bound(x, q, confidence) if shown else None,
            reported=shown,
        )
    return LatencyBounds(
        n=n,
        failed=failed,
        confidence=confidence,
        percentiles=out,
        error_rate=failed / n,
        error_rate_upper=clopper_pearson_upper(failed, n, confidence),
    )
