"""One slug rule and one device-kind rule, shared by budget limits, SLO files, history and trust."""

from __future__ import annotations

import pytest

from gpuflows.core.hardware.devices import device_kind
from gpuflows.core.hardware.pool_plan import cpu_limit_name
from gpuflows.core.memory.budget import limit_name
from gpuflows.core.naming import slug
from gpuflows.core.slo.baseline import BaselineStore
from gpuflows.core.slo.measure import SloMeasurement, device_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed-000", "seed-000"),
        ("GPU-Box.lab.example", "gpu-box-lab-example"),
        ("  Weird Host__Name! ", "weird-host-name"),
        ("a -- b", "a-b"),
        ("cuda:0 NVIDIA H100", "cuda-0-nvidia-h100"),
    ],
)
def test_slug(text, expected):
    assert slug(text) == expected


def test_slug_of_nothing_is_the_fallback():
    assert slug("***") == "unnamed"
    assert slug("", empty="host") == "host"


def test_every_name_uses_the_same_slug():
    host = "GPU-Box.lab"
    assert limit_name(0, host=host) == f"{slug(host)}-vram-gpu0"
    assert cpu_limit_name(host=host) == f"{slug(host)}-vram-cpu"
    assert limit_name(0, host="***") == "host-vram-gpu0"
    assert device_key("cuda:1 NVIDIA H100") == "cuda-nvidia-h100"
    path = BaselineStore("/tmp/x").path("Seed 000", "cuda:1 NVIDIA H100")
    assert path.name == "seed-000--cuda-nvidia-h100.json"


@pytest.mark.parametrize(
    ("device", "kind"),
    [("cuda:0 NVIDIA H100", "cuda"), ("cuda", "cuda"), ("CPU", "cpu"), (" cpu ", "cpu"), ("", "")],
)
def test_device_kind(device, kind):
    assert device_kind(device) == kind


def test_slo_fallback_uses_the_device_kind():
    m = SloMeasurement.from_samples("s", [1.0], device="cuda:1 NVIDIA H100", target_device="cuda")
    assert not m.fallback
    m = SloMeasurement.from_samples("s", [1.0], device="cpu", target_device="cuda:0")
    assert m.fallback
