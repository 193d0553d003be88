"""Serving scenarios: real timings, failures counted as breaches, SLO checks on bounds."""

from __future__ import annotations

import time

import numpy as np

from gpuflows.models.reranker import text_only
from gpuflows.pipelines.batch_eval import serving


def test_offline_and_server_measure_the_model(world):
    fn = serving.model_score_fn(world["model"])
    off = serving.offline(fn, world["test"], n_requests=40, batch_size=16, warmup=1)
    assert off.requests == 40 and off.failed == 0 and len(off.latencies_ms) == 40
    assert off.throughput_qps > 0 and all(x > 0 for x in off.latencies_ms)
    # the served answers are the model's: same nDCG as scoring the lists directly
    direct = serving.compliance_gain(
        world["model"], text_only(world["model"].encoder), world["test"], n_boot=200, seed=0
    )
    assert abs(off.compliance10 - direct.model) < 1e-9
    srv = serving.server(
        fn, world["test"], n_requests=20, rate_qps=20, batch_size=8, warmup=1, timeout_ms=6e5
    )
    assert srv.requests == 20 and srv.failed == 0 and srv.bounds.n == 20
    assert len(srv.latencies_ms) == 20 and srv.wall_s >= 0.5  # Poisson arrivals over ~1 s
    assert not srv.bounds.percentiles["p99"].reported  # 20 < 299


def test_failures_and_timeouts_are_breaches(world):
    calls = {"n": 0}
    good = serving.model_score_fn(world["model"])

    def flaky(texts, t, v):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise RuntimeError("backend down")
        if calls["n"] % 3 == 1:
            return np.full(t.shape[:2], np.nan)  # invalid output
        return good(texts, t, v)

    res = serving.offline(flaky, world["test"], n_requests=30, batch_size=5, warmup=0)
    assert res.failed == 20 and res.error_types == {"RuntimeError": 10, "invalid_output": 10}
    assert res.bounds.n == 30 and res.bounds.error_rate == 20 / 30

    def slow(texts, t, v):
        time.sleep(0.03)
        return good(texts, t, v)

    res = serving.server(slow, world["test"], n_requests=6, rate_qps=100, timeout_ms=1.0, warmup=0)
    assert res.failed == 6 and res.error_types == {"timeout": 6}
    gain = serving.ComplianceGain(
        model=0.6, text_only=0.4, gain=0.2, ci_low=0.15, ci_high=0.25, n=6
    )
    checks = {
        c.name: c
        for c in serving.slo_checks(res, gain, p95_ms_max=300, error_rate_max=0.008, gain_min=0.1)
    }
    assert not checks["slo_p95_latency"].passed and not checks["slo_error_rate"].passed
    assert checks["slo_compliance_gain"].passed
    assert "373 error-free requests" in checks["slo_error_rate"].reason


def test_latency_regression_needs_more_than_noise():
    rng = np.random.default_rng(0)
    base = rng.lognormal(3.0, 0.2, 300).tolist()
    same = rng.lognormal(3.0, 0.2, 300).tolist()
    slower = (np.asarray(rng.lognormal(3.0, 0.2, 300)) * 1.3).tolist()
    assert not serving.latency_regressed(same, base)[0]
    regressed, nums = serving.latency_regressed(slower, base)
    assert regressed and nums["median_ratio"] > 1.2


def test_cotrr_lite_is_measured_and_checked(world):
    from gpuflows.pipelines.batch_eval import lite

    res = lite.run_lite(
        world["model"],
        world["test"],
        n_requests=10,
        rate_qps=20,
        batch_size=8,
        warmup=1,
        timeout_ms=6e5,
        device="cpu",
    )
    assert res.server.requests == 10 and res.server.failed == 0
    assert {c.name for c in res.checks} == {"lite_p95_latency", "lite_peak_memory"}
    lat = next(c for c in res.checks if c.name == "lite_p95_latency")
    assert not lat.passed and "n/a" in lat.reason  # 10 requests cannot bound p95
    assert res.peak_memory_mb >= 0 and "RSS growth" in res.memory_basis
    assert res.server.ndcg10 > 0.5  # the int8 encoder still ranks with the trained head
