"""Fault classes and the OOM fallback ladder (halve the batch, then the CPU), without a GPU."""

from __future__ import annotations

import pytest

from gpuflows.core.faults import (
    Attempt,
    FallbackRecord,
    InputError,
    TransientError,
    is_oom,
    is_transient,
    release_memory,
    run_with_oom_fallback,
    should_retry,
)


class OutOfMemoryError(RuntimeError):
    """Named as torch and CuPy name theirs."""


class CupyStyleOOM(MemoryError):
    """CuPy's OutOfMemoryError derives from MemoryError."""


class TimeoutException(Exception):
    """Named like httpx's, which derives from neither TimeoutError nor ConnectionError."""


class SubclassOfOOM(OutOfMemoryError):
    pass


# --- classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        OutOfMemoryError("boom"),
        SubclassOfOOM("found through the MRO"),
        CupyStyleOOM("out of device memory"),
        MemoryError(),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.3 GiB total)"),
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"),
        RuntimeError("cudaErrorMemoryAllocation: out of memory"),
        OSError("CUDA_ERROR_OUT_OF_MEMORY"),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(e)[:20],
)
def test_is_oom_true(exc):
    assert is_oom(exc)
    assert should_retry(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("out of memory"),  # text alone does not make a ValueError an OOM
        ValueError("bad shape"),
        RuntimeError("CUDA error: device-side assert triggered"),
        KeyError("memory"),
        Exception("out of memory"),  # only RuntimeError/OSError messages are read
        TimeoutError(),
    ],
    ids=lambda e: type(e).__name__ + ":" + str(e)[:20],
)
def test_is_oom_false(exc):
    assert not is_oom(exc)


def test_is_oom_recognises_the_real_torch_class():
    torch = pytest.importorskip("torch")
    exc = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
    assert type(exc).__name__ == "OutOfMemoryError"
    assert is_oom(exc)
    assert should_retry(exc)
    # recognised by class, not only by message
    assert is_oom(torch.cuda.OutOfMemoryError("no usual text"))


