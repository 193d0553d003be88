"""Device discovery and choice, without initialising CUDA.

Discovery asks NVML (``pynvml`` from ``nvidia-ml-py``), which reads the driver without creating
a CUDA context, so a process that forks workers afterwards stays safe (the accelerate habit).
``CUDA_VISIBLE_DEVICES`` is honoured with CUDA's own rules: a comma-separated list of indices or
``GPU-<uuid>`` prefixes; an empty value or ``-1`` hides every GPU; entries after an invalid one
are ignored. Without NVML, torch is asked (that initialises CUDA, and the reason says so).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

DeviceRequest = Literal["auto", "cpu", "cuda"] | str


class DeviceError(ValueError):
    """A device request that cannot be met (unknown index, CUDA asked for on a CPU machine)."""


class GpuInfo(BaseModel):
    """One GPU as this process sees it."""

    index: int = Field(
        description="Logical CUDA index in this process (after CUDA_VISIBLE_DEVICES)."
    )
    nvml_index: int | None = Field(default=None, description="Physical NVML index.")
    uuid: str | None = None
    name: str
    total_memory_bytes: int


class Discovery(BaseModel):
    """What device discovery found, and how."""

    gpus: list[GpuInfo] = Field(default_factory=list)
    method: str = Field(description="'nvml', 'torch' or 'none'.")
    reason: str = Field(default="", description="Why no GPU was found, when none was.")
    cuda_visible_devices: str | None = None


class DeviceChoice(BaseModel):
    """The device a piece of work runs on, and why: goes into every result's provenance."""

    device: str = Field(description="torch device string: 'cpu' or 'cuda:N'.")
    kind: Literal["cpu", "cuda"]
    index: int | None = None
    physical_index: int | None = Field(
        default=None,
        description="NVML index: names the VRAM limit, stable across CUDA_VISIBLE_DEVICES.",
    )
    name: str
    total_memory_bytes: int | None = None
    requested: str
    fallback: bool = Field(description="True when a GPU was wanted but the CPU is used.")
    reason: str


def device_kind(device: str) -> str:
    """The kind of a device string, lowercase: ``cuda:0 NVIDIA H100`` -> ``cuda``, ``cpu`` -> ``cpu``.

    Two results are from the same kind of device when their kinds are equal (a CPU fallback of
    a GPU run is not); an empty string has the kind ``""``.

    Example:
        >>> device_kind("cuda:1 NVIDIA H100")
        'cuda'
    """
    return device.strip().split()[0].split(":")[0].lower() if device.strip() else ""


def parse_visible_devices(value: str | None) -> list[str] | None:
    """Parse ``CUDA_VISIBLE_DEVICES``: None when unset (all visible), else the ordered entries.

    Example:
        >>> parse_visible_devices("2,0")
        ['2', '0']
        >>> parse_visible_devices("-1")
        []
    """
    if value is None:
        return None
    out: list[str] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            break
        if item.lstrip("-").isdigit():
            if int(item) < 0:
                break
            out.append(str(int(item)))
        elif item.startswith(("GPU-", "MIG-")):
            out.append(item)
        else:  # CUDA stops at the first invalid entry
            break
    return out


def _nvml_gpus(nvml: Any) -> list[tuple[int, str, str, int]]:
    """(nvml_index, uuid, name, total bytes) for every physical GPU."""
    rows = []
    for i in range(nvml.nvmlDeviceGetCount()):
        h = nvml.nvmlDeviceGetHandleByIndex(i)
        name = nvml.nvmlDeviceGetName(h)
        uuid = nvml.nvmlDeviceGetUUID(h)
        name = name.decode() if isinstance(name, bytes) else name
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        rows.append((i, uuid, name, int(nvml.nvmlDeviceGetMemoryInfo(h).total)))
    return rows


def _apply_visibility(
    rows: list[tuple[int, str, str, int]], visible: list[str] | None
) -> list[GpuInfo]:
    if visible is None:
        chosen = rows
    else:
        chosen = []
        for entry in visible:
            match = [
                r
                for r in rows
                if (entry.isdigit() and r[0] == int(entry))
                or (not entry.isdigit() and r[1].startswith(entry))
            ]
            if not match:  # CUDA ignores everything after an entry it cannot resolve
                break
            chosen.append(match[0])
    return [
        GpuInfo(index=i, nvml_index=r[0], uuid=r[1], name=r[2], total_memory_bytes=r[3])
        for i, r in enumerate(chosen)
    ]


