"""Batch sizes from a VRAM budget: measured on the device, never guessed.

A batch's device memory is the resident weights plus activations that grow with the batch. The
activations per item are not known in advance for an arbitrary diffusers / transformers model
(resolution, steps, attention implementation all matter), so they are *measured*: the first batch
runs with one item, the allocator's peak above what was allocated before it is that item's cost
(an upper bound: it includes fixed workspace), and the next batches take as many items as the
budget's headroom holds. No work is wasted on a probe: the one-item batch is real work.

Units: bytes. No torch, no Prefect: the caller reads the allocator and passes numbers in.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_CPU_BATCH = 4
"""Items per model call on the CPU, where there is no VRAM budget to size from."""
MAX_BATCH = 32
"""Largest batch sized from the budget (beyond this a GPU gains little and latency grows)."""
HEADROOM = 0.9
"""Share of the budget's free bytes a batch may plan to use (allocator fragmentation)."""


@dataclass(frozen=True)
class BatchPlan:
    """A batch size and the numbers behind it."""

    size: int
    basis: str
    per_item_bytes: int | None = None
    free_bytes: int | None = None


def batch_from_peak(
    *,
    capacity: int,
    allocated_before: int,
    peak: int,
    items: int,
    max_batch: int = MAX_BATCH,
    headroom: float = HEADROOM,
) -> BatchPlan:
    """Items per batch that fit the budget, from one measured batch.

    Args:
        capacity: bytes the budget allows on the device (the VRAM limit, or the run's budget).
        allocated_before: allocator bytes just before the measured batch (the resident models).
        peak: the allocator's peak during that batch.
        items: items in the measured batch (>= 1).
        max_batch: upper bound of the result.
        headroom: share of the free bytes a batch may use.

    Returns:
        At least 1 (a single item is what the budget was checked for), at most ``max_batch``.

    Example:
        >>> batch_from_peak(capacity=10_000, allocated_before=4_000, peak=4_500, items=1).size
        10
    """
    if items < 1:
        raise ValueError(f"items={items}: a measured batch has at least one item")
    if max_batch < 1 or not 0 < headroom <= 1:
        raise ValueError(f"max_batch={max_batch}, headroom={headroom}: need >= 1 and in (0, 1]")
    per_item = max(1, -(-(peak - allocated_before) // items))  # ceil, and never 0
    free = int((capacity - allocated_before) * headroom)
    size = max(1, min(max_batch, free // per_item))
    basis = (
        f"measured {per_item / 2**20:.1f} MiB per item over {items} item(s); "
        f"{max(free, 0) / 2**30:.2f} GiB free of the {capacity / 2**30:.2f} GiB budget "
        f"({headroom:.0%}) -> {size}"
        + (f" (capped at {max_batch})" if free // per_item > max_batch else "")
    )
    return BatchPlan(size=size, basis=basis, per_item_bytes=per_item, free_bytes=free)
