"""SLO machinery without Prefect: statistics, measuring, checks, baselines, report, plot."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats as scipy_stats

from gpuflows.core.slo.baseline import BaselineStore, compare_to_baseline
from gpuflows.core.slo.measure import (
    LatencyStats,
    SloMeasurement,
    SloPolicy,
    check_error_rate,
    check_p95_latency,
    check_p99_latency,
    check_peak_memory,
    check_quality_improvement,
    check_slo,
    check_throughput,
    device_key,
    latency_stats,
    measure_service,
    with_goodput_bound,
)
from gpuflows.core.slo.report import plot_latency, render_slo_markdown

GPU = "cuda:0 NVIDIA H100"


def _m(samples, *, device=GPU, errors=0, **kw) -> SloMeasurement:
    return SloMeasurement.from_samples("svc", samples, device=device, errors=errors, **kw)


# --- latency_stats --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 1001, 10_000])
def test_percentiles_match_numpy(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(mean=3.0, sigma=0.7, size=n)
    s = latency_stats(x.tolist(), warmup_excluded=4)
    p50, p95, p99 = np.percentile(x, [50, 95, 99])
    assert s.count == n and s.warmup_excluded == 4
    np.testing.assert_allclose([s.p50_ms, s.p95_ms, s.p99_ms], [p50, p95, p99], rtol=1e-12)
    np.testing.assert_allclose([s.mean_ms, s.min_ms, s.max_ms], [x.mean(), x.min(), x.max()])
    assert s.std_ms == pytest.approx(x.std(ddof=1) if n > 1 else 0.0)
    assert s.min_ms <= s.p50_ms <= s.p95_ms <= s.p99_ms <= s.max_ms


def test_percentiles_hand_checked():
    # 1..101 ms: linear interpolation puts p50 at 51, p95 at 96, p99 at 100 (hand count).
    s = latency_stats(range(1, 102))
    assert (s.p50_ms, s.p95_ms, s.p99_ms) == (51.0, 96.0, 100.0)
    const = latency_stats([5.0] * 9)
    assert const.p99_ms == 5.0 and const.std_ms == 0.0


def test_empty_or_bad_samples_raise():
    with pytest.raises(ValueError, match="at least one latency sample"):
        latency_stats([])
    with pytest.raises(ValueError, match="finite"):
        latency_stats([1.0, float("nan")])
    with pytest.raises(ValueError, match=">= 0"):
        latency_stats([-1.0])


# --- measure_service ------------------------------------------------------------------------


def test_measure_service_counts_errors_and_excludes_them_from_latency():
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] % 5 == 0:
            raise TimeoutError("slow backend")
        if calls["n"] % 7 == 0:
            raise KeyError("missing")
        return 1

    m = measure_service("svc", flaky, requests=70, warmup=3, device="cpu")
    assert calls["n"] == 73
    # Calls 4..73 are timed: multiples of 5 -> 14 TimeoutErrors; of 7 but not 35/70 -> 8 KeyErrors.
    assert m.error_types == {"TimeoutError": 14, "KeyError": 8}
    assert m.errors == 22 and m.requests == 70
    assert m.error_rate == pytest.approx(22 / 70)
    assert m.latency is not None and m.latency.count == 48 == len(m.samples_ms)
    assert m.latency.warmup_excluded == 3 and m.warmup == 3 and m.warmup_errors == 0
    assert m.target_device == "cpu" and not m.fallback


def test_measure_service_all_failing_has_no_latency():
    def broken():
        raise RuntimeError("down")

    m = measure_service("svc", broken, requests=4, warmup=2, device="cpu")
    assert m.latency is None and m.samples_ms == []
    assert m.error_rate == 1.0 and m.warmup_errors == 2
    assert m.throughput_rps == 0.0 and m.goodput_rps == 0.0
    p95 = check_p95_latency(m, SloPolicy())
    assert p95 is not None and not p95.passed and "n=4" in p95.reason  # failed = breach


def test_throughput_arithmetic_with_sleep():
    m = measure_service(
        "svc", lambda: time.sleep(0.01), requests=20, warmup=1, device="cpu", batch_size=4
    )
    assert 9.0 <= m.latency.p50_ms <= 60.0
    # 80 items in ~0.2 s -> ~400 items/s; generous bounds for a loaded machine.
    assert 60.0 <= m.throughput_rps <= 410.0
    assert m.throughput_rps == pytest.approx(20 * 4 / m.measured_s)
    assert m.goodput_rps == pytest.approx(m.throughput_rps)  # no bound: every success counts


def test_sync_called_around_each_timed_call():
    seen = []
    measure_service(
        "svc", lambda: None, requests=3, warmup=1, device="cpu", sync=lambda: seen.append(1)
    )
    assert len(seen) == 1 + 2 * 3


def test_goodput_bound_and_fallback():
    m = _m([10.0, 20.0, 30.0, 40.0], device="cpu", target_device="cuda", measured_s=1.0)
    assert m.fallback and m.throughput_rps == 4.0
    assert with_goodput_bound(m, 25.0).goodput_rps == 2.0
    assert with_goodput_bound(m, 40.0).goodput_rps == 4.0  # "at or under" the bound
    assert device_key("cuda:1 NVIDIA H100") == device_key(GPU) == "cuda-nvidia-h100"


def test_policy_validation():
    assert SloPolicy().goodput_bound_ms == 300.0
    assert SloPolicy(goodput_latency_ms=50).goodput_bound_ms == 50
    with pytest.raises(ValueError):
        SloPolicy(p95_ms_max=0)
    with pytest.raises(ValueError):
        SloPolicy(error_rate_max=-0.1)
    for name, field in SloPolicy.model_fields.items():
        assert field.description and field.description.endswith("."), name


# --- checks ---------------------------------------------------------------------------------


def _with(m: SloMeasurement, **latency) -> SloMeasurement:
    return m.model_copy(update={"latency": m.latency.model_copy(update=latency)})


@pytest.mark.parametrize(
    ("check", "q", "policy_field"),
    [(check_p95_latency, 0.95, "p95_ms_max"), (check_p99_latency, 0.99, "p99_ms_max")],
)
def test_latency_checks_use_the_distribution_free_upper_bound(check, q, policy_field):
    rng = np.random.default_rng(3)
    samples = rng.gamma(2.0, 10.0, 400)
    m = _m(samples.tolist())
    # SciPy: the smallest k with P(Binomial(n, q) <= k - 1) >= 0.95; x_(k) bounds the quantile.
    k = int(scipy_stats.binom.ppf(0.95, 400, q)) + 1
    upper = float(np.sort(samples)[k - 1])
    assert check(m, SloPolicy(**{policy_field: upper})).passed
    failing = check(m, SloPolicy(**{policy_field: upper * 0.999}))
    assert not failing.passed and failing.numbers["upper_95"] == pytest.approx(upper)
    assert failing.numbers["n"] == 400 and f"{upper:.4g} ms" in failing.reason
    assert upper > np.percentile(samples, q * 100)  # the bound, not the estimate, is checked
    assert check(m, SloPolicy(**{policy_field: None})) is None


def test_p99_needs_299_requests_and_failures_are_breaches():
    pol = SloPolicy(p99_ms_max=1000.0)
    few = _m([1.0] * 298)
    r = check_p99_latency(few, pol)
    assert not r.passed and "needs n >= 299" in r.reason
    assert few.bounds.percentiles["p99"].reported is False
    assert check_p99_latency(_m([1.0] * 299), pol).passed
    # 20 failed requests out of 400 = 5 %: the p95 bound lands on a failure (+inf).
    broken = _m([1.0] * 380, errors=20)
    p95 = check_p95_latency(broken, SloPolicy(p95_ms_max=1000.0))
    assert not p95.passed and p95.numbers["failed"] == 20 and p95.numbers["n"] == 400


def test_error_rate_checks_the_clopper_pearson_bound():
    pol = SloPolicy(error_rate_max=0.008)
    # 0 errors in 372 requests cannot show < 0.8 % at 95 %; 373 can.
    assert not check_error_rate(_m([1.0] * 372), pol).passed
    ok = check_error_rate(_m([1.0] * 373), pol)
    assert ok.passed and ok.numbers["upper_95"] == pytest.approx(1 - 0.05 ** (1 / 373))
    two = check_error_rate(_m([1.0] * 998, errors=2), pol)
    ci = scipy_stats.binomtest(2, 1000).proportion_ci(0.90, method="exact")  # one-sided 95 %
    assert two.numbers["upper_95"] == pytest.approx(ci.high) and two.passed
    assert "0.20% (2 of 1000)" in two.reason


def test_rate_memory_quality_checks_at_bound():
    base = _m([1.0] * 4, errors=0, measured_s=1.0)
    pol = SloPolicy(
        min_throughput_rps=4.0,
        quality_improvement_min=0.10,
        peak_memory_mb_max=512.0,
    )
    m = base.model_copy(
        update={
            "quality": {"quality_improvement": 0.10},
            "peak_memory_mb": 512.0,
        }
    )
    for check in (check_throughput, check_quality_improvement, check_peak_memory):
        assert check(m, pol).passed, check.__name__
    worse = m.model_copy(
        update={
            "throughput_rps": 3.99,
            "quality": {"quality_improvement": 0.0999},
            "peak_memory_mb": 512.1,
        }
    )
    for check in (check_throughput, check_quality_improvement, check_peak_memory):
        r = check(worse, pol)
        assert not r.passed and r.numbers["bound"] is not None, check.__name__
    # Bound set but metric never measured: fails (missing evidence is not a pass).
    unmeasured = base.model_copy(update={"quality": {}, "peak_memory_mb": None})
    assert not check_quality_improvement(unmeasured, pol).passed
    assert not check_peak_memory(unmeasured, pol).passed


def test_check_slo_skips_unset_bounds():
    m = _m([100.0] * 10)
    names = [c.name for c in check_slo(m, SloPolicy())]
    assert names == ["p95_latency", "error_rate"]
    none = SloPolicy(p95_ms_max=None, error_rate_max=None)
    assert check_slo(m, none) == []
    full = SloPolicy(
        p99_ms_max=1, min_throughput_rps=1, quality_improvement_min=0.1, peak_memory_mb_max=1
    )
    assert len(check_slo(m, full)) == 6


# --- baselines and regressions --------------------------------------------------------------


def test_baseline_round_trip_is_atomic(tmp_path):
    store = BaselineStore(tmp_path)
    m = _m([1.0, 2.0, 3.0], quality={"ndcg_at_10": 0.71}, peak_memory_mb=100.0)
    assert store.load("svc", GPU) is None
    path = store.save(m)
    assert path.name == "svc--cuda-nvidia-h100.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", path.name]  # no temp file
    assert [p.name for p in (tmp_path / "first").iterdir()] == [path.name]
    back = store.load("svc", "cuda:3 NVIDIA H100")  # same hardware, other ordinal
    assert back == m and back.fallback is False
    assert store.path("Seed 000/ranker", "cpu").name == "seed-000-ranker--cpu.json"


def test_regression_detected_beyond_tolerance_only():
    rng = np.random.default_rng(0)
    base = _m(rng.uniform(90, 110, 200).tolist(), measured_s=4.0)
    within = _m((np.array(base.samples_ms) * 1.09).tolist(), measured_s=4.0)
    beyond = _m((np.array(base.samples_ms) * 1.2).tolist(), measured_s=4.0)
    ok = compare_to_baseline(within, base, 0.10)
    assert ok.comparable and not ok.regressed
    bad = compare_to_baseline(beyond, base, 0.10)
    assert bad.regressed
    names = {d.name for d in bad.regressed_metrics}
    assert {"p50_ms", "p95_ms", "p99_ms"} <= names
    p95 = next(d for d in bad.metrics if d.name == "p95_ms")
    assert p95.relative_change == pytest.approx(0.2)


def test_regression_in_throughput_quality_and_errors():
    base = _m([10.0] * 100, measured_s=1.0, quality={"ndcg_at_10": 0.70})
    slower = _m([10.0] * 100, measured_s=1.5, quality={"ndcg_at_10": 0.70})
    assert {d.name for d in compare_to_baseline(slower, base, 0.1).regressed_metrics} == {
        "throughput_rps",
        "goodput_rps",
    }
    worse_q = _m([10.0] * 100, measured_s=1.0, quality={"ndcg_at_10": 0.60})
    assert [d.name for d in compare_to_baseline(worse_q, base, 0.1).regressed_metrics] == [
        "ndcg_at_10"
    ]
    # Error rate from 0: 0.1 percentage points allowed with a 10 % tolerance.
    one_err = _m([10.0] * 999, errors=1, measured_s=1.0, quality={"ndcg_at_10": 0.70})
    assert not compare_to_baseline(one_err, base, 0.1).regressed
    two_err = _m([10.0] * 98, errors=2, measured_s=1.0, quality={"ndcg_at_10": 0.70})
    assert "error_rate" in {
        d.name for d in compare_to_baseline(two_err, base, 0.1).regressed_metrics
    }


def test_not_comparable_across_devices_or_without_baseline():
    base = _m([10.0] * 10)
    cpu = _m([100.0] * 10, device="cpu", target_device=GPU)
    r = compare_to_baseline(cpu, base, 0.1)
    assert not r.comparable and not r.regressed and r.metrics == []
    assert "cuda:0 NVIDIA H100" in r.reason and "cpu" in r.reason
    none = compare_to_baseline(cpu, None, 0.1)
    assert not none.comparable and none.reason == "no baseline stored"


# --- report and plot ------------------------------------------------------------------------


def test_plot_is_png(tmp_path):
    rng = np.random.default_rng(1)
    path = plot_latency(rng.gamma(2.0, 10.0, 500).tolist(), tmp_path / "lat.png", "svc")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["lat.png"]
    plot_latency([3.0], tmp_path / "one.png", "single sample")
    with pytest.raises(ValueError):
        plot_latency([], tmp_path / "none.png", "empty")


def test_markdown_has_key_numbers():
    base = _m([10.0] * 50, quality={"ndcg_at_10": 0.71, "quality_improvement": 0.12})
    m = _m(
        list(np.linspace(10, 30, 50)),
        device="cpu",
        target_device=GPU,
        errors=1,
        error_types={"TimeoutError": 1},
        quality={"ndcg_at_10": 0.71, "quality_improvement": 0.12},
    )
    checks = check_slo(m, SloPolicy(p95_ms_max=20.0, quality_improvement_min=0.1))
    reg = compare_to_baseline(m, base, 0.1)
    md = render_slo_markdown(m, checks, reg, tier_block="## Trust Tier\n\nT1 (fallback)\n")
    s: LatencyStats = m.latency
    for number in (s.p50_ms, s.p95_ms):
        assert f"{number:.4g}" in md
    assert f"{s.p99_ms:.4g}" not in md and "— (n=50 < 299)" in md  # p99 hidden below 299
    assert "Over all 51 timed requests (1 failed" in md and "Clopper-Pearson" in md
    assert "**Fallback:**" in md and "TimeoutError: 1" in md and "0.71" in md
    assert "| p95_latency | **FAIL** |" in md and "| quality_improvement | pass |" in md
    assert "Not compared: baseline measured on" in md
    assert md.endswith("## Trust Tier\n\nT1 (fallback)\n")
    assert not any(line.startswith("    ") for line in md.splitlines())


def test_goodput_compared_under_the_same_bound():
    base = _m([10.0, 20.0, 30.0, 40.0], measured_s=1.0)  # stored without a bound: goodput 4/s
    cur = with_goodput_bound(_m([10.0, 20.0, 30.0, 40.0], measured_s=1.0), 25.0)  # 2/s
    r = compare_to_baseline(cur, base, 0.1)
    gp = next(d for d in r.metrics if d.name == "goodput_rps")
    assert (gp.baseline, gp.current, gp.regressed) == (2.0, 2.0, False)


@pytest.mark.gpu
def test_measure_service_on_cuda_records_peak_memory():
    import torch

    name = f"cuda:0 {torch.cuda.get_device_name(0)}"
    x = torch.randn(1024, 1024, device="cuda:0")
    m = measure_service("gpu-svc", lambda: x @ x, requests=20, warmup=3, device=name)
    assert m.errors == 0 and m.latency.count == 20 and not m.fallback
    assert m.peak_memory_mb is not None and m.peak_memory_mb >= 4.0  # x alone is 4 MB