def discover(env: Mapping[str, str] | None = None, nvml: Any = None) -> Discovery:
    """Find the GPUs this process may use, through NVML when possible.

    Args:
        env: environment to read ``CUDA_VISIBLE_DEVICES`` from (default ``os.environ``).
        nvml: an NVML module (tests pass a fake); default imports ``pynvml`` if installed.

    Returns:
        A :class:`Discovery`; ``gpus`` is empty and ``reason`` says why when there are none.
    """
    env = os.environ if env is None else env
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    visible = parse_visible_devices(cvd)
    if visible == []:
        return Discovery(
            method="none",
            reason=f"CUDA_VISIBLE_DEVICES={cvd!r} hides every GPU",
            cuda_visible_devices=cvd,
        )
    if nvml is None and importlib.util.find_spec("pynvml") is not None:
        import pynvml as nvml  # noqa: PLC0415 - optional, probed above
    if nvml is not None:
        try:
            nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError_LibraryNotFound, DriverNotLoaded, ...
            nvml_reason = f"NVML init failed ({type(exc).__name__}: {exc}): no NVIDIA driver"
        else:
            try:
                gpus = _apply_visibility(_nvml_gpus(nvml), visible)
            finally:
                nvml.nvmlShutdown()
            reason = "" if gpus else "NVML reports no visible GPU"
            return Discovery(gpus=gpus, method="nvml", reason=reason, cuda_visible_devices=cvd)
    else:
        nvml_reason = "pynvml not installed (pip install 'gpuflows[gpu]')"
    return _discover_torch(nvml_reason, cvd)


def _discover_torch(nvml_reason: str, cvd: str | None) -> Discovery:
    try:
        import torch
    except ImportError:
        return Discovery(
            method="none", reason=f"{nvml_reason}; torch not installed", cuda_visible_devices=cvd
        )
    if not torch.backends.cuda.is_built():
        return Discovery(
            method="none",
            reason=f"{nvml_reason}; torch {torch.__version__} is a CPU build",
            cuda_visible_devices=cvd,
        )
    if not torch.cuda.is_available():
        return Discovery(
            method="none",
            reason=f"{nvml_reason}; torch.cuda.is_available() is False",
            cuda_visible_devices=cvd,
        )
    gpus = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        gpus.append(
            GpuInfo(
                index=i,
                name=p.name,
                total_memory_bytes=int(p.total_memory),
                uuid=str(getattr(p, "uuid", "")) or None,
            )
        )
    return Discovery(
        gpus=gpus,
        method="torch",
        reason=f"{nvml_reason}; used torch (initialises CUDA)",
        cuda_visible_devices=cvd,
    )


def cpu_name() -> str:
    """CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def choose_device(
    requested: DeviceRequest = "auto", discovery: Discovery | None = None
) -> DeviceChoice:
    """Pick the device for a run.

    Args:
        requested: ``"auto"`` (first visible GPU, else CPU with the reason recorded), ``"cpu"``
            (forced), ``"cuda"`` / ``"cuda:N"`` (must exist: no silent fallback when asked for).
        discovery: a previous :func:`discover` result (default: discover now).

    Raises:
        DeviceError: unknown request, CUDA asked for where there is none, index out of range.
    """
    req = str(requested).strip().lower()
    if req == "cpu":
        return DeviceChoice(
            device="cpu",
            kind="cpu",
            name=cpu_name(),
            requested=req,
            fallback=False,
            reason="CPU requested",
        )
    if req not in ("auto", "cuda") and not (req.startswith("cuda:") and req[5:].isdigit()):
        raise DeviceError(
            f"device={requested!r} is not understood: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        )
    disc = discovery if discovery is not None else discover()
    if not disc.gpus:
        if req == "auto":
            return DeviceChoice(
                device="cpu",
                kind="cpu",
                name=cpu_name(),
                requested=req,
                fallback=True,
                reason=f"no GPU: {disc.reason}",
            )
        raise DeviceError(
            f"device={requested!r} but no GPU is visible ({disc.reason}); "
            "use device='auto' to fall back to the CPU or 'cpu' to force it"
        )
    idx = int(req[5:]) if req.startswith("cuda:") else 0
    if idx >= len(disc.gpus):
        raise DeviceError(
            f"device={requested!r}: only {len(disc.gpus)} GPU(s) visible "
            f"(indices 0..{len(disc.gpus) - 1}); pick one of those"
        )
    g = disc.gpus[idx]
    return DeviceChoice(
        device=f"cuda:{idx}",
        kind="cuda",
        index=idx,
        physical_index=g.nvml_index if g.nvml_index is not None else idx,
        name=g.name,
        total_memory_bytes=g.total_memory_bytes,
        requested=req,
        fallback=False,
        reason=f"GPU {idx} found by {disc.method}",
    )
