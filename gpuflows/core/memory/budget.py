"""VRAM budget arithmetic: estimates in bytes, Prefect slots in whole GiB.

Each GPU is one global concurrency limit (``vram-gpu<N>``) whose slots are GiB of its memory. A
task's need is *computed* here, from parameter counts or array shapes, then rounded up to whole
slots; it is validated against the card before any slot is asked for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

from gpuflows.core.naming import slug

GIB = 1 << 30
MIB = 1 << 20

DTYPE_BYTES: dict[str, int] = {
    "float64": 8,
    "fp64": 8,
    "float32": 4,
    "fp32": 4,
    "tf32": 4,
    "float16": 2,
    "fp16": 2,
    "bfloat16": 2,
    "bf16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "fp8": 1,
    "float8": 1,
}

_LIMIT_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class BudgetError(ValueError):
    """A VRAM request that can never be met (bigger than the card, negative, unknown GPU)."""


class VramEstimate(BaseModel):
    """How much device memory a piece of work needs, and how that was worked out."""

    nbytes: int = Field(ge=0, description="Estimated peak device bytes.")
    basis: str = Field(
        description="How the estimate was computed (shapes, parameter count, margin)."
    )

    @property
    def gib(self) -> int:
        """Slots to occupy: whole GiB, rounded up, at least 1."""
        return gib_slots(self.nbytes)


def gib_slots(nbytes: int) -> int:
    """Whole GiB needed for ``nbytes`` (ceil, minimum 1: every GPU task holds at least a slot)."""
    if nbytes < 0:
        raise BudgetError(f"nbytes={nbytes} is negative: a memory estimate must be >= 0")
    return max(1, math.ceil(nbytes / GIB))


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a dtype name ('float32', 'bf16', 'torch.float16', ...)."""
    key = str(dtype).replace("torch.", "").replace("numpy.", "").lower()
    if key not in DTYPE_BYTES:
        raise BudgetError(f"dtype={dtype!r} unknown: use one of {sorted(DTYPE_BYTES)}")
    return DTYPE_BYTES[key]


def estimate_arrays(
    shapes: Iterable[tuple[Sequence[int], str]], *, margin: float = 0.1, what: str = "arrays"
) -> VramEstimate:
    """Estimate for a set of device arrays given as ``(shape, dtype)``, plus a workspace margin.

    Example:
        >>> estimate_arrays([((8192, 8192), "float32")] * 3).nbytes  # A, B, C of a matmul
        885837004
    """
    if margin < 0:
        raise BudgetError(f"margin={margin} is negative: use a fraction >= 0 (0.1 = 10 %)")
    total = 0
    parts = []
    for shape, dtype in shapes:
        n = math.prod(int(s) for s in shape) * dtype_bytes(dtype)
        total += n
        parts.append(f"{tuple(int(s) for s in shape)} {dtype}")
    return VramEstimate(
        nbytes=int(total * (1 + margin)),
        basis=f"{what}: {' + '.join(parts) or 'none'} (+{margin:.0%} workspace)",
    )


def estimate_model(
    n_params: int, dtype: str, *, activation_margin: float = 0.2, name: str = "model"
) -> VramEstimate:
    """Estimate for model weights (``n_params × bytes(dtype)``) plus an activation margin."""
    if n_params < 0:
        raise BudgetError(f"n_params={n_params} is negative")
    if activation_margin < 0:
        raise BudgetError(f"activation_margin={activation_margin} is negative: use a fraction >= 0")
    w = n_params * dtype_bytes(dtype)
    return VramEstimate(
        nbytes=int(w * (1 + activation_margin)),
        basis=f"{name}: {n_params:,} params × {dtype_bytes(dtype)} B ({dtype}) "
        f"+{activation_margin:.0%} activations",
    )


def limit_name(gpu_index: int, *, prefix: str = "vram-gpu", host: str | None = None) -> str:
    """Name of a GPU's VRAM limit: ``vram-gpu0``, or ``<host>-vram-gpu0`` on a shared server."""
    if gpu_index < 0:
        raise BudgetError(f"gpu_index={gpu_index} is negative")
    name = (
        f"{prefix}{gpu_index}"
        if host is None
        else f"{slug(host, empty='host')}-{prefix}{gpu_index}"
    )
    if not _LIMIT_RE.match(name):
        raise BudgetError(f"limit name {name!r} must be lowercase letters, digits and dashes")
    return name


def card_slots(total_memory_bytes: int, *, reserve_gib: int = 0) -> int:
    """Slots for a card: whole GiB of its memory (floor) minus a reserve for the CUDA context."""
    if reserve_gib < 0:
        raise BudgetError(f"reserve_gib={reserve_gib} is negative: use 0 or more GiB")
    slots = total_memory_bytes // GIB - reserve_gib
    if slots < 1:
        raise BudgetError(
            f"a card of {total_memory_bytes / GIB:.1f} GiB leaves no slot after "
            f"reserve_gib={reserve_gib}: lower the reserve"
        )
    return int(slots)


def check_fits(need_gib: int, capacity_gib: int, *, limit: str) -> None:
    """Fail at once when a request can never be granted (Prefect would answer HTTP 422 late).

    Raises:
        BudgetError: naming the limit, the request and the fix.
    """
    if need_gib < 1:
        raise BudgetError(f"occupy={need_gib} GiB on {limit}: a request must be >= 1 GiB")
    if need_gib > capacity_gib:
        raise BudgetError(
            f"occupy={need_gib} GiB exceeds {limit}'s {capacity_gib} GiB: this work cannot fit on "
            "that card; reduce the batch/tile size, shard the model (device_map/max_memory), "
            "or run it on a larger GPU"
        )


class PeakReport(BaseModel):
    """The estimate beside what was measured, so estimators can be trusted or fixed."""

    estimate_bytes: int
    torch_peak_bytes: int | None = None
    cupy_peak_bytes: int | None = None
    nvml_used_bytes: int | None = None

    @property
    def measured_bytes(self) -> int | None:
        vals = [v for v in (self.torch_peak_bytes, self.cupy_peak_bytes) if v is not None]
        return max(vals) if vals else self.nvml_used_bytes

    @property
    def ratio(self) -> float | None:
        """measured / estimate (> 1 means the estimate was too small)."""
        m = self.measured_bytes
        return None if m is None or self.estimate_bytes == 0 else m / self.estimate_bytes
