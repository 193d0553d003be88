"""VRAM budgets as Prefect global concurrency limits: one limit per GPU, slots are GiB.

``with vram_budget(estimate, device=choice):`` holds ``estimate.gib`` slots of that GPU's limit
while the body runs, so work that would overflow a card waits instead of OOM-ing. A request
larger than the card fails at once (before any GPU time), naming the fix.

Fairness: Prefect's slot acquisition polls and is not FIFO, so a 70 GiB request can starve behind
a stream of 10 GiB ones. Every request first takes the GPU's one-slot *turnstile* limit, then its
VRAM slots, then lets the turnstile go. While a large request waits at the head it holds the
turnstile, so smaller requests cannot take the slots it is waiting for: it waits at most for the
work already running, not for work that arrives later. ``bench/vram_fairness.py`` measures it.

Crash safety: slots are held under a lease (``lease_duration``, 60 s minimum) renewed in the
background; if the holder is SIGKILLed the lease expires and a real server's repossessor frees the
slots. With file-backed lease storage (``prefect.toml``) that also holds across a server restart.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, Field

from gpuflows.core.hardware.devices import DeviceChoice, Discovery, discover
from gpuflows.core.hardware.pool_plan import plan_pool_limits
from gpuflows.core.memory.budget import (
    GIB,
    BudgetError,
    PeakReport,
    VramEstimate,
    check_fits,
    gib_slots,
    limit_name,
)

log = logging.getLogger("gpuflows.vram")

DEFAULT_LEASE_S = 60.0
TURNSTILE_SUFFIX = "-turnstile"
DEFAULT_PREFIX = "vram-gpu"

VRAM_HOST_ENV = "GPUFLOWS_VRAM_HOST"
"""Host part of the VRAM limit names (``<host>-vram-gpu0``); ``deployments.setup`` gives it to the
workers of a host whose ``GpuPool`` block sets ``host``, so their flow runs ask for that host's
limits without any flow parameter."""
VRAM_PREFIX_ENV = "GPUFLOWS_VRAM_PREFIX"
"""Limit name prefix when a ``GpuPool`` block's ``limit_prefix`` is not ``vram-gpu``."""


def limit_naming(host: str | None = None, prefix: str | None = None) -> tuple[str | None, str]:
    """(host, prefix) of this process's VRAM limit names: the arguments, else the worker's
    environment (:data:`VRAM_HOST_ENV`, :data:`VRAM_PREFIX_ENV`), else no host and ``vram-gpu``."""
    host = host if host is not None else (os.environ.get(VRAM_HOST_ENV, "").strip() or None)
    prefix = prefix or os.environ.get(VRAM_PREFIX_ENV, "").strip() or DEFAULT_PREFIX
    return host, prefix


class VramGrant(BaseModel):
    """What a piece of GPU work asked for, waited for and used."""

    device: str
    limit: str | None = Field(description="Limit held, None on CPU (no VRAM budget).")
    occupy_gib: int
    capacity_gib: int | None = None
    estimate_basis: str
    wait_s: float = 0.0
    held_s: float = 0.0
    acquired_at: float | None = Field(
        default=None, description="time.time() when the slots were granted."
    )
    released_at: float | None = None
    peak: PeakReport | None = None


def gpu_limit(
    choice: DeviceChoice, *, host: str | None = None, prefix: str = "vram-gpu"
) -> str | None:
    """Limit name for the GPU a choice runs on (physical NVML index), or None for the CPU."""
    if choice.kind != "cuda":
        return None
    idx = choice.physical_index if choice.physical_index is not None else choice.index
    return limit_name(int(idx), prefix=prefix, host=host)


def ensure_limits(limits: dict[str, int], *, turnstiles: bool = True) -> dict[str, int]:
    """Create (or resize) global concurrency limits; idempotent. Adds one-slot turnstiles.

    Returns:
        Every limit name written with its slots.
    """
    wanted = dict(limits)
    if turnstiles:
        wanted.update({f"{n}{TURNSTILE_SUFFIX}": 1 for n in limits})
    with get_client(sync_client=True) as client:
        for name, slots in wanted.items():
            if slots < 1:
                raise BudgetError(f"limit {name} with {slots} slots: every limit needs >= 1 slot")
            client.upsert_global_concurrency_limit_by_name(name, slots)
    _capacity.cache_clear()
    return wanted


