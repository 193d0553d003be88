"""Items per model call for one stage of work, sized from the VRAM budget and shrunk by OOMs.

Batch sizes are measured on the device, never guessed. A batch's device memory is the resident
weights plus activations that grow with the batch. The activations per item are not known in
advance for an arbitrary diffusers / transformers model (resolution, steps, attention
implementation all matter), so they are *measured*: the first batch runs with one item, the
allocator's peak above what was allocated before it is that item's cost (an upper bound: it
includes fixed workspace), and the next batches take as many items as the budget's headroom holds
(:func:`batch_from_peak`). No work is wasted on a probe: the one-item batch is real work.

``BatchSizer(fixed, device, capacity).run(items, fn)`` calls ``fn(sub_batch) -> outputs`` over
``items`` in sub-batches of ``sizer.size``:

* ``fixed=None`` on a GPU: the first batch has one item and the allocator's peak during it sizes
  the rest (:func:`batch_from_peak`); on the CPU, where there is no VRAM budget,
  :data:`DEFAULT_CPU_BATCH`; else ``fixed``.
* An OOM halves the sub-batch and goes on from the first item not yet done (nothing finished is
  computed again); the smaller size is kept for the rest of the stage.
* An item that runs out of memory *alone* does not stop the others: its output is an
  :class:`ItemOOM` (the caller records it as that item's error, to be retried by a later run).

Units: bytes. No Prefect; torch is imported only to read the CUDA allocator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gpuflows.core.faults import is_oom, release_memory

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


@dataclass(frozen=True)
class ItemOOM:
    """The output for an item that ran out of memory in a batch of one."""

    error: str

    def message(self, capacity_bytes: int) -> str:
        """Why, and what to do, for the item's record."""
        return (
            f"out of memory on this item alone within the {capacity_bytes / 2**30:.2f} GiB budget "
            f"({self.error}); a later run retries it. If it fails again: a larger "
            "vram_budget_gib, dtype='bfloat16', or a smaller image"
        )


class BatchSizer:
    """Sub-batch size for one stage; see the module docstring."""

    def __init__(self, fixed: int | None, device: str, capacity_bytes: int) -> None:
        self.device, self.capacity = device, capacity_bytes
        cuda = device.startswith("cuda")
        self._measure = fixed is None and cuda
        if fixed is not None:
            self.size, self.basis = fixed, f"batch_size={fixed} (parameter)"
        elif cuda:
            self.size, self.basis = 1, "first batch of one item, to measure"
        else:
            self.size, self.basis = DEFAULT_CPU_BATCH, f"CPU: no VRAM budget, {DEFAULT_CPU_BATCH}"
        self.oom_halvings = 0
        self.items_oom = 0

    def run(self, items: Sequence[Any], fn: Callable[[list[Any]], list[Any]]) -> list[Any]:
        """``fn`` (one output per item, in order) over ``items``; the outputs in order, an
        :class:`ItemOOM` for each item that ran out of memory alone. Other errors propagate."""
        measure = self._measure
        before = self._allocator_start() if measure else 0
        done: list[Any] = []
        start = bs = max(1, min(self.size, len(items)))
        chain = None  # the size before the halvings: restored if they end at one item failing
        while len(done) < len(items):
            sub = list(items[len(done) : len(done) + bs])
            error = None
            try:
                done.extend(fn(sub))
            except Exception as exc:  # noqa: BLE001 - only OOMs are handled; the rest re-raised
                if not is_oom(exc):
                    raise
                error = f"{type(exc).__name__}: {exc}"[:300]
                del exc  # its traceback holds the frames that hold the batch's tensors
            if error is None:
                continue
            release_memory()
            measure = False
            if bs > 1:
                chain = chain or bs
                bs //= 2
                self.oom_halvings += 1
            else:  # this item does not fit even alone: the others go on at the earlier size
                done.append(ItemOOM(error))
                self.items_oom += 1
                bs, chain = chain or 1, None
        if bs < start:  # an OOM set the size: nothing left to measure
            self.size, self._measure = bs, False
            self.basis += f"; OOM at {start} -> {bs}"
        elif measure:
            self._size_from_peak(before, start)
            self._measure = False
        return done

    def _allocator_start(self) -> int:
        import torch

        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return torch.cuda.memory_allocated(self.device)

    def _size_from_peak(self, before: int, items: int) -> None:
        import torch

        plan = batch_from_peak(
            capacity=self.capacity,
            allocated_before=before,
            peak=torch.cuda.max_memory_allocated(self.device),
            items=items,
        )
        self.size, self.basis = plan.size, plan.basis

    def record(self) -> dict[str, Any]:
        """What the report shows: the size used last, why, OOM halvings, items that ran out of
        memory alone."""
        return {
            "size": self.size,
            "basis": self.basis,
            "oom_halvings": self.oom_halvings,
            "items_oom": self.items_oom,
        }
