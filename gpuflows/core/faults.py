"""What kind of failure is this, and what should happen next.

Three classes: out-of-memory (retry smaller, finally on CPU), transient (retry with backoff),
and invalid input (fail at once, never retry). Optional libraries are recognised by class name
and module, so this module imports neither torch nor CuPy.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

_OOM_TEXT = (
    "out of memory",
    "cuda_error_out_of_memory",
    "cudaerrormemoryallocation",
    "cublas_status_alloc_failed",
)


class InputError(ValueError):
    """Bad input: the message names the field and the fix. Never retried."""


class TransientError(RuntimeError):
    """A fault worth retrying as is (flaky endpoint, worker lost, timeout)."""


def is_oom(exc: BaseException) -> bool:
    """True for torch/CuPy out-of-memory errors, MemoryError and 'out of memory' messages."""
    for cls in type(exc).__mro__:
        if cls.__name__ in ("OutOfMemoryError", "MemoryError"):
            return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError | OSError) and any(s in text for s in _OOM_TEXT)


def is_transient(exc: BaseException) -> bool:
    """True for faults that may pass on their own: timeouts, connection problems, our TransientError."""
    if isinstance(exc, TransientError | TimeoutError | ConnectionError):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(
        names
        & {
            "TimeoutException",
            "NetworkError",
            "RemoteProtocolError",
            "APIConnectionError",
            "APITimeoutError",
            "RateLimitError",
            "ServiceUnavailableError",
        }
    )


def should_retry(exc: BaseException) -> bool:
    """Retry OOM and transient faults; never invalid input (``InputError``, ``ValueError``, ``TypeError``)."""
    if isinstance(exc, ValueError | TypeError | KeyError):
        return False
    return is_oom(exc) or is_transient(exc)


class Attempt(BaseModel):
    """One try of a piece of work under :func:`run_with_oom_fallback`."""

    device: str
    batch_size: int
    ok: bool
    error: str | None = None


class FallbackRecord(BaseModel):
    """Every attempt, so a result says how it was obtained (batch halved, fell back to CPU)."""

    attempts: list[Attempt] = Field(default_factory=list)

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]

    @property
    def fell_back_to_cpu(self) -> bool:
        return self.final.device == "cpu" and self.attempts[0].device != "cpu"


def release_memory() -> None:
    """Collect garbage and return cached blocks to the driver (torch, CuPy) after an OOM."""
    gc.collect()
    import importlib.util
    import sys

    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if "cupy" in sys.modules and importlib.util.find_spec("cupy") is not None:
        sys.modules["cupy"].get_default_memory_pool().free_all_blocks()


def run_with_oom_fallback(
    fn: Callable[[int, str], T],
    *,
    batch_size: int,
    device: str,
    min_batch_size: int = 1,
    allow_cpu: bool = True,
    on_attempt: Callable[[Attempt], Any] | None = None,
) -> tuple[T, FallbackRecord]:
    """Call ``fn(batch_size, device)``; on OOM halve the batch, below the minimum move to the CPU.

    The CPU attempt keeps the smallest batch; an OOM there too is raised.

    Args:
        fn: the work; it must produce the same result for any batch size (batching is a
            throughput choice, not a semantic one).
        batch_size: first batch size (>= 1).
        device: first device ('cuda:0', 'cpu').
        min_batch_size: smallest batch tried on the GPU before the CPU.
        allow_cpu: whether the last resort is the CPU (else the OOM is raised).
        on_attempt: called with each :class:`Attempt` (logging, progress).

    Returns:
        ``(result, record)`` where ``record.attempts`` lists every try.

    Raises:
        InputError: batch sizes below 1. Non-OOM errors propagate unchanged at once.
    """
    if batch_size < 1 or min_batch_size < 1:
        raise InputError(
            f"batch_size={batch_size}, min_batch_size={min_batch_size}: both must be >= 1"
        )
    record = FallbackRecord()
    bs, dev = batch_size, device
    while True:
        try:
            out = fn(bs, dev)
        except BaseException as exc:
            if not is_oom(exc):
                raise
            att = Attempt(
                device=dev, batch_size=bs, ok=False, error=f"{type(exc).__name__}: {exc}"[:300]
            )
            record.attempts.append(att)
            if on_attempt:
                on_attempt(att)
            del exc
            release_memory()
            if bs // 2 >= min_batch_size:
                bs //= 2
            elif dev != "cpu" and allow_cpu:
                dev = "cpu"
            else:
                raise
            continue
        att = Attempt(device=dev, batch_size=bs, ok=True)
        record.attempts.append(att)
        if on_attempt:
            on_attempt(att)
        return out, record
