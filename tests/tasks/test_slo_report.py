"""publish_slo_report end to end under the Prefect test harness: artifact, files, baseline, events."""

from __future__ import annotations

import pytest
from prefect import flow

import tasks.slo_report as slo_report
from gpuflows.core.evidence.trust import Tier
from gpuflows.core.slo.baseline import BaselineStore
from gpuflows.core.slo.measure import SloMeasurement, SloPolicy
from gpuflows.core.store.io import read_json
from tasks.artifacts import read_artifacts

KEY = "slo-test-service"


def _measure(scale: float) -> SloMeasurement:
    samples = [scale * (10.0 + i % 10) for i in range(400)]  # 0 errors in 400: CP bound < 0.8 %
    return SloMeasurement.from_samples(
        "test-service", samples, device="cpu", quality={"quality_improvement": 0.12}
    )


def test_publish_twice_detects_regression_and_keeps_baseline(prefect_harness, monkeypatch):
    emitted: list[str] = []
    real_emit = slo_report.emit_event

    def spy(event, **kw):
        emitted.append(event)
        return real_emit(event=event, **kw)

    monkeypatch.setattr(slo_report, "emit_event", spy)
    store = BaselineStore(prefect_harness / "test-baselines")
    policy = SloPolicy(p95_ms_max=50.0, quality_improvement_min=0.10)

    @flow
    def publish(m: SloMeasurement, tier: Tier = Tier.T2) -> dict:
        return slo_report.publish_slo_report(
            m, policy, key=KEY, store=store, tier_block="T2", tier=tier
        )

    fast = _measure(1.0)
    t1 = publish(fast, Tier.T1)  # a T1 run (dirty tree, fallback, ...) never becomes the bar
    assert not t1["baseline_updated"] and t1["promotion"] == "not promoted: tier T1-Indicative"
    assert store.load("test-service", "cpu") is None
    emitted.clear()
    first = publish(fast)
    assert first["checks_passed"] and not first["regressed"] and not first["comparable"]
    assert first["baseline_updated"] and emitted == []
    arts = read_artifacts(KEY)
    assert len(arts) == 2
    assert f"{fast.latency.p95_ms:.4g}" in arts[0].data and arts[0].data.endswith("T2")
    saved = read_json(first["json"])
    assert saved["measurement"]["latency"]["p95_ms"] == fast.latency.p95_ms
    with open(first["plot"], "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"

    slow = _measure(10.0)
    second = publish(slow)
    assert second["regressed"] and second["comparable"] and not second["baseline_updated"]
    assert second["failed_checks"] == ["p95_latency"] and second["drifted"]
    assert emitted == ["gpuflows.slo.regressed", "gpuflows.slo.breached", "gpuflows.slo.drifted"]
    assert (
        "breached" not in second["promotion"]
        and "failed checks: p95_latency" in second["promotion"]
    )
    assert second["events"] == emitted
    assert store.load("test-service", "cpu").latency.p95_ms == fast.latency.p95_ms
    arts = read_artifacts(KEY)
    assert len(arts) == 3
    assert any("**DRIFTED**" in a.data for a in arts)
    assert any(f"{slow.latency.p95_ms:.4g}" in a.data and "**REGRESSED**" in a.data for a in arts)


def test_bad_artifact_key_is_refused(prefect_harness):
    with pytest.raises(ValueError, match="SLO_Report"):
        slo_report.publish_slo_report(_measure(1.0), SloPolicy(), key="SLO_Report")
