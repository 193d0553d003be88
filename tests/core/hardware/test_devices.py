"""Device discovery and choice on a CPU machine, with a fake NVML module for the GPU cases."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gpuflows.core.hardware.devices import (
    DeviceError,
    Discovery,
    GpuInfo,
    choose_device,
    discover,
    parse_visible_devices,
)

GIB = 1 << 30


class FakeNvml:
    """Stands in for the ``pynvml`` module: a fixed list of physical GPUs, calls recorded."""

    def __init__(self, gpus, *, init_error: Exception | None = None, forbid: bool = False):
        self.gpus = list(gpus)  # (name, uuid, total bytes); name/uuid may be bytes
        self.init_error = init_error
        self.forbid = forbid
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        if self.forbid:
            raise AssertionError(f"NVML must not be touched, but {name} was called")
        self.calls.append(name)

    def nvmlInit(self):
        self._call("nvmlInit")
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self):
        self._call("nvmlShutdown")

    def nvmlDeviceGetCount(self):
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        self._call("nvmlDeviceGetHandleByIndex")
        if not 0 <= i < len(self.gpus):
            raise IndexError(i)
        return ("handle", i)

    def nvmlDeviceGetName(self, h):
        self._call("nvmlDeviceGetName")
        return self.gpus[h[1]][0]

    def nvmlDeviceGetUUID(self, h):
        self._call("nvmlDeviceGetUUID")
        return self.gpus[h[1]][1]

    def nvmlDeviceGetMemoryInfo(self, h):
        self._call("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(total=self.gpus[h[1]][2], used=0, free=self.gpus[h[1]][2])


class NvmlInitFailed(Exception):
    """Named like pynvml's errors are not, on purpose: any exception must be handled."""


def two_gpus() -> FakeNvml:
    return FakeNvml(
        [
            (b"NVIDIA H100 80GB HBM3", b"GPU-aaaa1111-0000", 80 * GIB),
            ("NVIDIA A100-SXM4-40GB", "GPU-bbbb2222-0000", 40 * GIB),
        ]
    )


# --- parse_visible_devices ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", []),
        ("-1", []),
        ("0", ["0"]),
        ("2,0", ["2", "0"]),
        (" 1 , 0 ", ["1", "0"]),
        ("0,x,1", ["0"]),
        ("0,-1,1", ["0"]),
        ("0,,1", ["0"]),
        ("x,0", []),
        ("GPU-abc", ["GPU-abc"]),
        ("GPU-abc,1", ["GPU-abc", "1"]),
        ("MIG-1234", ["MIG-1234"]),
        ("01", ["1"]),
    ],
)
def test_parse_visible_devices(value, expected):
    assert parse_visible_devices(value) == expected


# --- discover with a fake NVML -----------------------------------------------------------


def test_discover_all_gpus_decodes_bytes_and_shuts_down():
    nvml = two_gpus()
    d = discover(env={}, nvml=nvml)
    assert d.method == "nvml"
    assert d.reason == ""
    assert d.cuda_visible_devices is None
    assert [g.index for g in d.gpus] == [0, 1]
    assert [g.nvml_index for g in d.gpus] == [0, 1]
    assert d.gpus[0].name == "NVIDIA H100 80GB HBM3"  # bytes decoded
    assert d.gpus[0].uuid == "GPU-aaaa1111-0000"
    assert d.gpus[1].name == "NVIDIA A100-SXM4-40GB"  # str kept
    assert d.gpus[0].total_memory_bytes == 80 * GIB
    assert d.gpus[1].total_memory_bytes == 40 * GIB
    assert nvml.calls[0] == "nvmlInit"
    assert nvml.calls[-1] == "nvmlShutdown"
    assert nvml.calls.count("nvmlShutdown") == 1


def test_discover_visible_one_maps_logical_zero_to_nvml_one():
    d = discover(env={"CUDA_VISIBLE_DEVICES": "1"}, nvml=two_gpus())
    assert len(d.gpus) == 1
    g = d.gpus[0]
    assert (g.index, g.nvml_index, g.name) == (0, 1, "NVIDIA A100-SXM4-40GB")
    assert d.cuda_visible_devices == "1"


def test_discover_visible_order_is_kept():
    d = discover(env={"CUDA_VISIBLE_DEVICES": "1,0"}, nvml=two_gpus())
    assert [(g.index, g.nvml_index) for g in d.gpus] == [(0, 1), (1, 0)]


