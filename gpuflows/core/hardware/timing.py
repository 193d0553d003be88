"""Timing GPU or CPU work correctly: warm-up excluded, device synchronised, monotonic clock.

CUDA launches are asynchronous, so a clock read without a synchronise measures the launch, not
the work. Every timer here calls ``sync()`` before each clock read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def device_sync(device: str) -> Callable[[], None]:
    """Return a function that waits for all queued work on ``device`` (a no-op for CPU)."""
    if device.startswith("cuda"):
        import torch

        dev = torch.device(device)
        return lambda: torch.cuda.synchronize(dev)
    return lambda: None


def time_callable(
    fn: Callable[[], Any],
    *,
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = lambda: None,
) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed.

    Args:
        fn: the work, taking no arguments.
        repeats: timed calls (>= 1).
        warmup: untimed calls first (>= 0): allocator, JIT and cache warm-up.
        sync: waits for queued device work; called before every clock read.

    Returns:
        Wall time of each timed call in milliseconds (``time.perf_counter_ns``).

    Example:
        >>> ms = time_callable(lambda: sum(range(1000)), repeats=5)
        >>> len(ms)
        5
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    for _ in range(warmup):
        fn()
    sync()
    out: list[float] = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter_ns()
        fn()
        sync()
        out.append((time.perf_counter_ns() - t0) / 1e6)
    return out
