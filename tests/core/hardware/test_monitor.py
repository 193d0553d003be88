"""GpuSampler against a fake NVML module; summary, table and plot on hand-made samples."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from gpuflows.core.hardware.monitor import NO_GPUS, PYNVML_MISSING, GpuSample, GpuSampler
from gpuflows.core.hardware.monitor_report import plot_samples, samples_table, summarize

MIB = 1024 * 1024


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError."""


class FakeNVML:
    """A pynvml-like object: values change with every call, per device.

    GPU i reports utilisation 10*i + calls (capped at 100), memory used (1000 + calls) MiB of
    16000 MiB, power (100 + i) W in milliwatts, temperature 40 + i °C.
    """

    NVMLError = FakeNVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, count=2, *, no_power=(), fail_util_after=None, init_error=None):
        self.count = count
        self.no_power = set(no_power)
        self.fail_util_after = fail_util_after
        self.init_error = init_error
        self.calls = 0
        self.inits = 0
        self.shutdowns = 0
        self.lock = threading.Lock()

    def nvmlInit(self):
        if self.init_error is not None:
            raise self.init_error
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i):
        if not 0 <= i < self.count:
            raise FakeNVMLError("Invalid Argument")
        return ("handle", i)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return ("handle", int(uuid.rsplit("-", 1)[1]))

    def nvmlDeviceGetIndex(self, handle):
        return handle[1]

    def nvmlDeviceGetName(self, handle):
        return f"Fake GPU {handle[1]}".encode()  # old pynvml returned bytes

    def nvmlDeviceGetUtilizationRates(self, handle):
        with self.lock:
            self.calls += 1
            n = self.calls
        if self.fail_util_after is not None and n > self.fail_util_after:
            raise RuntimeError("driver went away")
        return SimpleNamespace(gpu=min(100, 10 * handle[1] + n), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=(1000 + self.calls) * MIB, total=16000 * MIB, free=0)

    def nvmlDeviceGetPowerUsage(self, handle):
        if handle[1] in self.no_power:
            raise FakeNVMLError("Not Supported")
        return (100 + handle[1]) * 1000

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 40 + handle[1]


@pytest.fixture(autouse=True)
def _no_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_samples_at_roughly_the_interval_with_units_converted():
    nvml = FakeNVML(count=2)
    with GpuSampler(interval_s=0.05, nvml=nvml) as s:
        assert s.active and s.reason is None
        time.sleep(0.5)
    samples = s.samples
    per_gpu = [x for x in samples if x.gpu_index == 0]
    # ~11 ticks expected (start + ~9 + stop); generous bounds for slow CI machines.
    assert 4 <= len(per_gpu) <= 16
    assert {x.gpu_index for x in samples} == {0, 1}
    assert s.gpu_indices == [0, 1]
    times = [x.t_s for x in per_gpu]
    assert times == sorted(times) and times[0] < 0.05
    assert times[-1] == pytest.approx(0.5, abs=0.3)
    gaps = [b - a for a, b in zip(times[1:-2], times[2:-1], strict=True)]
    assert all(0.02 < g < 0.5 for g in gaps)
    first = samples[0]
    assert first.name == "Fake GPU 0"
    assert first.memory_total_mib == 16000.0
    assert first.memory_used_mib == 1000.0  # read before the first utilisation call
    assert first.power_w == 100.0  # 100000 mW
    assert samples[1].power_w == 101.0
    assert first.temperature_c == 40.0
    assert len({x.utilization_pct for x in per_gpu}) > 1  # values change over time
    assert nvml.inits == 1 and nvml.shutdowns == 1
    assert s.errors == []


def test_short_work_still_has_two_samples_per_gpu():
    with GpuSampler(interval_s=10, nvml=FakeNVML(count=1)) as s:
        pass
    assert len(s.samples) == 2


