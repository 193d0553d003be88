"""gpu_monitor inside real flows: artifacts read back from the test Prefect API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from prefect import flow
from prefect.runtime import flow_run

from tasks.artifacts import read_artifacts, validate_key
from tasks.monitoring import MonitorReport, gpu_monitor


class _NVMLError(Exception):
    pass


class _FakeNVML:
    """Two fake GPUs whose utilisation climbs with every reading."""

    NVMLError = _NVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self):
        self.n = 0
        self.shutdowns = 0

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return f"Fake {h}"

    def nvmlDeviceGetUtilizationRates(self, h):
        self.n += 1
        return SimpleNamespace(gpu=self.n % 101)

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=512 * 2**20, total=1024 * 2**20)

    def nvmlDeviceGetPowerUsage(self, h):
        if h == 1:
            raise _NVMLError("Not Supported")
        return 150_000

    def nvmlDeviceGetTemperature(self, h, sensor):
        return 55


@pytest.fixture(autouse=True)
def _no_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_fake_gpus_publish_table_png_and_summary(prefect_harness):
    nvml = _FakeNVML()

    @flow
    def watched() -> tuple[MonitorReport, str]:
        with gpu_monitor(interval_s=0.05, key="test-gpu-fake", title="fake", nvml=nvml) as mon:
            time.sleep(0.3)
        return mon.report, flow_run.id

    report, run_id = watched()
    assert nvml.shutdowns == 1
    assert report.reason is None
    assert report.samples >= 6 and report.samples % 2 == 0
    assert report.table_rows == report.samples
    assert report.png_path == prefect_harness / "monitor" / run_id / "test-gpu-fake.png"
    assert Path(report.png_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [s["power_mean_w"] for s in report.summary] == [150.0, None]

    (table,) = read_artifacts("test-gpu-fake")
    assert table.type == "table"
    assert str(table.flow_run_id) == run_id
    rows = json.loads(table.data)
    assert len(rows) == report.samples
    assert {r["gpu_index"] for r in rows} == {0, 1}

    (summary,) = read_artifacts("test-gpu-fake-summary")
    assert summary.type == "markdown"
    assert "| 0 | Fake 0 |" in summary.data
    assert str(report.png_path) in summary.data
    assert "gpu 1: power unavailable: Not Supported" in summary.data


def test_cpu_path_summary_states_inactive_reason(prefect_harness):
    @flow
    def watched() -> MonitorReport:
        with gpu_monitor(interval_s=0.05, key="test-gpu-cpu", title="cpu") as mon:
            pass
        return mon.report

    report = watched()
    assert report.samples == 0 and report.png_path is None and report.reason
    (summary,) = read_artifacts("test-gpu-cpu-summary")
    assert f"GPU monitor inactive: {report.reason}" in summary.data
    assert read_artifacts("test-gpu-cpu") == []  # no empty table


def test_work_failure_still_publishes_and_reraises(prefect_harness):
    @flow
    def failing():
        with gpu_monitor(interval_s=0.05, key="test-gpu-fail", title="fail", nvml=_FakeNVML()):
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        failing()
    assert len(read_artifacts("test-gpu-fail")) == 1
    assert len(read_artifacts("test-gpu-fail-summary")) == 1


@pytest.mark.parametrize("bad", ["Train", "train_gpu", "train gpu", "", "gpu/1"])
def test_bad_keys_rejected(bad):
    with pytest.raises(ValueError, match="lowercase letters, digits and dashes"):
        validate_key(bad)
    with pytest.raises(ValueError), gpu_monitor(key=bad, title="x"):
        pass
