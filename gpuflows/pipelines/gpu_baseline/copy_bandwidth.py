"""Copy bandwidth measurements for :mod:`gpuflows.pipelines.gpu_baseline.hwbench`: device memory,
the measured CPU ``np.copyto`` ceiling, and host<->device transfers over the host link. Pure
compute, no Prefect.

Conventions (see :mod:`gpuflows.pipelines.gpu_baseline.hwbench`): a device copy of ``nbytes``
moves ``2 * nbytes`` (read src + write dst); a host<->device copy moves ``nbytes`` once; GB/s = 1e9 B/s.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import torch

from gpuflows.core.hardware.timing import device_sync, time_callable
from gpuflows.pipelines.gpu_baseline.common import (
    _SEED,
    HwMeasurement,
    _generator,
    _peak_figure,
    _resolve,
    _skipped,
    _summarise,
    gbs_from_ms,
)

Direction = Literal["h2d", "d2h"]


# --- memory estimates (device bytes a measurement allocates) -----------------------------------


def estimate_copy_bytes(nbytes: int) -> int:
    """Device bytes for a device copy: source + destination, ``2 * nbytes``."""
    return 2 * nbytes


def estimate_host_device_bytes(nbytes: int) -> int:
    """Device bytes for a host<->device copy: the device buffer, ``nbytes`` (host side extra)."""
    return nbytes


# --- measurements ------------------------------------------------------------------------------


def cpu_copy_ceiling_gbs(
    nbytes: int, repeats: int = 10, warmup: int = 2, threads: int | None = None
) -> HwMeasurement:
    """Measured CPU copy ceiling: ``np.copyto`` of ``nbytes`` in ``threads`` chunks, in GB/s.

    A plain memcpy-speed copy (numpy releases the GIL for it), split over the same number of
    threads torch uses (``torch.get_num_threads()`` by default) so that a torch CPU copy of
    the same size can be compared with it: ratio ~1 expected. Bytes moved = ``2 * nbytes``.
    """
    if nbytes < 4:
        raise ValueError(f"nbytes must be >= 4, got {nbytes}")
    threads = threads or torch.get_num_threads()
    rng = np.random.default_rng(_SEED)
    src = rng.random(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    bounds = np.linspace(0, src.size, threads + 1, dtype=np.int64)
    chunks = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    def part(lohi: tuple[int, int]) -> None:
        lo, hi = lohi
        np.copyto(dst[lo:hi], src[lo:hi])

    moved = 2 * src.nbytes
    with ThreadPoolExecutor(max_workers=threads) as pool:
        if threads == 1:
            samples = time_callable(lambda: np.copyto(dst, src), repeats=repeats, warmup=warmup)
        else:
            samples = time_callable(
                lambda: list(pool.map(part, chunks)), repeats=repeats, warmup=warmup
            )
    return _summarise(
        name="copy_numpy_ceiling",
        device="cpu",
        unit="GB/s",
        samples_ms=samples,
        rate=lambda ms: gbs_from_ms(moved, ms),
        warmup=warmup,
        params={"nbytes": src.nbytes, "bytes_moved": moved, "threads": threads},
        peak=None,
        peak_source=None,
        note="measured ceiling (np.copyto), not a datasheet figure",
    )


def memory_bandwidth_gbs(
    device: str,
    nbytes: int,
    repeats: int = 10,
    warmup: int = 2,
    inner: int = 1,
    ceiling: HwMeasurement | None = None,
) -> HwMeasurement:
    """Device-memory copy bandwidth, ``dst.copy_(src)`` of ``nbytes``; bytes moved = 2 x nbytes.

    On CUDA compared with the datasheet memory bandwidth. On the CPU compared with a measured
    :func:`cpu_copy_ceiling_gbs` of the same size (``ceiling``, measured here when not given).
    ``inner`` copies run per timed call (samples are per copy).
    """
    if nbytes < 4 or inner < 1:
        raise ValueError(f"nbytes must be >= 4 and inner >= 1, got {nbytes}, {inner}")
    dev = _resolve(device)
    d = str(dev)
    numel = nbytes // 4
    src = torch.rand(numel, generator=_generator(dev), device=dev, dtype=torch.float32)
    dst = torch.empty_like(src)
    moved = 2 * src.nbytes

    def op() -> None:
        for _ in range(inner):
            dst.copy_(src)

    samples = [
        t / inner for t in time_callable(op, repeats=repeats, warmup=warmup, sync=device_sync(d))
    ]
    params: dict[str, Any] = {"nbytes": numel * 4, "bytes_moved": moved, "inner": inner}
    note = ""
    if dev.type == "cpu":
        params["torch_threads"] = torch.get_num_threads()
        if ceiling is None:
            ceiling = cpu_copy_ceiling_gbs(numel * 4, repeats=repeats, warmup=warmup)
        peak, source = (
            ceiling.value,
            (
                f"measured: np.copyto of {ceiling.params['nbytes']} bytes on "
                f"{ceiling.params['threads']} threads"
            ),
        )
    else:
        peak, source, note = _peak_figure(d, "mem_bw_gbs")
    return _summarise(
        name="memory_copy",
        device=d,
        unit="GB/s",
        samples_ms=samples,
        rate=lambda ms: gbs_from_ms(moved, ms),
        warmup=warmup,
        params=params,
        peak=peak,
        peak_source=source,
        note=note,
    )


def host_device_bandwidth_gbs(
    device: str,
    nbytes: int,
    direction: Direction,
    pinned: bool,
    repeats: int = 10,
    warmup: int = 2,
) -> HwMeasurement:
    """Host<->device copy bandwidth over the host link (PCIe/C2C), GB/s; CUDA only.

    ``nbytes`` cross the link once per copy, compared with the per-direction link peak. Pinned
    host buffers (``pin_memory=True``) are copied with ``non_blocking=True`` and the timer
    synchronises; pageable buffers are copied synchronously through a staging buffer. On the
    CPU there is no host<->device copy: a skip record is returned.
    """
    if direction not in ("h2d", "d2h"):
        raise ValueError(f"direction must be 'h2d' or 'd2h', got {direction!r}")
    if nbytes < 1:
        raise ValueError(f"nbytes must be >= 1, got {nbytes}")
    name = f"{direction}_{'pinned' if pinned else 'pageable'}"
    params: dict[str, Any] = {"nbytes": nbytes, "bytes_moved": nbytes, "pinned": pinned}
    dev = _resolve(device)
    d = str(dev)
    if dev.type != "cuda":
        return _skipped(
            name, d, "GB/s", f"{direction}: not applicable on cpu (no host<->device copy)", params
        )
    cpu = torch.device("cpu")
    host = torch.empty(nbytes, dtype=torch.uint8, device=cpu, pin_memory=pinned)
    host.random_(0, 256, generator=_generator(cpu))
    dev_buf = torch.empty(nbytes, dtype=torch.uint8, device=dev)
    if direction == "h2d":

        def op() -> None:
            dev_buf.copy_(host, non_blocking=pinned)
    else:

        def op() -> None:
            host.copy_(dev_buf, non_blocking=pinned)

    samples = time_callable(op, repeats=repeats, warmup=warmup, sync=device_sync(d))
    peak, source, note = _peak_figure(d, "host_link_gbs")
    return _summarise(
        name=name,
        device=d,
        unit="GB/s",
        samples_ms=samples,
        rate=lambda ms: gbs_from_ms(nbytes, ms),
        warmup=warmup,
        params=params,
        peak=peak,
        peak_source=source,
        note=note,
    )


__all__ = [
    "Direction",
    "cpu_copy_ceiling_gbs",
    "estimate_copy_bytes",
    "estimate_host_device_bytes",
    "host_device_bandwidth_gbs",
    "memory_bandwidth_gbs",
]
