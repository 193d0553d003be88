"""Residency manager and move plans on CPU (bookkeeping moves), with tiny torch modules."""

import pytest
import torch
from safetensors.torch import save_file

from gpuflows import move_plan
from gpuflows.budget import GIB
from gpuflows.residency import (
    ResidencyError,
    ResidencyManager,
    nbytes_of,
    need_from_weights,
    weights_nbytes,
)

SEED_SIZES = {"physical": 50, "environment": 50, "social": 70, "causal": 50, "referential": 50}


def _models(n=2, width=64):
    return [torch.nn.Linear(width, width) for _ in range(n)]


def _one_fits(a, b):
    """A budget with room for the larger of two models, not both."""
    return max(nbytes_of(a), nbytes_of(b))


def test_weights_nbytes_from_headers_equals_module_bytes(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.Linear(20, 3))
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, tmp_path / "w.safetensors")
    n, b = weights_nbytes(tmp_path)
    assert n == sum(p.numel() for p in m.parameters()) and b == nbytes_of(m)
    assert weights_nbytes(tmp_path, "float16")[1] == b // 2
    est = need_from_weights(tmp_path, None, activation_margin=0.5, name="m")
    assert est.nbytes == int(b * 1.5) and "safetensors headers" in est.basis
    with pytest.raises(FileNotFoundError, match="no \\*.safetensors"):
        weights_nbytes(tmp_path / "empty")


@pytest.mark.parametrize(
    "name,expected", [("ours", 1), ("per_category", 9), ("naive", 2 * 270 - 1)]
)
def test_manager_counts_match_plan_when_one_model_fits(name, expected):
    a, b = _models()
    mgr = ResidencyManager("cpu", _one_fits(a, b))
    mgr.register("edit", a, nbytes_of(a))
    mgr.register("score", b, nbytes_of(b))
    assert move_plan.simulate(name, SEED_SIZES, mgr) == expected
    cap = mgr.capacity_bytes
    assert move_plan.swaps(name, SEED_SIZES, nbytes_of(a), nbytes_of(b), cap) == expected
    s = mgr.summary()
    assert s["loads"] == expected + 1 and s["offloads"] == expected and s["same_device"]
    assert all(r.nbytes == nbytes_of(a) for r in mgr.moves)


def test_no_swaps_when_both_fit():
    a, b = _models()
    mgr = ResidencyManager("cpu", nbytes_of(a) + nbytes_of(b))
    mgr.register("edit", a, nbytes_of(a))
    mgr.register("score", b, nbytes_of(b))
    assert move_plan.simulate("naive", SEED_SIZES, mgr) == 0
    assert mgr.summary()["loads"] == 2 and mgr.summary()["offloads"] == 0
    assert move_plan.compare(SEED_SIZES, 1, 1, 2) == {"naive": 0, "per_category": 0, "ours": 0}


def test_oversize_model_refused_at_register_before_any_move():
    (a,) = _models(1)
    mgr = ResidencyManager("cpu", nbytes_of(a) - 1)
    with pytest.raises(ResidencyError, match="needs .* GiB .* budget"):
        mgr.register("big", a, nbytes_of(a))
    assert mgr.moves == []


def test_lru_eviction_and_in_use_protection():
    a, b, c = _models(3)
    nb = nbytes_of(a)
    mgr = ResidencyManager("cpu", 2 * nb)
    for name, m in zip("abc", (a, b, c), strict=True):
        mgr.register(name, m, nb)
    mgr.acquire("a")
    mgr.acquire("b")
    mgr.acquire("a")  # b is now least recently used
    mgr.acquire("c")
    assert sorted(mgr.resident()) == ["a", "c"] and mgr.swaps == 1
    with mgr.using("a"), mgr.using("c"), pytest.raises(ResidencyError, match="in use"):
        mgr.acquire("b")
    with mgr.using("a"), pytest.raises(ResidencyError, match="in use"):
        mgr.evict("a")
    mgr.evict("a")
    assert mgr.resident() == ["c"]


def test_split_model_is_reloaded_through_its_loader():
    (a,) = _models(1)
    a.hf_device_map = {"layer0": 0, "layer1": 1}
    (b,) = _models(1)
    loads = []

    def loader():
        loads.append(1)
        m = torch.nn.Linear(64, 64)
        m.hf_device_map = {"layer0": 0, "layer1": 1}
        return m

    mgr = ResidencyManager("cpu", nbytes_of(a))
    mgr.register("split", a, nbytes_of(a), loader=loader)
    mgr.register("other", b, nbytes_of(b))
    mgr.acquire("split")
    mgr.acquire("other")  # split is dropped, not moved
    mgr.acquire("split")
    assert loads == [1] and [r.kind for r in mgr.moves][-1] == "reload"
    mgr2 = ResidencyManager("cpu", nbytes_of(a))
    mgr2.register("split", a, nbytes_of(a))
    mgr2.register("other", b, nbytes_of(b))
    mgr2.acquire("split")
    with pytest.raises(ResidencyError, match="loader"):
        mgr2.acquire("other")


def test_plan_order_and_bad_schedule():
    assert move_plan.plan_order({"a": 2, "b": 0, "c": 1}) == [
        ("edit", "a"), ("edit", "c"), ("score", "a"), ("score", "c"),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="schedule must be one of"):
        move_plan.schedule("random", {"a": 1})
    assert GIB == 1 << 30