def ensure_vram_limits(discovery: Discovery | None = None, **plan_kwargs: Any) -> dict[str, int]:
    """Create the VRAM limits for this host's GPUs (none on a CPU-only host).

    ``plan_kwargs`` are those of :func:`gpuflows.core.hardware.pool_plan.plan_pool_limits` (``reserve_gib``,
    ``host``, ``prefix``, ``vram_gib``, ...); a ``GpuPool`` block's ``plan_limits`` gives the same.
    """
    plan = plan_pool_limits((discovery or discover()).gpus, **plan_kwargs)
    return ensure_limits(plan) if plan else {}


@functools.lru_cache(maxsize=64)
def _capacity(name: str) -> int | None:
    with get_client(sync_client=True) as client:
        try:
            return int(client.read_global_concurrency_limit_by_name(name).limit)
        except ObjectNotFound:
            return None


def _holder() -> Any:
    """The current task or flow run as the lease holder (shown by the server), if any."""
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.context import FlowRunContext, TaskRunContext

    if (t := TaskRunContext.get()) is not None:
        return ConcurrencyLeaseHolder(type="task_run", id=t.task_run.id)
    if (f := FlowRunContext.get()) is not None and f.flow_run is not None:
        return ConcurrencyLeaseHolder(type="flow_run", id=f.flow_run.id)
    return None


