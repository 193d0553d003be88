"""Items per model call for one stage of work, sized from the VRAM budget and shrunk by OOMs.

``BatchSizer(fixed, device, capacity).run(items, fn)`` calls ``fn(sub_batch) -> outputs`` over
``items`` in sub-batches of ``sizer.size``:

* ``fixed=None`` on a GPU: the first batch has one item and the allocator's peak during it sizes
  the rest (:func:`gpuflows.core.memory.batching.batch_from_peak`); on the CPU, where there is no VRAM budget,
  :data:`~gpuflows.core.memory.batching.DEFAULT_CPU_BATCH`; else ``fixed``.
* An OOM halves the sub-batch and goes on from the first item not yet done (nothing finished is
  computed again); the smaller size is kept for the rest of the stage.
* An item that runs out of memory *alone* does not stop the others: its output is an
  :class:`ItemOOM` (the caller records it as that item's error, to be retried by a later run).

No Prefect; torch is imported only to read the CUDA allocator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gpuflows.core.faults import is_oom, release_memory
from gpuflows.core.memory.batching import DEFAULT_CPU_BATCH, batch_from_peak


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
