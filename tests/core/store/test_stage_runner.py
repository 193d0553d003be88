"""The shared checkpointed batched stage loop: resume, OOM halving, lone OOMs, progress."""

from __future__ import annotations

import pytest

from gpuflows.core.memory.batch_sizer import BatchSizer
from gpuflows.core.store import StageRunner
from gpuflows.core.store.ledger import Ledger, item_key


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which is how the batch sizer recognises an OOM."""


class Crash(Exception):
    """A fault that is not an OOM: the stage stops here (a killed or crashed run)."""


def _stage(ledger, items, size=2, **kw):
    return StageRunner(
        items,
        key=lambda x: item_key(x=x),
        ledger=ledger,
        sizer=BatchSizer(size, "cpu", 8 << 30),
        finish=lambda x, y, seconds: {"x": x, "y": y, "seconds": seconds},
        failed=lambda x: {"x": x, "y": None},
        **kw,
    )


class Model:
    """Squares its inputs; records every call; raises what ``fail(batch)`` returns."""

    def __init__(self, fail=lambda xs: None):
        self.calls: list[list[int]] = []
        self.fail = fail

    def __call__(self, batch):
        xs = [x for x, _ in batch]
        self.calls.append(xs)
        exc = self.fail(xs)
        if exc is not None:
            raise exc
        return [x * x for x in xs]

    def computed(self) -> list[int]:
        """Items that were in a call that returned (each must appear once over a stage)."""
        return [x for xs in self.calls for x in xs if self.fail(xs) is None]


@pytest.fixture
def ledger(tmp_path):
    return Ledger(tmp_path / "stage.jsonl")


def test_a_rerun_after_a_partial_run_computes_only_the_unfinished_items(ledger):
    crash_at_4 = Model(lambda xs: Crash("killed") if 4 in xs else None)
    first = _stage(ledger, range(6))
    with pytest.raises(Crash):
        first.run(crash_at_4)
    assert crash_at_4.computed() == [0, 1, 2, 3] and first.computed == 4
    assert len(ledger.latest()) == 4  # each finished batch was recorded before the crash
    again = _stage(ledger, range(6))
    assert [x for x, _ in again.todo] == [4, 5]
    model = Model()
    again.run(model)
    assert model.calls == [[4, 5]] and again.computed == 2
    assert [r["y"] for r in again.records()] == [0, 1, 4, 9, 16, 25]
    assert len(ledger.latest()) == 6 and ledger.path.read_text().count("\n") == 6
    third = _stage(ledger, range(6))
    assert third.todo == [] and [r["x"] for r in third.records()] == list(range(6))


def test_an_oom_halves_the_batch_and_goes_on_from_the_first_unfinished_item(ledger):
    model = Model(lambda xs: OutOfMemoryError("CUDA out of memory") if len(xs) > 2 else None)
    stage = _stage(ledger, range(7), size=4)
    stage.run(model)
    assert model.calls == [[0, 1, 2, 3], [0, 1], [2, 3], [4, 5], [6]]
    assert sorted(model.computed()) == list(range(7))  # nothing finished was computed again
    assert stage.sizer.size == 2 and stage.sizer.record()["oom_halvings"] == 1
    assert [r["y"] for r in stage.records()] == [x * x for x in range(7)]
    assert all("error" not in r for r in stage.records())


def test_an_item_out_of_memory_alone_is_its_error_record_and_is_retried_next_run(ledger):
    model = Model(lambda xs: OutOfMemoryError("CUDA out of memory") if 3 in xs else None)
    stage = _stage(ledger, range(6), size=4)
    stage.run(model)
    assert [3] in model.calls and sorted(model.computed()) == [0, 1, 2, 4, 5]
    recs = {r["x"]: r for r in stage.records()}
    assert recs[3]["y"] is None and recs[3]["retry"] is True
    assert "out of memory on this item alone within the 8.00 GiB budget" in recs[3]["error"]
    assert all(recs[x]["y"] == x * x and "retry" not in recs[x] for x in (0, 1, 2, 4, 5))
    assert stage.sizer.record()["items_oom"] == 1 and stage.computed == 6
    again = _stage(ledger, range(6), size=4)
    assert [x for x, _ in again.todo] == [3]
    roomy = Model()
    again.run(roomy)
    assert roomy.calls == [[3]] and again.records()[3]["y"] == 9
    assert "error" not in again.records()[3]


def test_a_load_error_is_that_items_error_record_and_the_batch_goes_on(ledger):
    def load(x):
        if x in (1, 5):
            raise ValueError(f"image {x} does not decode")
        return f"input {x}"

    seen = []

    def compute(batch):
        seen.append(batch)
        return [x * x for x, _ in batch]

    stage = _stage(ledger, range(4), load=load, item_errors=(ValueError,))
    stage.run(compute)
    assert seen == [[(0, "input 0")], [(2, "input 2"), (3, "input 3")]]
    recs = stage.records()
    assert recs[1] == {"key": stage.keys[1], "x": 1, "y": None, "error": "image 1 does not decode"}
    assert [r["y"] for r in recs] == [0, None, 4, 9]
    assert _stage(ledger, range(4), load=load, item_errors=(ValueError,)).todo == []
    with pytest.raises(ValueError, match="does not decode"):  # not an item error here: it stops
        _stage(ledger, [5], load=load).run(compute)


def test_a_record_that_no_longer_stands_is_computed_again(ledger):
    _stage(ledger, range(3)).run(Model())
    stage = _stage(ledger, range(3), stands=lambda rec: rec["x"] != 2)
    assert stage.lost == [2] and [x for x, _ in stage.todo] == [2]
    model = Model()
    stage.run(model)
    assert model.calls == [[2]]


def test_progress_callback_counts_recorded_then_each_batch(ledger):
    calls = []
    stage = _stage(ledger, range(5), on_progress=calls.append)
    assert calls == []  # nothing recorded yet: nothing to report before the first batch
    stage.run(Model())
    assert calls == [2, 2, 1] and stage.clock.done == stage.clock.total == 5
    calls.clear()
    again = _stage(ledger, range(7), on_progress=calls.append)
    assert calls == [5] and again.clock.done == 5  # found in the ledger
    again.run(Model())
    assert calls == [5, 2] and again.clock.percent == 100.0


def test_duplicate_keys_are_computed_once_and_missing_records_are_named(ledger):
    stage = _stage(ledger, [1, 1, 2])
    assert [x for x, _ in stage.todo] == [1, 2]
    with pytest.raises(LookupError, match="3 of 3 items have no record"):
        stage.records()
    model = Model()
    stage.run(model)
    assert model.calls == [[1, 2]] and [r["y"] for r in stage.records()] == [1, 1, 4]
    empty = _stage(ledger, [])
    assert empty.todo == [] and empty.records() == [] and empty.clock is None
