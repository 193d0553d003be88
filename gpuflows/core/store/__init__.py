"""Store: what a run writes, durably.

- :mod:`~gpuflows.core.store.io`: atomic JSON / Parquet / bytes files under :func:`results_root`.
- :mod:`~gpuflows.core.store.ledger`: an append-only JSONL ledger of finished items, by key.
- :mod:`~gpuflows.core.store.progress`: a progress clock (done/total, rate, time left).
- :mod:`~gpuflows.core.store.stage_runner`: :class:`StageRunner`, the checkpointed batched stage
  loop (ledger keys, batch sizer, OOM halving, progress).
"""

from gpuflows.core.store.io import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    read_json,
    results_root,
)
from gpuflows.core.store.ledger import Ledger, item_key
from gpuflows.core.store.progress import ProgressClock
from gpuflows.core.store.stage_runner import StageRunner

__all__ = [
    "Ledger",
    "ProgressClock",
    "StageRunner",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_parquet",
    "item_key",
    "read_json",
    "results_root",
]
