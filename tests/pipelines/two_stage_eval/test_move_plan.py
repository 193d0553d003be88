"""Move plans: closed forms, replayed sequences and a driven manager agree (pure arithmetic)."""

import random
from types import SimpleNamespace

import pytest

from gpuflows.pipelines.two_stage_eval import move_plan
from gpuflows.pipelines.two_stage_eval.move_plan import EDIT, SCORE

SEED_SIZES = {"physical": 50, "environment": 50, "social": 70, "causal": 50, "referential": 50}


class FakeManager:
    """Holds at most ``slots`` models (LRU); records load/offload like ResidencyManager."""

    def __init__(self, slots):
        self.slots, self.resident, self.moves, self.swaps, self._off = slots, [], [], 0, False

    def acquire(self, name):
        if name in self.resident:
            self.resident.remove(name)
            self.resident.append(name)
            return name
        while len(self.resident) >= self.slots:
            self.moves.append(SimpleNamespace(model=self.resident.pop(0), direction="offload"))
            self._off = True
        self.moves.append(SimpleNamespace(model=name, direction="load"))
        self.resident.append(name)
        self.swaps += self._off
        self._off = False
        return name


def test_seed_figures_and_ours():
    one, cap = 10, 15  # bytes: each model fits alone, not both
    assert move_plan.compare(SEED_SIZES, one, one, cap) == {
        "naive": 540,
        "per_category": 9,
        "ours": 1,
    }
    n, c = sum(SEED_SIZES.values()), len(SEED_SIZES)
    assert move_plan.compare_transfers(SEED_SIZES, one, one, cap) == {
        "naive": 1 + 2 * 2 * n,
        "per_category": 1 + 2 * (2 * c - 1),
        "ours": 3,
    }
    assert move_plan.compare(SEED_SIZES, one, one, 2 * one) == dict.fromkeys(move_plan.SCHEDULES, 0)
    assert move_plan.compare_transfers(SEED_SIZES, one, one, 2 * one) == dict.fromkeys(
        move_plan.SCHEDULES, 2
    )


@pytest.mark.parametrize("trial", range(30))
def test_closed_form_replay_and_manager_agree(trial):
    rng = random.Random(trial)
    sizes = {f"c{i}": rng.choice([0, 1, 2, 5, 13]) for i in range(rng.randint(1, 6))}
    for fits_both, cap in ((False, 15), (True, 20)):
        for name in move_plan.SCHEDULES:
            seq = [u.model for u in move_plan.schedule(name, sizes)]
            replay = move_plan.count_sequence(seq, fits_both=fits_both)
            closed = (
                move_plan.swaps(name, sizes, 10, 10, cap),
                move_plan.transfers(name, sizes, 10, 10, cap),
            )
            mgr = FakeManager(2 if fits_both else 1)
            driven = move_plan.simulate(name, sizes, mgr)
            assert replay == closed, (name, sizes, fits_both)
            assert (driven, len(mgr.moves)) == closed, (name, sizes, fits_both)
            assert move_plan.swaps_from_records(mgr.moves) == driven


def test_schedules_have_the_seed_loops_shape():
    sizes = {"a": 2, "empty": 0, "b": 1}
    naive = move_plan.schedule("naive", sizes)
    assert [(u.model, u.restore) for u in naive[:3]] == [
        (EDIT, False),
        (SCORE, False),
        (EDIT, True),
    ]
    assert sum(u.restore for u in naive) == 3 and len(naive) == 9  # one restore per pair
    per_cat = move_plan.schedule("per_category", sizes)
    assert [u.model for u in per_cat] == [EDIT, EDIT, SCORE, SCORE, EDIT, EDIT, SCORE]
    assert [u.restore for u in per_cat].count(True) == 1  # before the next category only
    ours = move_plan.schedule("ours", sizes)
    assert [u.model for u in ours] == [EDIT] * 3 + [SCORE] * 3 and not any(u.restore for u in ours)
    assert move_plan.plan_order(sizes) == [(EDIT, "a"), (EDIT, "b"), (SCORE, "a"), (SCORE, "b")]


def test_edge_cases():
    assert move_plan.compare({"a": 0}, 10, 10, 15) == dict.fromkeys(move_plan.SCHEDULES, 0)
    assert move_plan.transfers("ours", {}, 10, 10, 15) == 0
    assert move_plan.compare({"a": 7}, 10, 10, 15) == {"naive": 14, "per_category": 1, "ours": 1}


def test_swaps_from_records_convention():
    def recs(s):
        return [SimpleNamespace(direction={"L": "load", "O": "offload"}[ch]) for ch in s]

    assert move_plan.swaps_from_records(recs("L")) == 0  # the initial load
    assert move_plan.swaps_from_records(recs("LLOOL")) == 1  # two off, one on: one swap
    assert move_plan.swaps_from_records(recs("LOLOLO")) == 2  # a final offload is not a swap


def test_clear_errors():
    with pytest.raises(ValueError, match=r"sizes\['x'\]=-1: .* integer >= 0"):
        move_plan.swaps("ours", {"x": -1}, 1, 1, 2)
    with pytest.raises(ValueError, match=r"sizes\['x'\]=1.5"):
        move_plan.schedule("ours", {"x": 1.5})
    with pytest.raises(ValueError, match="need of the score model = 30 bytes, budget 20 bytes"):
        move_plan.compare(SEED_SIZES, 10, 30, 20)
    with pytest.raises(ValueError, match="capacity=0"):
        move_plan.swaps("ours", SEED_SIZES, 0, 0, 0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        move_plan.schedule("random", {"a": 1})
    with pytest.raises(ValueError, match="schedule must be one of"):
        move_plan.swaps("random", {"a": 1}, 1, 1, 2)