def test_discover_selects_by_uuid_prefix():
    d = discover(env={"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}, nvml=two_gpus())
    assert [(g.index, g.nvml_index, g.uuid) for g in d.gpus] == [(0, 1, "GPU-bbbb2222-0000")]


def test_discover_unknown_uuid_hides_everything_after_it():
    nvml = two_gpus()
    d = discover(env={"CUDA_VISIBLE_DEVICES": "GPU-zzzz,0"}, nvml=nvml)
    assert d.gpus == []
    assert d.method == "nvml"
    assert "no visible GPU" in d.reason
    assert nvml.calls[-1] == "nvmlShutdown"


def test_discover_missing_index_stops_the_list_like_cuda():
    d = discover(env={"CUDA_VISIBLE_DEVICES": "0,5,1"}, nvml=two_gpus())
    assert [g.nvml_index for g in d.gpus] == [0]


@pytest.mark.parametrize("cvd", ["", "-1"])
def test_discover_hidden_gpus_never_touch_nvml(cvd):
    nvml = FakeNvml([("x", "GPU-x", GIB)], forbid=True)
    d = discover(env={"CUDA_VISIBLE_DEVICES": cvd}, nvml=nvml)
    assert d.gpus == []
    assert d.method == "none"
    assert "hides every GPU" in d.reason
    assert d.cuda_visible_devices == cvd
    assert nvml.calls == []


def test_discover_nvml_init_failure_falls_back_with_reason():
    nvml = FakeNvml([("x", "GPU-x", GIB)], init_error=NvmlInitFailed("driver not loaded"))
    d = discover(env={}, nvml=nvml)
    assert "NVML init failed" in d.reason
    assert "NvmlInitFailed" in d.reason
    assert "driver not loaded" in d.reason
    assert nvml.calls == ["nvmlInit"]  # nothing else after a failed init
    # This test machine has a CPU-only torch: the fallback finds nothing and says so.
    assert d.gpus == []
    assert d.method == "none"


def test_discover_shuts_nvml_down_when_enumeration_fails():
    nvml = two_gpus()

    def broken(h):
        raise RuntimeError("NVML_ERROR_GPU_IS_LOST")

    nvml.nvmlDeviceGetMemoryInfo = broken
    with pytest.raises(RuntimeError, match="GPU_IS_LOST"):
        discover(env={}, nvml=nvml)
    assert nvml.calls[-1] == "nvmlShutdown"


def test_discover_on_this_machine_finds_no_gpu_and_says_why(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    d = discover()
    assert d.gpus == []
    assert d.reason.strip() != ""
    assert d.method == "none"


# --- choose_device -----------------------------------------------------------------------


def no_gpu() -> Discovery:
    return Discovery(method="none", reason="test machine without GPU")


def gpus(n: int, *, nvml_offset: int = 0) -> Discovery:
    return Discovery(
        method="nvml",
        gpus=[
            GpuInfo(
                index=i,
                nvml_index=i + nvml_offset,
                uuid=f"GPU-{i}",
                name=f"Fake GPU {i}",
                total_memory_bytes=(i + 1) * 10 * GIB,
            )
            for i in range(n)
        ],
    )


def test_choose_cpu_is_forced_even_with_gpus():
    c = choose_device("cpu", discovery=gpus(2))
    assert (c.device, c.kind, c.fallback, c.index) == ("cpu", "cpu", False, None)
    assert c.requested == "cpu"
    assert c.name  # CPU model or platform string
    assert "CPU requested" in c.reason


def test_choose_cpu_does_not_discover(monkeypatch):
    import gpuflows.core.hardware.devices as devices

    def boom(*a, **k):
        raise AssertionError("discover() must not run for device='cpu'")

    monkeypatch.setattr(devices, "discover", boom)
    assert choose_device(" CPU ").device == "cpu"


def test_choose_auto_without_gpu_falls_back_and_records_why():
    c = choose_device("auto", discovery=no_gpu())
    assert c.device == "cpu" and c.kind == "cpu"
    assert c.fallback is True
    assert "no GPU" in c.reason and "test machine without GPU" in c.reason
    assert c.requested == "auto"


def test_choose_auto_with_gpu_takes_the_first():
    c = choose_device("auto", discovery=gpus(2))
    assert (c.device, c.kind, c.index, c.fallback) == ("cuda:0", "cuda", 0, False)
    assert c.total_memory_bytes == 10 * GIB


@pytest.mark.parametrize("req", ["cuda", "cuda:0"])
def test_choose_cuda_without_gpu_raises_naming_the_alternatives(req):
    with pytest.raises(DeviceError) as ei:
        choose_device(req, discovery=no_gpu())
    msg = str(ei.value)
    assert "'auto'" in msg and "'cpu'" in msg
    assert "test machine without GPU" in msg


def test_choose_cuda_index_out_of_range_names_valid_indices():
    with pytest.raises(DeviceError) as ei:
        choose_device("cuda:3", discovery=gpus(2))
    msg = str(ei.value)
    assert "cuda:3" in msg
    assert "0..1" in msg
    assert "2 GPU(s)" in msg


@pytest.mark.parametrize(
    "req",
    ["tpu", "gpu", "cuda:", "cuda:-1", "cuda:x", "mps", ""],
    ids=["tpu", "bare-gpu-word", "cuda-colon", "cuda-neg", "cuda-x", "mps", "empty"],
)
def test_choose_garbage_request_raises(req):
    with pytest.raises(DeviceError, match="not understood"):
        choose_device(req, discovery=gpus(1))


def test_choose_cuda_index_picks_physical_index_from_nvml():
    c = choose_device("cuda:1", discovery=gpus(2, nvml_offset=2))
    assert (c.device, c.index, c.physical_index) == ("cuda:1", 1, 3)
    assert c.name == "Fake GPU 1"
    assert c.total_memory_bytes == 20 * GIB
    assert c.fallback is False
    assert "nvml" in c.reason


def test_choose_physical_index_defaults_to_logical_without_nvml():
    disc = Discovery(method="torch", gpus=[GpuInfo(index=0, name="t", total_memory_bytes=GIB)])
    c = choose_device("CUDA", discovery=disc)
    assert (c.device, c.physical_index, c.requested) == ("cuda:0", 0, "cuda")


def test_choose_after_fake_discovery_with_visibility():
    d = discover(env={"CUDA_VISIBLE_DEVICES": "1"}, nvml=two_gpus())
    c = choose_device("cuda", discovery=d)
    assert (c.device, c.index, c.physical_index) == ("cuda:0", 0, 1)
    assert c.name == "NVIDIA A100-SXM4-40GB"
