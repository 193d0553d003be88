"""Production baseline: the re-ranker served in two scenarios, timed by a real clock.

A request is one query (its text, encoded by a real MiniLM forward pass, never from a cache)
with its candidate list (caption embeddings precomputed, as an index would hold them; visual
vectors from the dataset); the answer is the list's scores. As in MLPerf's inference rules:

* ``offline``: every request available at once, served in batches of ``batch_size``:
  throughput (queries/s) over the timed batches.
* ``server``: Poisson arrivals at ``rate_qps`` (exponential gaps from a seeded generator: the
  *schedule* is random, every latency is measured); one worker serves whatever has arrived, up
  to ``batch_size`` per forward pass; latency = answer time - arrival time.

Timing: ``time.perf_counter`` after a device synchronise; ``warmup`` requests served first and
not timed. A request fails when scoring raises, takes longer than ``timeout_ms``, or answers
invalid output (wrong shape, NaN): failures count in the error rate and as +inf latencies
(breaches) in the percentiles (:mod:`gpuflows.core.slo.bounds`), never as missing samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.hardware.timing import device_sync
from gpuflows.core.slo.bounds import LatencyBounds, latency_bounds
from gpuflows.models.reranker import Reranker
from gpuflows.pipelines.batch_eval import metrics
from gpuflows.pipelines.batch_eval.scoring import Lists

ScoreFn = Callable[[list[str], np.ndarray, np.ndarray], np.ndarray]


def model_score_fn(model: Reranker) -> ScoreFn:
    """Score a batch: encode the query texts (a real forward pass, no cache), run the head."""

    def fn(texts: list[str], t: np.ndarray, v: np.ndarray) -> np.ndarray:
        q = model.query_embeddings(texts, cached=False)
        return model.score(q, t, v)

    return fn


class ScenarioResult(BaseModel):
    scenario: str
    device: str
    batch_size: int
    requests: int
    failed: int
    error_types: dict[str, int]
    warmup: int
    latencies_ms: list[float] = Field(description="Successful requests, in request order.")
    bounds: LatencyBounds
    wall_s: float
    throughput_qps: float
    rate_qps: float | None = None
    ndcg10: float | None = Field(None, description="Mean over answered requests.")
    compliance10: float | None = None


def _serve(fn: ScoreFn, lists: Lists, rows: np.ndarray, timeout_ms: float, sync) -> tuple:
    """One forward pass over ``rows``; (scores or None, error type or None, seconds)."""
    sync()
    t0 = time.perf_counter()
    try:
        s = fn([lists.texts[i] for i in rows], lists.t[rows], lists.v[rows])
        sync()
        dt = time.perf_counter() - t0
        s = np.asarray(s, dtype=np.float64)
        if s.shape != lists.rel[rows].shape or not np.isfinite(s[lists.mask[rows]]).all():
            return None, "invalid_output", dt
        if dt * 1e3 > timeout_ms:
            return None, "timeout", dt
        return s, None, dt
    except Exception as exc:  # noqa: BLE001 - a failed request is counted, never hidden
        return None, type(exc).__name__, time.perf_counter() - t0


def _finish(
    name, device, bs, n, lat, fails, warmup, wall, lists, rows, scores, rate=None
) -> ScenarioResult:
    errs: dict[str, int] = {}
    for f in fails:
        errs[f] = errs.get(f, 0) + 1
    answered = [i for i, s in enumerate(scores) if s is not None]
    ndcg = comp = None
    if answered:
        S = np.stack([scores[i] for i in answered])
        R = rows[answered]
        m = lists.mask[R]
        S = np.where(m, S, -np.inf)
        ndcg = float(metrics.ndcg_at(S, lists.rel[R], m).mean())
        comp = float(metrics.compliance_at(S, lists.ok[R], m).mean())
    return ScenarioResult(
        scenario=name,
        device=device,
        batch_size=bs,
        requests=n,
        failed=len(fails),
        error_types=errs,
        warmup=warmup,
        latencies_ms=[x for x in lat if np.isfinite(x)],
        bounds=latency_bounds([x for x in lat if np.isfinite(x)], len(fails)),
        wall_s=wall,
        throughput_qps=len(answered) / wall if wall > 0 else 0.0,
        rate_qps=rate,
        ndcg10=ndcg,
        compliance10=comp,
    )


def request_rows(lists: Lists, n: int) -> np.ndarray:
    """The production requests: the lists' queries in order, cycled to ``n`` requests."""
    return np.arange(n) % len(lists)


def offline(
    fn: ScoreFn,
    lists: Lists,
    *,
    n_requests: int,
    batch_size: int = 32,
    warmup: int = 3,
    timeout_ms: float = 2000.0,
    device: str = "cpu",
) -> ScenarioResult:
    """All requests at once, in batches; per-request latency = its batch's time."""
    sync = device_sync(device)
    for i in range(warmup):
        _serve(fn, lists, request_rows(lists, batch_size) + i, timeout_ms, sync)
    rows = request_rows(lists, n_requests)
    lat, fails, scores = [], [], []
    t0 = time.perf_counter()
    for i in range(0, n_requests, batch_size):
        b = rows[i : i + batch_size]
        s, err, dt = _serve(fn, lists, b, timeout_ms * len(b), sync)
        for j in range(len(b)):
            lat.append(dt * 1e3 if err is None else np.inf)
            scores.append(None if err else s[j])
            if err:
                fails.append(err)
    wall = time.perf_counter() - t0
    return _finish(
        "offline", device, batch_size, n_requests, lat, fails, warmup, wall, lists, rows, scores
    )


