"""TF32 / float32-matmul-precision flags: switch TF32 for a block and read the flag state.

Flags only, safe without a GPU; used by
:func:`gpuflows.pipelines.gpu_baseline.hwbench.matmul_tflops`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


@contextmanager
def cuda_tf32(enabled: bool) -> Iterator[None]:
    """Allow (or forbid) TF32 for fp32 matmul inside the block; restore every related flag after.

    Sets ``torch.set_float32_matmul_precision("high" | "highest")``, which on torch >= 2.9 sets
    the legacy flag (``torch.backends.cuda.matmul.allow_tf32``) and the new per-backend
    ``fp32_precision`` flags together: cuBLAS raises when the two APIs disagree, so a half-set
    state must never reach it. On exit the legacy precision and the new per-backend precisions
    are put back as they were. When the legacy value cannot be read (the caller had already
    mixed the APIs, typically by setting only ``fp32_precision``) it is restored to its
    default, ``"highest"``. Safe without a GPU (flags only).
    """
    new_api: list[tuple[Any, str]] = []
    for obj in (
        torch.backends.cuda.matmul,
        getattr(getattr(torch.backends, "mkldnn", None), "matmul", None),
    ):
        try:
            new_api.append((obj, obj.fp32_precision))
        except (AttributeError, RuntimeError):  # torch < 2.9: legacy API only
            pass
    try:
        legacy = torch.get_float32_matmul_precision()
    except RuntimeError:  # APIs already mixed by the caller: the legacy value is unreadable
        legacy = "highest"
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(legacy)
        for obj, old in new_api:
            obj.fp32_precision = old


def tf32_state() -> dict[str, str]:
    """The TF32-related flags, for provenance and for tests that check they were restored."""
    out: dict[str, str] = {}
    m = torch.backends.cuda.matmul
    for key, getter in (
        ("cuda_matmul_fp32_precision", lambda: m.fp32_precision),
        ("mkldnn_matmul_fp32_precision", lambda: torch.backends.mkldnn.matmul.fp32_precision),
        ("float32_matmul_precision", torch.get_float32_matmul_precision),
    ):
        try:
            out[key] = str(getter())
        except (AttributeError, RuntimeError) as exc:
            out[key] = f"unreadable: {type(exc).__name__}"
    return out


__all__ = ["cuda_tf32", "tf32_state"]
