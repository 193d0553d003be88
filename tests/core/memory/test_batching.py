"""Batch sizes from the budget (pure arithmetic) and the stage's batch sizer (OOM halving)."""

from __future__ import annotations

import pytest

from gpuflows.core.memory.batch_sizer import DEFAULT_CPU_BATCH, MAX_BATCH, batch_from_peak
from gpuflows.pipelines.two_stage_eval.move_plan import resident_need

MIB = 1 << 20
GIB = 1 << 30


def test_resident_need_is_both_when_they_fit_else_the_larger():
    assert resident_need(6 * GIB, 8 * GIB, 20 * GIB) == 14 * GIB
    assert resident_need(6 * GIB, 8 * GIB, 14 * GIB) == 14 * GIB  # exactly fits
    assert resident_need(6 * GIB, 8 * GIB, 10 * GIB) == 8 * GIB
    with pytest.raises(ValueError, match="fit the budget alone"):
        resident_need(6 * GIB, 12 * GIB, 10 * GIB)


def test_batch_from_peak_fills_the_free_budget():
    # 20 GiB budget, 8 GiB resident, one item peaked 1 GiB above: 0.9 * 12 GiB / 1 GiB = 10
    plan = batch_from_peak(capacity=20 * GIB, allocated_before=8 * GIB, peak=9 * GIB, items=1)
    assert plan.size == 10 and plan.per_item_bytes == GIB
    assert "1024.0 MiB per item" in plan.basis and "-> 10" in plan.basis
    # measured over 2 items: per item is the mean (rounded up)
    two = batch_from_peak(capacity=20 * GIB, allocated_before=8 * GIB, peak=10 * GIB, items=2)
    assert two.size == 10


def test_batch_from_peak_bounds():
    tiny = batch_from_peak(capacity=80 * GIB, allocated_before=GIB, peak=GIB + MIB, items=1)
    assert tiny.size == MAX_BATCH and "capped" in tiny.basis
    full = batch_from_peak(capacity=10 * GIB, allocated_before=10 * GIB, peak=11 * GIB, items=1)
    assert full.size == 1  # no headroom left: still one item (what the budget was checked for)
    flat = batch_from_peak(capacity=10 * GIB, allocated_before=GIB, peak=GIB, items=1)
    assert flat.per_item_bytes == 1 and flat.size == MAX_BATCH  # nothing measured: no div by 0
    with pytest.raises(ValueError, match="items=0"):
        batch_from_peak(capacity=GIB, allocated_before=0, peak=1, items=0)


class OutOfMemoryError(RuntimeError):
    """Named like torch's, which is how gpuflows.core.faults.is_oom recognises it."""


def test_sizer_halves_on_oom_keeps_order_and_the_smaller_size():
    from gpuflows.core.memory.batch_sizer import BatchSizer

    calls = []

    def model(sub):
        calls.append(len(sub))
        if len(sub) > 2:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in sub]

    sizer = BatchSizer(8, "cpu", 10 * GIB)
    assert sizer.size == 8
    assert sizer.run(list(range(8)), model) == [x * 10 for x in range(8)]
    assert calls[:3] == [8, 4, 2] and sizer.size == 2
    rec = sizer.record()
    assert rec["oom_halvings"] == 2 and "OOM at 8 -> 2" in rec["basis"]
    calls.clear()
    assert sizer.run([1, 2], model) == [10, 20] and calls == [2]


def test_an_oom_late_in_a_chunk_redoes_only_the_items_not_yet_done():
    from torch.cuda import OutOfMemoryError

    from gpuflows.core.memory.batch_sizer import BatchSizer

    done = []

    def model(sub):  # item 6 needs more memory: only a batch of <= 2 holding it fits
        if len(sub) > 2 and 6 in sub:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        done.extend(sub)
        return [x * 10 for x in sub]

    sizer = BatchSizer(8, "cpu", 10 * GIB)
    assert sizer.run(list(range(8)), model) == [x * 10 for x in range(8)]
    assert sorted(done) == list(range(8)), f"finished items were computed again: {done}"
    assert sizer.size == 2 and sizer.record()["oom_halvings"] == 2


def test_sizer_defaults_without_a_gpu_and_never_hides_other_errors():
    from gpuflows.core.memory.batch_sizer import BatchSizer

    auto = BatchSizer(None, "cpu", GIB)
    assert auto.size == DEFAULT_CPU_BATCH and "CPU" in auto.basis
    gpu = BatchSizer(None, "cuda:0", GIB)
    assert gpu.size == 1 and "measure" in gpu.basis  # first GPU batch: one item

    def broken(sub):
        raise KeyError("not an OOM")

    with pytest.raises(KeyError):
        auto.run([1, 2, 3], broken)


def test_an_item_that_runs_out_of_memory_alone_fails_alone():
    """One item too big even alone: it gets an ItemOOM in its place, the others are computed,
    and the stage goes back to the size it had before that item (not stuck at one)."""
    from gpuflows.core.memory.batch_sizer import BatchSizer, ItemOOM

    calls = []

    def model(sub):
        calls.append(list(sub))
        if 5 in sub:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return [x * 10 for x in sub]

    sizer = BatchSizer(4, "cpu", 10 * GIB)
    out = sizer.run(list(range(12)), model)
    assert [o for o in out if not isinstance(o, ItemOOM)] == [x * 10 for x in range(12) if x != 5]
    assert isinstance(out[5], ItemOOM) and "20.00 GiB" in out[5].error
    assert "within the 10.00 GiB budget" in out[5].message(10 * GIB)
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7, 8, 9], [10, 11]]
    rec = sizer.record()
    assert rec["items_oom"] == 1 and rec["oom_halvings"] == 2 and sizer.size == 4