def test_cuda_visible_devices_restricts_to_that_index(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    with GpuSampler(interval_s=10, nvml=FakeNVML(count=3)) as s:
        pass
    assert s.gpu_indices == [1]
    assert {x.gpu_index for x in s.samples} == {1}
    assert s.samples[0].name == "Fake GPU 1"


def test_cuda_visible_devices_uuid_and_invalid_entries(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa-2,0,7,1")  # CUDA stops at the 7
    with GpuSampler(interval_s=10, nvml=FakeNVML(count=3)) as s:
        pass
    assert s.gpu_indices == [2, 0]


def test_cuda_visible_devices_empty_means_no_gpus(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    nvml = FakeNVML(count=2)
    with GpuSampler(interval_s=10, nvml=nvml) as s:
        pass
    assert not s.active and s.reason.startswith(NO_GPUS)
    assert s.samples == [] and nvml.shutdowns == 1


def test_explicit_indices_override_env(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with GpuSampler(interval_s=10, gpu_indices=[1, 5], nvml=FakeNVML(count=2)) as s:
        pass
    assert s.gpu_indices == [1]
    assert any("gpu index 5 out of range" in e for e in s.errors)


def test_power_unsupported_gives_none_and_sampling_goes_on():
    with GpuSampler(interval_s=0.02, nvml=FakeNVML(count=2, no_power={1})) as s:
        time.sleep(0.2)
    gpu1 = [x for x in s.samples if x.gpu_index == 1]
    assert len(gpu1) >= 4
    assert all(x.power_w is None for x in gpu1)
    assert all(x.temperature_c == 41.0 for x in gpu1)
    assert all(x.power_w == 100.0 for x in s.samples if x.gpu_index == 0)
    assert s.errors == ["gpu 1: power unavailable: Not Supported"]  # recorded once
    assert s.reason is None


def test_exception_mid_run_is_recorded_and_does_not_propagate():
    nvml = FakeNVML(count=1, fail_util_after=3)
    with GpuSampler(interval_s=0.01, nvml=nvml, max_consecutive_errors=5) as s:
        time.sleep(0.3)
        survived = True
    assert survived
    assert len(s.samples) == 3
    assert any("driver went away" in e for e in s.errors)
    assert s.reason.startswith("sampling stopped after 5 failed ticks")
    assert nvml.shutdowns == 1


def test_nvml_init_failure_is_a_noop():
    nvml = FakeNVML(init_error=FakeNVMLError("Driver Not Loaded"))
    with GpuSampler(interval_s=0.01, nvml=nvml) as s:
        pass
    assert not s.active
    assert s.reason == "NVML init failed: Driver Not Loaded"
    assert s.samples == [] and nvml.shutdowns == 0


def test_zero_devices_is_a_noop():
    with GpuSampler(nvml=FakeNVML(count=0)) as s:
        pass
    assert not s.active and s.reason == NO_GPUS


def test_real_noop_path_on_this_machine_records_a_reason():
    """No pynvml, or pynvml without an NVIDIA driver: inactive, with the reason."""
    try:
        import pynvml

        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        pytest.skip("NVML works here: this test is for machines without it")
    except ImportError:
        expected = PYNVML_MISSING
    except Exception:  # noqa: BLE001 - pynvml.NVMLError subclasses
        expected = "NVML init failed: "
    with GpuSampler(interval_s=0.01) as s:
        time.sleep(0.05)
    assert not s.active
    assert s.reason.startswith(expected)
    assert s.samples == []


def test_missing_pynvml_reason(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pynvml" else real(name, *a)
    )
    with GpuSampler() as s:
        pass
    assert s.reason == "pynvml not installed (pip install 'gpuflows[gpu]')"


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_invalid_interval_rejected(bad):
    with pytest.raises(ValueError, match="interval_s"):
        GpuSampler(interval_s=bad, nvml=FakeNVML())


def test_non_numeric_interval_rejected():
    with pytest.raises(TypeError, match="interval_s"):
        GpuSampler(interval_s="1", nvml=FakeNVML())


def test_start_twice_rejected():
    s = GpuSampler(nvml=FakeNVML()).start()
    try:
        with pytest.raises(RuntimeError, match="twice"):
            s.start()
    finally:
        s.stop()


def _sample(t, i=0, util=50.0, used=100.0, power=200.0, temp=60.0):
    return GpuSample(
        t_s=t,
        gpu_index=i,
        name=f"G{i}",
        utilization_pct=util,
        memory_used_mib=used,
        memory_total_mib=1000.0,
        power_w=power,
        temperature_c=temp,
    )


def test_summarize_numbers():
    samples = [
        _sample(0.0, 0, util=10, used=100, power=100, temp=50),
        _sample(0.0, 1, util=0, used=5, power=None, temp=None),
        _sample(1.0, 0, util=30, used=300, power=300, temp=70),
        _sample(2.0, 0, util=50, used=200, power=200, temp=60),
    ]
    g0, g1 = summarize(samples)
    assert g0 == {
        "gpu_index": 0,
        "name": "G0",
        "samples": 3,
        "span_s": 2.0,
        "util_mean_pct": 30.0,
        "util_max_pct": 50.0,
        "memory_max_used_mib": 300.0,
        "memory_total_mib": 1000.0,
        "power_mean_w": 200.0,
        "power_max_w": 300.0,
        "temperature_max_c": 70.0,
    }
    assert g1["samples"] == 1 and g1["power_mean_w"] is None and g1["temperature_max_c"] is None
    assert summarize([]) == []


def test_samples_table_small_is_complete():
    samples = [_sample(t, i) for t in range(3) for i in range(2)]
    rows = samples_table(samples)
    assert len(rows) == 6
    assert rows[0] == {
        "t_s": 0.0,
        "gpu_index": 0,
        "name": "G0",
        "utilization_pct": 50.0,
        "memory_used_mib": 100.0,
        "memory_total_mib": 1000.0,
        "power_w": 200.0,
        "temperature_c": 60.0,
    }


def test_samples_table_downsamples_evenly_per_gpu():
    samples = [_sample(float(t), i) for t in range(1000) for i in range(2)]
    rows = samples_table(samples, max_rows=500)
    assert len(rows) == 500
    for i in range(2):
        ts = [r["t_s"] for r in rows if r["gpu_index"] == i]
        assert len(ts) == 250 and ts[0] == 0.0 and ts[-1] == 999.0
        gaps = {b - a for a, b in zip(ts, ts[1:], strict=False)}
        assert gaps <= {4.0, 5.0}  # 999/249 ≈ 4.01: even spacing


def test_plot_writes_a_png(tmp_path):
    samples = [
        _sample(t * 0.5, i, util=t * 10, power=None if i else 100.0)
        for t in range(6)
        for i in range(2)
    ]
    out = plot_samples(samples, tmp_path / "sub" / "gpu.png", "test run")
    assert out == tmp_path / "sub" / "gpu.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000
    assert [p.name for p in out.parent.iterdir()] == ["gpu.png"]  # no temp file left


def test_plot_rejects_no_samples(tmp_path):
    with pytest.raises(ValueError, match="at least one sample"):
        plot_samples([], tmp_path / "x.png", "empty")


def test_module_imports_neither_prefect_nor_pynvml():
    code = (
        "import sys, gpuflows.core.hardware.monitor; "
        "print(sorted(m for m in ('prefect', 'pynvml', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