def server(
    fn: ScoreFn,
    lists: Lists,
    *,
    n_requests: int,
    rate_qps: float,
    batch_size: int = 32,
    warmup: int = 3,
    timeout_ms: float = 2000.0,
    device: str = "cpu",
    seed: int = 0,
) -> ScenarioResult:
    """Poisson arrivals at ``rate_qps``; latency from arrival to answer (queueing included)."""
    sync = device_sync(device)
    for i in range(warmup):
        _serve(fn, lists, np.array([i % len(lists)]), timeout_ms, sync)
    rows = request_rows(lists, n_requests)
    gaps = np.random.default_rng([seed, 23]).exponential(1.0 / rate_qps, n_requests)
    arrivals = np.cumsum(gaps)
    lat = [np.inf] * n_requests
    scores: list[Any] = [None] * n_requests
    fails: list[str] = []
    start = time.perf_counter()
    nxt = 0
    while nxt < n_requests:
        now = time.perf_counter() - start
        if arrivals[nxt] > now:
            time.sleep(arrivals[nxt] - now)
            now = time.perf_counter() - start
        hi = min(int(np.searchsorted(arrivals, now, side="right")), nxt + batch_size)
        idx = np.arange(nxt, max(hi, nxt + 1))
        s, err, _ = _serve(fn, lists, rows[idx], timeout_ms, sync)
        done = time.perf_counter() - start
        for j, r in enumerate(idx):
            waited = (done - arrivals[r]) * 1e3
            if err is None and waited > timeout_ms:
                fails.append("timeout")
            elif err is not None:
                fails.append(err)
            else:
                lat[r], scores[r] = waited, s[j]
        nxt = int(idx[-1]) + 1
    wall = time.perf_counter() - start
    return _finish(
        "server",
        device,
        batch_size,
        n_requests,
        lat,
        fails,
        warmup,
        wall,
        lists,
        rows,
        scores,
        rate=rate_qps,
    )


class ComplianceGain(BaseModel):
    model: float
    text_only: float
    gain: float
    ci_low: float
    ci_high: float
    n: int


def compliance_gain(
    model: Reranker, text_model: Reranker, lists: Lists, *, n_boot: int, seed: int
) -> ComplianceGain:
    """compliance@10 of the model minus the text-only ranker's, per query, bootstrap 95 % CI."""
    from gpuflows.pipelines.batch_eval.scoring import per_query

    a = per_query(model, lists)["compliance10"]
    b = per_query(text_model, lists)["compliance10"]
    d = a - b
    if np.ptp(d) == 0:
        lo = hi = float(d[0])
    else:
        ci = stats.bootstrap(
            (d,), np.mean, n_resamples=n_boot, method="percentile", rng=np.random.default_rng(seed)
        ).confidence_interval
        lo, hi = float(ci.low), float(ci.high)
    return ComplianceGain(
        model=float(a.mean()),
        text_only=float(b.mean()),
        gain=float(d.mean()),
        ci_low=lo,
        ci_high=hi,
        n=len(d),
    )


def slo_checks(
    srv: ScenarioResult,
    gain: ComplianceGain,
    *,
    p95_ms_max: float,
    error_rate_max: float,
    gain_min: float,
) -> list[CheckResult]:
    """The seed's SLO policy, each checked on its confidence bound."""
    b = srv.bounds
    p95 = b.percentiles["p95"].upper_ms
    n_needed = int(np.ceil(np.log(0.05) / np.log(1 - error_rate_max)))
    return [
        CheckResult(
            name="slo_p95_latency",
            passed=p95 is not None and p95 < p95_ms_max,
            numbers={"p95_upper_ms": p95, "max_ms": p95_ms_max, "n": b.n},
            reason=f"95 % upper bound of p95 {_ms(p95)} vs < {p95_ms_max:g} ms over {b.n} "
            f"requests ({b.failed} failed, counted as breaches)",
        ),
        CheckResult(
            name="slo_error_rate",
            passed=b.error_rate_upper < error_rate_max,
            numbers={"errors": b.failed, "n": b.n, "upper": b.error_rate_upper},
            reason=f"Clopper-Pearson 95 % upper bound {b.error_rate_upper:.2%} vs < "
            f"{error_rate_max:.2%} ({b.failed}/{b.n} failed"
            + (f"; {n_needed} error-free requests could show it)" if b.n < n_needed else ")"),
        ),
        CheckResult(
            name="slo_compliance_gain",
            passed=gain.ci_low >= gain_min,
            numbers={"gain": gain.gain, "ci_low": gain.ci_low, "min": gain_min},
            reason=f"compliance@10 {gain.model:.3f} vs text-only {gain.text_only:.3f}: gain "
            f"{gain.gain:+.3f}, 95 % CI low {gain.ci_low:+.3f} vs >= {gain_min:+.3f}",
        ),
    ]


def _ms(v: float | None) -> str:
    return "n/a (too few requests)" if v is None else f"{v:.1f} ms"


def latency_regressed(
    current: list[float], baseline: list[float], *, tolerance: float = 0.10, alpha: float = 0.01
) -> tuple[bool, dict[str, float]]:
    """Noise-aware regression on raw samples: one-sided Mann-Whitney U (current slower) with
    p < alpha *and* a median slower by more than ``tolerance``."""
    u = stats.mannwhitneyu(current, baseline, alternative="greater")
    ratio = float(np.median(current) / np.median(baseline))
    return bool(u.pvalue < alpha and ratio > 1 + tolerance), {
        "p_value": float(u.pvalue),
        "median_ratio": ratio,
    }