@pytest.mark.parametrize(
    "exc",
    [
        TimeoutError("read timed out"),
        ConnectionError("reset"),
        ConnectionResetError(),
        TransientError("worker lost"),
        TimeoutException("httpx-style"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_is_transient_true(exc):
    assert is_transient(exc)
    assert should_retry(exc)


@pytest.mark.parametrize(
    "exc", [ValueError("x"), RuntimeError("x"), InputError("x"), OutOfMemoryError("x")]
)
def test_is_transient_false(exc):
    assert not is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("CUDA out of memory"),
        InputError("out of memory: batch_size must be >= 1"),
        TypeError("timeout"),
        KeyError("out of memory"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_should_retry_never_for_invalid_input(exc):
    assert not should_retry(exc)


def test_should_retry_false_for_plain_bugs():
    assert not should_retry(RuntimeError("index out of range"))
    assert not should_retry(ZeroDivisionError())


def test_input_error_is_a_value_error_and_transient_a_runtime_error():
    assert issubclass(InputError, ValueError)
    assert issubclass(TransientError, RuntimeError)


# --- run_with_oom_fallback ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def released(monkeypatch):
    """Count release_memory() calls; the real one (a full gc.collect, ~0.2 s) is tested below."""
    import gpuflows.core.faults as faults

    calls: list[int] = []
    monkeypatch.setattr(faults, "release_memory", lambda: calls.append(1))
    return calls


class Work:
    """A fn(batch_size, device) that OOMs under a chosen rule and records its calls."""

    def __init__(self, ooms):
        self.ooms = ooms
        self.calls: list[tuple[int, str]] = []

    def __call__(self, bs: int, device: str) -> str:
        self.calls.append((bs, device))
        if self.ooms(bs, device):
            raise OutOfMemoryError(f"CUDA out of memory at batch {bs} on {device}")
        return f"done bs={bs} on {device}"


def test_halves_batch_until_it_fits_on_the_gpu(released):
    work = Work(lambda bs, dev: dev.startswith("cuda") and bs > 8)
    seen: list[Attempt] = []
    out, rec = run_with_oom_fallback(work, batch_size=64, device="cuda:0", on_attempt=seen.append)
    assert out == "done bs=8 on cuda:0"
    assert work.calls == [(64, "cuda:0"), (32, "cuda:0"), (16, "cuda:0"), (8, "cuda:0")]
    assert [a.batch_size for a in rec.attempts] == [64, 32, 16, 8]
    assert [a.ok for a in rec.attempts] == [False, False, False, True]
    assert all(a.device == "cuda:0" for a in rec.attempts)
    assert rec.final.ok and rec.final.batch_size == 8 and rec.final.error is None
    assert not rec.fell_back_to_cpu
    assert "OutOfMemoryError" in rec.attempts[0].error
    assert "batch 64" in rec.attempts[0].error
    assert seen == rec.attempts  # on_attempt saw every attempt, in order
    assert len(released) == 3  # memory released after each OOM


def test_always_oom_on_gpu_ends_on_cpu_with_the_min_batch():
    work = Work(lambda bs, dev: dev != "cpu")
    seen: list[Attempt] = []
    out, rec = run_with_oom_fallback(
        work, batch_size=64, device="cuda:0", min_batch_size=4, on_attempt=seen.append
    )
    assert out == "done bs=4 on cpu"
    assert [(a.batch_size, a.device, a.ok) for a in rec.attempts] == [
        (64, "cuda:0", False),
        (32, "cuda:0", False),
        (16, "cuda:0", False),
        (8, "cuda:0", False),
        (4, "cuda:0", False),
        (4, "cpu", True),
    ]
    assert rec.fell_back_to_cpu
    assert rec.final.device == "cpu" and rec.final.batch_size == 4
    assert len(seen) == len(rec.attempts) == len(work.calls) == 6


def test_odd_batch_halves_by_floor_and_respects_the_minimum():
    work = Work(lambda bs, dev: dev != "cpu")
    _, rec = run_with_oom_fallback(work, batch_size=5, device="cuda:1", min_batch_size=2)
    assert [(a.batch_size, a.device) for a in rec.attempts] == [
        (5, "cuda:1"),
        (2, "cuda:1"),
        (2, "cpu"),
    ]


def test_without_cpu_fallback_the_oom_is_raised():
    work = Work(lambda bs, dev: True)
    seen: list[Attempt] = []
    with pytest.raises(OutOfMemoryError, match="batch 1 on cuda:0"):
        run_with_oom_fallback(
            work, batch_size=4, device="cuda:0", allow_cpu=False, on_attempt=seen.append
        )
    assert work.calls == [(4, "cuda:0"), (2, "cuda:0"), (1, "cuda:0")]
    assert all(d != "cpu" for _, d in work.calls)
    assert len(seen) == 3 and not any(a.ok for a in seen)


def test_oom_on_the_cpu_too_is_raised():
    work = Work(lambda bs, dev: True)
    with pytest.raises(OutOfMemoryError, match="on cpu"):
        run_with_oom_fallback(work, batch_size=2, device="cuda:0")
    assert work.calls == [(2, "cuda:0"), (1, "cuda:0"), (1, "cpu")]


def test_starting_on_cpu_halves_then_raises():
    work = Work(lambda bs, dev: True)
    with pytest.raises(OutOfMemoryError):
        run_with_oom_fallback(work, batch_size=4, device="cpu")
    assert work.calls == [(4, "cpu"), (2, "cpu"), (1, "cpu")]


def test_success_on_cpu_from_the_start_is_not_a_fallback():
    out, rec = run_with_oom_fallback(Work(lambda bs, dev: False), batch_size=3, device="cpu")
    assert out == "done bs=3 on cpu"
    assert len(rec.attempts) == 1 and not rec.fell_back_to_cpu


def test_non_oom_error_propagates_at_once(released):
    calls = []

    def fn(bs, dev):
        calls.append((bs, dev))
        raise ValueError("bad input column 'x'")

    seen = []
    with pytest.raises(ValueError, match="bad input column"):
        run_with_oom_fallback(fn, batch_size=64, device="cuda:0", on_attempt=seen.append)
    assert calls == [(64, "cuda:0")]
    assert seen == []
    assert released == []


def test_keyboard_interrupt_is_not_swallowed():
    def fn(bs, dev):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_with_oom_fallback(fn, batch_size=8, device="cuda:0")


@pytest.mark.parametrize(("bs", "min_bs"), [(0, 1), (-4, 1), (8, 0)])
def test_batch_sizes_below_one_are_input_errors(bs, min_bs):
    called = []
    with pytest.raises(InputError, match=">= 1"):
        run_with_oom_fallback(
            lambda b, d: called.append(b), batch_size=bs, device="cpu", min_batch_size=min_bs
        )
    assert called == []


def test_long_error_messages_are_truncated():
    def fn(bs, dev):
        if dev != "cpu":
            raise OutOfMemoryError("out of memory " + "x" * 2000)
        return bs

    out, rec = run_with_oom_fallback(fn, batch_size=1, device="cuda:0")
    assert out == 1
    assert len(rec.attempts[0].error) == 300


def test_fallback_record_is_serialisable():
    _, rec = run_with_oom_fallback(
        Work(lambda bs, dev: dev != "cpu"), batch_size=2, device="cuda:0"
    )
    again = FallbackRecord.model_validate_json(rec.model_dump_json())
    assert again.attempts == rec.attempts
    assert again.fell_back_to_cpu


def test_real_torch_oom_is_handled_by_the_ladder():
    torch = pytest.importorskip("torch")

    def fn(bs, dev):
        if dev != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
        return torch.ones(bs).sum().item()

    out, rec = run_with_oom_fallback(fn, batch_size=4, device="cuda:0", min_batch_size=2)
    assert out == 2.0
    assert rec.fell_back_to_cpu
    assert [a.batch_size for a in rec.attempts] == [4, 2, 2]


# --- release_memory ----------------------------------------------------------------------


def test_release_memory_without_cuda_does_not_touch_the_cache(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def must_not_run():
        raise AssertionError("empty_cache called although CUDA is unavailable")

    monkeypatch.setattr(torch.cuda, "empty_cache", must_not_run)
    assert release_memory() is None


def test_release_memory_empties_the_cache_when_cuda_is_available(monkeypatch):
    torch = pytest.importorskip("torch")
    called = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: called.append(True))
    release_memory()
    assert called == [True]
