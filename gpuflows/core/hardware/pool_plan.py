"""GPU pool planning: which VRAM limits a host needs and how many GiB slots each gets.

Pure arithmetic and checks behind the ``GpuPool`` block (``blocks/gpu_pool.py``); no Prefect.
A GPU is identified by its physical NVML index (the number ``nvidia-smi`` shows and a per-GPU
worker's ``CUDA_VISIBLE_DEVICES`` names), falling back to the logical index when discovery did
not go through NVML -- the same identity ``tasks/vram.py`` uses for limit names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from gpuflows.core.hardware.devices import GpuInfo
from gpuflows.core.memory.budget import GIB, MIB, BudgetError, card_slots, limit_name
from gpuflows.core.naming import slug

CPU_LIMIT = "vram-cpu"
"""Name of the optional limit for CPU-only work that needs host memory (slots are GiB)."""

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(GiB|GB|MiB|MB)\s*$")
_SIZE_UNITS = {"GiB": GIB, "GB": 10**9, "MiB": MIB, "MB": 10**6}


def gpu_id(gpu: GpuInfo) -> int:
    """The index a GPU's limit is named after: physical NVML index, else the logical one."""
    return gpu.nvml_index if gpu.nvml_index is not None else gpu.index


def check_gpu_indices(indices: Iterable[int]) -> list[int]:
    """Reject negative or repeated GPU indices; return them as a list.

    Raises:
        BudgetError: naming the offending indices and the fix.
    """
    out = list(indices)
    negative = [i for i in out if i < 0]
    if negative:
        raise BudgetError(
            f"gpu_indices={out} has negative indices {negative}: use GPU numbers "
            ">= 0 as nvidia-smi shows them, or None for every GPU"
        )
    dupes = sorted({i for i in out if out.count(i) > 1})
    if dupes:
        raise BudgetError(f"gpu_indices={out} repeats {dupes}: list each GPU once")
    return out


def check_vram_overrides(overrides: Mapping[int, int], gpu_indices: Sequence[int] | None) -> None:
    """Each override is a GPU index >= 0 with > 0 slots, inside ``gpu_indices`` when it is given.

    Raises:
        BudgetError: naming the GPU, the value and the fix.
    """
    for idx, slots in overrides.items():
        if idx < 0:
            raise BudgetError(f"vram_gib has GPU index {idx}: use GPU numbers >= 0")
        if slots < 1:
            raise BudgetError(
                f"vram_gib[{idx}]={slots}: slots are GiB of VRAM and must be >= 1 "
                "(leave the GPU out of gpu_indices to give it no budget)"
            )
        if gpu_indices is not None and idx not in gpu_indices:
            raise BudgetError(
                f"vram_gib overrides GPU {idx}, which gpu_indices={list(gpu_indices)} "
                "leaves out: add it to gpu_indices or drop the override"
            )


def cpu_limit_name(*, host: str | None = None) -> str:
    """``vram-cpu``, or ``<host>-vram-cpu`` when several hosts share one Prefect server."""
    return CPU_LIMIT if host is None else f"{slug(host, empty='host')}-{CPU_LIMIT}"


def plan_pool_limits(
    gpus: Sequence[GpuInfo],
    *,
    gpu_indices: Sequence[int] | None = None,
    vram_gib: Mapping[int, int] | None = None,
    reserve_gib: int = 1,
    prefix: str = "vram-gpu",
    host: str | None = None,
    cpu_limit_slots: int | None = None,
) -> dict[str, int]:
    """Limit name -> slots (GiB) for the GPUs of a pool, plus the optional CPU memory limit.

    Args:
        gpus: what device discovery found on this host.
        gpu_indices: GPUs to budget (physical indices); None means every GPU found.
        vram_gib: slots per GPU that replace ``card memory - reserve_gib``; may not exceed the
            card's whole GiB of memory.
        reserve_gib: GiB per card left out of the budget for the CUDA context.
        prefix: limit name prefix (``vram-gpu`` -> ``vram-gpu0``).
        host: host name prefixed to every limit when several hosts share one server.
        cpu_limit_slots: slots of the ``vram-cpu`` limit; None means no such limit.

    Raises:
        BudgetError: a requested GPU discovery does not show, an override larger than its card,
            a card too small for the reserve.

    Example:
        >>> from gpuflows.core.hardware.devices import GpuInfo
        >>> cards = [GpuInfo(index=i, name="H100", total_memory_bytes=80 * GIB) for i in (0, 1)]
        >>> plan_pool_limits(cards, reserve_gib=1)
        {'vram-gpu0': 79, 'vram-gpu1': 79}
    """
    overrides = dict(vram_gib or {})
    by_id = {gpu_id(g): g for g in gpus}
    if gpu_indices is None:
        wanted = list(by_id)
    else:
        wanted = check_gpu_indices(gpu_indices)
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            raise BudgetError(
                f"gpu_indices asks for GPU {', '.join(map(str, unknown))}, which discovery does not "
                f"show (visible: {sorted(by_id) or 'none'}): fix gpu_indices or CUDA_VISIBLE_DEVICES"
            )
    check_vram_overrides(overrides, gpu_indices)
    unseen = sorted(i for i in overrides if i not in by_id)
    if unseen:
        raise BudgetError(
            f"vram_gib overrides GPU {', '.join(map(str, unseen))}, which discovery does not show "
            f"(visible: {sorted(by_id) or 'none'}): drop the override or fix CUDA_VISIBLE_DEVICES"
        )
    plan: dict[str, int] = {}
    for idx in wanted:
        card = by_id[idx]
        name = limit_name(idx, prefix=prefix, host=host)
        if idx in overrides:
            card_gib = card.total_memory_bytes // GIB
            if overrides[idx] > card_gib:
                raise BudgetError(
                    f"vram_gib[{idx}]={overrides[idx]} GiB is more than GPU {idx} ({card.name}) has "
                    f"({card_gib} GiB): lower the override or drop it to use card memory - reserve"
                )
            plan[name] = int(overrides[idx])
        else:
            plan[name] = card_slots(card.total_memory_bytes, reserve_gib=reserve_gib)
    if cpu_limit_slots is not None:
        if cpu_limit_slots < 1:
            raise BudgetError(
                f"cpu_limit_slots={cpu_limit_slots}: use >= 1 GiB, or None for no limit"
            )
        plan[cpu_limit_name(host=host)] = int(cpu_limit_slots)
    return plan


def parse_memory_size(text: str) -> int:
    """Bytes in a size such as ``'70GiB'``, ``'64 GB'``, ``'512MiB'`` (units GiB, GB, MiB, MB).

    Units are case-sensitive on purpose: accelerate reads ``'5Gb'`` as gigabits.

    Example:
        >>> parse_memory_size("1.5GiB")
        1610612736
    """
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValueError(
            f"{text!r} is not a memory size: write a number and a unit, one of "
            f"{list(_SIZE_UNITS)} (e.g. '70GiB')"
        )
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
