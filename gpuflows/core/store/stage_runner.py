"""One checkpointed, batched stage of work: items -> ledger keys -> batches -> records.

A pipeline stage (edit every image, score every answer, embed every document) is the same loop
whatever the model: skip every item the ledger already holds, run the rest in batches sized from
the budget, halve a batch on an out-of-memory error, count progress, and record each finished
item durably before the next batch. :class:`StageRunner` is that loop; the pipeline supplies
what differs:

* ``key(item)``: digest of everything the item's result depends on
  (:func:`gpuflows.core.store.ledger.item_key`). A recorded key is never computed again, unless
  its record says ``"retry": true`` (an item that ran out of memory alone) or ``stands(record)``
  says its output is gone (a deleted file).
* ``load(item)``: the model input of one item (decode an image); an exception of
  ``item_errors`` becomes that item's error record (``failed(item)`` + ``"error"``), the batch
  goes on.
* ``compute([(item, input), ...])``: one model call, one output per input, in order
  (:class:`~gpuflows.core.memory.batch_sizer.BatchSizer` sub-batches it and halves it on OOM).
* ``finish(item, output, seconds_per_item)``: the record's fields for a computed item (write
  big outputs to disk *before* returning: the record then never points at a missing file).

An item that runs out of memory even alone is recorded as ``failed(item)`` + ``"error"`` +
``"retry": True``: the stage goes on and a later run tries that item again. Any other exception
propagates (a retried task re-runs the stage and skips what was recorded).

No Prefect, no model code: a task publishes progress through ``on_progress(n)`` (called with the
number of items just finished: those found in the ledger, then each batch).

Example:
    >>> import tempfile, pathlib
    >>> from gpuflows.core.memory.batch_sizer import BatchSizer
    >>> from gpuflows.core.store.ledger import Ledger, item_key
    >>> led = Ledger(pathlib.Path(tempfile.mkdtemp()) / "square.jsonl")
    >>> def stage(xs):
    ...     return StageRunner(xs, key=lambda x: item_key(x=x), ledger=led,
    ...                        sizer=BatchSizer(2, "cpu", 0),
    ...                        finish=lambda x, y, s: {"x": x, "y": y})
    >>> first = stage([1, 2, 3])
    >>> first.run(lambda batch: [x * x for x, _ in batch])
    >>> [r["y"] for r in first.records()], first.computed
    ([1, 4, 9], 3)
    >>> again = stage([1, 2, 3, 4])
    >>> len(again.todo)
    1
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from gpuflows.core.memory.batch_sizer import BatchSizer, ItemOOM
from gpuflows.core.store.ledger import Ledger
from gpuflows.core.store.progress import ProgressClock

T = TypeVar("T")


def _no_fields(item: Any) -> dict[str, Any]:
    return {}


def _itself(item: Any) -> Any:
    return item


def _always(record: dict[str, Any]) -> bool:
    return True


class StageRunner(Generic[T]):
    """Items of one stage, what is left to do of them, and the loop that does it.

    Attributes:
        items: the stage's items, in order.
        keys: their ledger keys, in the same order.
        todo: ``(item, key)`` still to compute (not recorded, to retry, or no longer standing),
            first occurrence of each key only.
        lost: items whose record no longer stands (``stands`` said so): computed again.
        computed: records this runner appended (items computed, failed or out of memory).
        clock: progress over ``items`` (those already recorded count as done); None without items.
    """

    def __init__(
        self,
        items: Sequence[T],
        *,
        key: Callable[[T], str],
        ledger: Ledger,
        sizer: BatchSizer,
        finish: Callable[[T, Any, float], dict[str, Any]],
        failed: Callable[[T], dict[str, Any]] = _no_fields,
        load: Callable[[T], Any] = _itself,
        item_errors: tuple[type[Exception], ...] = (),
        stands: Callable[[dict[str, Any]], bool] = _always,
        on_progress: Callable[[int], object] | None = None,
    ) -> None:
        self.items = list(items)
        self.keys = [key(item) for item in self.items]
        self.ledger, self.sizer = ledger, sizer
        self._finish, self._failed, self._load = finish, failed, load
        self._item_errors = item_errors
        self._on_progress = on_progress
        done = ledger.latest()
        keyed = list(zip(self.items, self.keys, strict=True))
        lost = [(item, k) for item, k in keyed if k in done and not stands(done[k])]
        self.lost = [item for item, _ in lost]
        lost_keys = {k for _, k in lost}
        self.todo: list[tuple[T, str]] = []
        queued: set[str] = set()
        for item, k in keyed:
            if k in queued:
                continue
            if k not in done or done[k].get("retry") or k in lost_keys:
                self.todo.append((item, k))
                queued.add(k)
        self.computed = 0
        self.clock = ProgressClock(total=len(self.items)) if self.items else None
        self._advance(len(self.items) - len(self.todo))

    def _advance(self, n: int) -> None:
        if n <= 0:
            return
        if self.clock is not None:
            self.clock.advance(n)
        if self._on_progress is not None:
            self._on_progress(n)

    def _record(self, key: str, fields: dict[str, Any]) -> None:
        self.ledger.append({**fields, "key": key})
        self.computed += 1

    def run(self, compute: Callable[[list[tuple[T, Any]]], list[Any]]) -> None:
        """Compute every item of :attr:`todo`, batch after batch, recording each one.

        Args:
            compute: one model call over ``[(item, load(item)), ...]``; one output per pair,
                in order.
        """
        i = 0
        while i < len(self.todo):
            batch, i = self.todo[i : i + self.sizer.size], i + self.sizer.size
            t0 = time.perf_counter()
            ok: list[tuple[T, str, Any]] = []
            for item, k in batch:
                try:
                    ok.append((item, k, self._load(item)))
                except self._item_errors as exc:
                    self._record(k, {**self._failed(item), "error": str(exc)})
            inputs = [(item, x) for item, _, x in ok]
            outputs = self.sizer.run(inputs, compute) if inputs else []
            per_item_s = (time.perf_counter() - t0) / len(batch)
            for (item, k, _), out in zip(ok, outputs, strict=True):
                if isinstance(out, ItemOOM):
                    fields = {
                        **self._failed(item),
                        "error": out.message(self.sizer.capacity),
                        "retry": True,
                    }
                else:
                    fields = self._finish(item, out, per_item_s)
                self._record(k, fields)
            self._advance(len(batch))

    def records(self) -> list[dict[str, Any]]:
        """The ledger's latest record of each item, in :attr:`items` order.

        Raises:
            LookupError: an item has no record (``run`` was not called while :attr:`todo` was
                not empty).
        """
        latest = self.ledger.latest()
        missing = [k for k in self.keys if k not in latest]
        if missing:
            raise LookupError(
                f"{len(missing)} of {len(self.keys)} items have no record in {self.ledger.path}: "
                "call run(compute) while todo is not empty"
            )
        return [latest[k] for k in self.keys]