def _torch_cuda() -> Any:
    """torch, if already imported and CUDA is usable (never imports or initialises it here)."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and torch.cuda.is_available() else None


def _reset_peaks(device: str) -> None:
    if (torch := _torch_cuda()) is not None and device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def measure_peak(device: str, estimate_bytes: int) -> PeakReport:
    """Allocator peaks on ``device`` since the last reset (torch, CuPy when loaded)."""
    report = PeakReport(estimate_bytes=estimate_bytes)
    if not device.startswith("cuda"):
        return report
    if (torch := _torch_cuda()) is not None:
        report.torch_peak_bytes = int(torch.cuda.max_memory_allocated(device))
    if "cupy" in sys.modules:
        report.cupy_peak_bytes = int(sys.modules["cupy"].get_default_memory_pool().total_bytes())
    return report


def limit_capacity_gib(
    device: DeviceChoice, *, host: str | None = None, prefix: str | None = None
) -> int | None:
    """Slots (GiB) of the VRAM limit of the GPU ``device`` runs on; None on the CPU.

    What a run may plan to use of that GPU (card memory minus the pool's reserve, or the
    ``GpuPool`` override). On a host nobody ran ``deployments.setup`` on (a laptop, ``make
    demo``), the first call creates this host's limits from discovery, as setup would.

    Raises:
        BudgetError: the GPU has no limit and its name is per host or prefixed (setup creates
            those, naming the block), so none is invented here.
    """
    host, prefix = limit_naming(host, prefix)
    limit = gpu_limit(device, host=host, prefix=prefix)
    if limit is None:
        return None
    capacity = _capacity(limit)
    if capacity is None and host is None and prefix == DEFAULT_PREFIX:
        log.info("no VRAM limit %s yet: creating this host's limits from GPU discovery", limit)
        ensure_vram_limits()
        capacity = _capacity(limit)
    if capacity is None:
        raise BudgetError(
            f"no VRAM limit {limit!r} on the Prefect server: create it with "
            "`python -m deployments.setup` (with the GpuPool block that names this host, "
            f"--gpu-pool-block NAME) or check {VRAM_HOST_ENV}/{VRAM_PREFIX_ENV} of this worker"
        )
    return capacity


def run_capacity_bytes(
    device: DeviceChoice, asked_gib: float | None, *, fallback_bytes: int
) -> int:
    """Bytes a run's models may hold on ``device``: on a GPU its VRAM limit
    (:func:`limit_capacity_gib`: card minus the pool's reserve), narrowed by ``asked_gib``; on the
    CPU (no limit) ``asked_gib``, else ``fallback_bytes`` (room for what the run holds)."""
    limit_gib = limit_capacity_gib(device)
    asked = None if asked_gib is None else int(asked_gib * GIB)
    if limit_gib is None:
        return asked if asked is not None else fallback_bytes
    return min(limit_gib * GIB, asked) if asked is not None else limit_gib * GIB


@contextlib.contextmanager
def vram_budget(
    estimate: VramEstimate,
    *,
    device: DeviceChoice,
    timeout_s: float | None = 3600.0,
    fair: bool = True,
    lease_duration_s: float = DEFAULT_LEASE_S,
    host: str | None = None,
    prefix: str | None = None,
) -> Iterator[VramGrant]:
    """Hold ``estimate.gib`` slots of the device's VRAM limit around GPU work.

    Args:
        estimate: computed need (:mod:`gpuflows.core.memory.budget`), never a constant guessed in a flow.
        device: where the work runs; on the CPU nothing is held and the grant says so.
        timeout_s: longest wait for slots before ``TimeoutError`` (None: forever).
        fair: take the GPU's turnstile first, so large requests are not starved.
        lease_duration_s: slot lease; a killed holder's slots return after about this long.
        host: host prefix when several hosts share one server (``GpuPool.host``); default
            :data:`VRAM_HOST_ENV`, which ``deployments.setup`` gives such a host's workers.
        prefix: limit name prefix (``GpuPool.limit_prefix``); default :data:`VRAM_PREFIX_ENV`,
            else ``vram-gpu``.

    Raises:
        BudgetError: the request is larger than the card, or the GPU has no limit (run
            ``python -m deployments.setup`` or :func:`ensure_vram_limits` first).

    Example:
        >>> with vram_budget(estimate_arrays([((8192, 8192), "float32")] * 3), device=choice) as g:
        ...     run_matmul()
        >>> g.peak.ratio  # measured / estimate
    """
    need = gib_slots(estimate.nbytes)
    host, prefix = limit_naming(host, prefix)
    limit = gpu_limit(device, host=host, prefix=prefix)
    grant = VramGrant(
        device=device.device,
        limit=limit,
        occupy_gib=need if limit else 0,
        estimate_basis=estimate.basis,
    )
    if limit is None:
        grant.acquired_at = time.time()
        yield grant
        grant.released_at = time.time()
        grant.held_s = grant.released_at - grant.acquired_at
        return
    capacity = limit_capacity_gib(device, host=host, prefix=prefix)
    assert capacity is not None  # a GPU choice has a limit (or limit_capacity_gib raised)
    grant.capacity_gib = capacity
    check_fits(need, capacity, limit=limit)
    holder = _holder()
    t0 = time.monotonic()
    with contextlib.ExitStack() as held:
        if fair:
            with concurrency(
                f"{limit}{TURNSTILE_SUFFIX}",
                occupy=1,
                timeout_seconds=timeout_s,
                strict=True,
                lease_duration=lease_duration_s,
                holder=holder,
            ):
                # timeout_s bounds the whole wait, turnstile included (not twice timeout_s).
                left = None if timeout_s is None else max(0.01, timeout_s - (time.monotonic() - t0))
                held.enter_context(
                    concurrency(
                        limit,
                        occupy=need,
                        timeout_seconds=left,
                        strict=True,
                        lease_duration=lease_duration_s,
                        holder=holder,
                    )
                )
        else:
            held.enter_context(
                concurrency(
                    limit,
                    occupy=need,
                    timeout_seconds=timeout_s,
                    strict=True,
                    lease_duration=lease_duration_s,
                    holder=holder,
                )
            )
        grant.wait_s = time.monotonic() - t0
        grant.acquired_at = time.time()
        _reset_peaks(device.device)
        try:
            yield grant
        finally:
            grant.peak = measure_peak(device.device, estimate.nbytes)
            grant.released_at = time.time()
            grant.held_s = grant.released_at - grant.acquired_at
            if grant.peak.ratio is not None and grant.peak.ratio > 1.0:
                log.warning(
                    "VRAM estimate too small on %s: measured %.2f GiB > estimated %.2f GiB (%s)",
                    limit,
                    grant.peak.measured_bytes / 2**30,
                    estimate.nbytes / 2**30,
                    estimate.basis,
                )


def with_vram(estimate_fn: Callable[..., VramEstimate], *, device_arg: str = "device") -> Callable:
    """Decorator: hold the budget computed by ``estimate_fn(**kwargs)`` around the call.

    The wrapped function gets the grant as keyword ``vram_grant`` if it accepts one.
    """

    def deco(fn: Callable) -> Callable:
        import inspect

        takes_grant = "vram_grant" in inspect.signature(fn).parameters

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = inspect.signature(fn).bind_partial(*args, **kwargs)
            choice = bound.arguments[device_arg]
            est = estimate_fn(**{k: v for k, v in bound.arguments.items() if k != "vram_grant"})
            with vram_budget(est, device=choice) as grant:
                if takes_grant:
                    kwargs["vram_grant"] = grant
                return fn(*args, **kwargs)

        return wrapper

    return deco
