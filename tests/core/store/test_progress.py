"""Progress clock (pure) and the progress artifact (harness)."""

from __future__ import annotations

import pytest
from prefect import flow

from gpuflows.core.store.progress import ProgressClock
from tasks.artifacts import read_artifacts
from tasks.progress import RunProgress


def test_clock_percent_and_eta(monkeypatch):
    t = [100.0]
    monkeypatch.setattr("gpuflows.core.store.progress.time.monotonic", lambda: t[0])
    p = ProgressClock(total=8)
    assert p.eta_s is None and p.percent == 0
    t[0] = 104.0
    p.advance(2)
    assert p.percent == 25.0 and p.eta_s == pytest.approx(12.0)  # 2 s per unit, 6 left
    p.advance(100)
    assert p.done == 8 and p.eta_s == 0
    assert "8/8 combos (100.0 %)" in p.describe("combos")


def test_clock_rejects_bad_input():
    with pytest.raises(ValueError, match="total=0"):
        ProgressClock(total=0)
    with pytest.raises(ValueError, match="forward"):
        ProgressClock(total=3).advance(-1)


def test_progress_artifact_reaches_100(prefect_harness):
    @flow
    def work():
        prog = RunProgress("test-progress", total=5, what="steps", min_interval_s=0)
        for _ in range(5):
            prog.advance()

    work()
    (art,) = read_artifacts("test-progress")
    assert art.type == "progress" and float(art.data) == 100.0
    assert "5/5 steps" in art.description
