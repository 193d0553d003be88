"""Memory: VRAM budgets in bytes and GiB slots, model sizes, batch sizing, model residency.

- :mod:`~gpuflows.core.memory.budget`: estimates, limit names, slots, peak reports.
- :mod:`~gpuflows.core.memory.model_size` / :mod:`~gpuflows.core.memory.weight_files`: what a
  model needs, from its modules or its weight files; a folder's fingerprint.
- :mod:`~gpuflows.core.memory.batch_sizer`: items per call, measured, halved on OOM.
- :mod:`~gpuflows.core.memory.residency`: which models stay on the GPU, every move counted.

Torch is imported lazily (inside functions); no Prefect. The function
:func:`gpuflows.core.memory.weight_files.weight_files` is not re-exported: its name is its
module's, which ``from gpuflows.core.memory import weight_files`` must keep meaning.
"""

from gpuflows.core.memory.batch_sizer import BatchSizer, ItemOOM
from gpuflows.core.memory.budget import (
    GIB,
    MIB,
    BudgetError,
    PeakReport,
    VramEstimate,
    card_slots,
    check_fits,
    gib_slots,
    limit_name,
)
from gpuflows.core.memory.model_size import nbytes_of, need_from_weights
from gpuflows.core.memory.residency import MoveRecord, ResidencyError, ResidencyManager, gb_per_s
from gpuflows.core.memory.weight_files import MEMO_ENV, model_fingerprint

__all__ = [
    "GIB",
    "MEMO_ENV",
    "MIB",
    "BatchSizer",
    "BudgetError",
    "ItemOOM",
    "MoveRecord",
    "PeakReport",
    "ResidencyError",
    "ResidencyManager",
    "VramEstimate",
    "card_slots",
    "check_fits",
    "gb_per_s",
    "gib_slots",
    "limit_name",
    "model_fingerprint",
    "nbytes_of",
    "need_from_weights",
]
