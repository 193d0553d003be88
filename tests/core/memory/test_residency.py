"""Residency manager on CPU (bookkeeping moves) with tiny torch modules; pinning bookkeeping with a
stand-in for CUDA page-locking; the move bench's fresh models and realistic shapes; real GPU tests."""

import threading

import pytest
import torch
from safetensors.torch import save_file

from bench import two_stage_models as bench_models
from bench import two_stage_moves as bench
from gpuflows.core.memory import residency
from gpuflows.core.memory.model_size import (
    model_vram_need,
    nbytes_of,
    need_from_weights,
    pipeline_vram_need,
)
from gpuflows.core.memory.residency import MoveRecord, ResidencyError, ResidencyManager
from gpuflows.core.memory.weight_files import weights_nbytes
from gpuflows.pipelines.two_stage_eval import move_plan

SEED_SIZES = {"physical": 50, "environment": 50, "social": 70, "causal": 50, "referential": 50}


def _lin(width=16):
    return torch.nn.Linear(width, width)


def _pair(capacity_models: int):
    """Manager with "edit" and "score" (same size) and room for ``capacity_models`` of them."""
    a, b = _lin(), _lin()
    mgr = ResidencyManager("cpu", capacity_models * nbytes_of(a))
    mgr.register(move_plan.EDIT, a, nbytes_of(a))
    mgr.register(move_plan.SCORE, b, nbytes_of(b))
    return mgr, a, b


class _Clock:
    """A clock advancing ``step`` seconds per reading."""

    def __init__(self, step):
        self.t, self.step = 0.0, step

    def __call__(self):
        self.t += self.step
        return self.t


def test_need_from_empty_build_equals_real_bytes_times_margin():
    def build():
        return torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.LayerNorm(20))

    built = []
    real = build()
    est = model_vram_need(
        lambda: built.append(build()) or built[-1], "float32", activation_margin=0.25
    )
    assert built[0][0].weight.device.type == "meta"  # nothing allocated for the estimate
    assert est.nbytes == int(nbytes_of(real) * 1.25)
    assert model_vram_need(real, "float32", activation_margin=0.25).nbytes == est.nbytes
    half = model_vram_need(build, "bf16", activation_margin=0.25)
    assert half.nbytes == int(nbytes_of(real) // 2 * 1.25) and "bf16" in half.basis
    real.register_buffer("ids", torch.arange(7))  # integer buffers keep their own size
    mixed = model_vram_need(real, "float16", activation_margin=0.5)
    assert mixed.nbytes == int(nbytes_of(real[0:2]) / 2 * 1.5) + int(7 * 8 * 1.5)


def test_pipeline_need_sums_module_components():
    class Pipe:
        def __init__(self):
            self.components = {"unet": _lin(8), "vae": _lin(4), "scheduler": object(), "tok": None}

    p = Pipe()
    est = pipeline_vram_need(p, "float32", activation_margin=0.1, name="ip2p")
    want = nbytes_of(p.components["unet"]) + nbytes_of(p.components["vae"])
    assert nbytes_of(p) == want and est.nbytes == int(want * 1.1)
    assert "unet + vae" in est.basis
    with pytest.raises(TypeError, match="not a torch module"):
        model_vram_need(42, "float32")


def test_weights_nbytes_from_headers_equals_module_bytes(tmp_path):
    m = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.Linear(20, 3))
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, tmp_path / "w.safetensors")
    n, b = weights_nbytes(tmp_path)
    assert n == sum(p.numel() for p in m.parameters()) and b == nbytes_of(m)
    assert weights_nbytes(tmp_path, "float16")[1] == b // 2
    est = need_from_weights(tmp_path, None, activation_margin=0.5, name="m")
    assert est.nbytes == int(b * 1.5) and "safetensors headers" in est.basis
    with pytest.raises(FileNotFoundError, match="no weights under"):
        weights_nbytes(tmp_path / "empty")


@pytest.mark.parametrize("name,seed_figure", [("ours", 1), ("per_category", 9), ("naive", 540)])
def test_manager_swaps_match_plan_when_one_model_fits(name, seed_figure):
    mgr, a, b = _pair(1)
    got = move_plan.simulate(name, SEED_SIZES, mgr)
    cap = mgr.capacity_bytes
    assert got == seed_figure == move_plan.swaps(name, SEED_SIZES, nbytes_of(a), nbytes_of(b), cap)
    assert move_plan.swaps_from_records(mgr.moves) == mgr.swaps == got
    s = mgr.summary()
    assert s["transfers"] == move_plan.transfers(name, SEED_SIZES, nbytes_of(a), nbytes_of(b), cap)
    assert s["loads"] == got + 1 and s["offloads"] == got and s["same_device"]
    assert all(r.nbytes == nbytes_of(a) and r.kind == "move" for r in mgr.moves)


@pytest.mark.parametrize("name", move_plan.SCHEDULES)
def test_no_swaps_when_both_fit_initial_loads_recorded(name):
    mgr, a, b = _pair(2)
    assert move_plan.simulate(name, SEED_SIZES, mgr) == 0 == mgr.swaps
    s = mgr.summary()
    assert (s["loads"], s["offloads"]) == (2, 0)  # the two initial loads, never a swap
    assert sorted(mgr.resident()) == ["edit", "score"]
    assert s["transfers"] == move_plan.transfers(
        name, SEED_SIZES, nbytes_of(a), nbytes_of(b), 2 * nbytes_of(a)
    )


def test_oversize_model_refused_before_any_move():
    a, big = _lin(), _lin(32)
    mgr = ResidencyManager("cpu", nbytes_of(a))
    mgr.register("small", a, nbytes_of(a))
    mgr.acquire("small")
    before = list(mgr.moves)
    with pytest.raises(ResidencyError, match=r"'big' needs 0\.00 GiB .* budget of 0\.00 GiB: use"):
        mgr.register("big", big, nbytes_of(big))
    assert mgr.moves == before and mgr.resident() == ["small"]
    with pytest.raises(ValueError, match="capacity_bytes=0"):
        ResidencyManager("cpu", 0)


def test_in_use_model_is_not_evicted():
    mgr, a, b = _pair(1)
    with mgr.using("edit") as m:
        assert m is a
        n = len(mgr.moves)
        with pytest.raises(ResidencyError, match=r"models in use \['edit'\]"):
            mgr.acquire("score")
        with pytest.raises(ResidencyError, match="in use"):
            mgr.evict("edit")
        assert len(mgr.moves) == n and mgr.resident() == ["edit"]
    mgr.acquire("score")  # released: now it may go
    assert mgr.resident() == ["score"] and mgr.swaps == 1


def test_lru_eviction_order_with_three_models():
    a, b, c = _lin(), _lin(), _lin()
    nb = nbytes_of(a)
    mgr = ResidencyManager("cpu", 2 * nb)
    for name, m in zip("abc", (a, b, c), strict=True):
        mgr.register(name, m, nb)
    for name in "aba":  # b is now the least recently used
        mgr.acquire(name)
    mgr.acquire("c")
    assert sorted(mgr.resident()) == ["a", "c"]
    mgr.acquire("b")  # a was used before c: a goes
    assert sorted(mgr.resident()) == ["b", "c"]
    offloaded = [r.model for r in mgr.moves if r.direction == "offload"]
    assert offloaded == ["b", "a"] and mgr.swaps == 2


def test_split_model_reloaded_through_loader():
    def split_module():
        m = _lin()
        m.hf_device_map = {"layer0": 0, "layer1": 1}
        return m

    first, other = split_module(), _lin()
    built = []
    mgr = ResidencyManager("cpu", nbytes_of(first))
    mgr.register(
        "split", first, nbytes_of(first), loader=lambda: built.append(split_module()) or built[-1]
    )
    mgr.register("other", other, nbytes_of(other))
    assert mgr.resident() == ["split"]  # placed by its device map, not by the manager
    mgr.acquire("other")  # split is dropped, not moved
    assert mgr.get("split") is None and first.weight.device.type == "cpu"
    assert mgr.acquire("split") is built[0] and len(built) == 1
    kinds = [(r.model, r.kind, r.direction) for r in mgr.moves]
    assert kinds == [
        ("split", "drop", "offload"),
        ("other", "move", "load"),
        ("other", "move", "offload"),
        ("split", "reload", "load"),
    ]
    assert mgr.summary()["gb_moved"] == 3 * nbytes_of(first) / 1e9  # the drop copies nothing
    with pytest.raises(ResidencyError, match="needs a loader: register it with loader="):
        ResidencyManager("cpu", nbytes_of(first)).register("s", split_module(), 1)


def test_move_record_bytes_and_rate():
    a = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8))  # buffers count too
    want = sum(t.numel() * t.element_size() for t in (*a.parameters(), *a.buffers()))
    mgr = ResidencyManager("cpu", want, clock=_Clock(0.25))
    mgr.register("a", a, want)
    mgr.acquire("a")
    mgr.evict("a")
    load, off = mgr.moves
    assert load.nbytes == off.nbytes == want == nbytes_of(a)
    assert load.seconds == pytest.approx(0.25) and load.gb_per_s == pytest.approx(want / 1e9 / 0.25)
    assert (load.src, load.dst, off.src, off.dst) == ("cpu", "cpu", "cpu", "cpu")
    assert not load.pinned and not off.pinned  # pinning needs CUDA: skipped on CPU
    assert mgr.pins == [] and mgr.summary()["pins"] == 0
    forced = ResidencyManager("cpu", want, pin_host=True)  # asked for, still not possible on CPU
    forced.register("a", _lin(), want)
    forced.acquire("a")
    assert forced.pins == [] and not forced.moves[0].pinned
    assert MoveRecord("m", "cpu", "cpu", "move", "load", 10, 0.0).gb_per_s is None
    assert mgr.summary()["swaps"] == 0  # an offload with no load after it is not a swap


def test_adapter_with_pipeline_attribute_is_moved():
    class Pipe:
        def __init__(self):
            self.components = {"unet": _lin(4)}
            self.to_calls = []

        def to(self, device):
            self.to_calls.append(device)
            return self

    class Adapter:
        def __init__(self):
            self.pipeline = Pipe()

    ad = Adapter()
    mgr = ResidencyManager("cpu", nbytes_of(ad))
    mgr.register("edit", ad, nbytes_of(ad))
    with mgr.using("edit") as got:
        assert got is ad
    mgr.evict("edit")
    assert ad.pipeline.to_calls == ["cpu", "cpu"] and mgr.moves[0].nbytes == nbytes_of(_lin(4))


def test_concurrent_acquires_keep_the_budget_and_counts():
    mgr, _, _ = _pair(1)
    errors = []

    def worker(name):
        try:
            for _ in range(100):
                mgr.acquire(name)
                assert len(mgr.resident()) <= 1
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("edit", "score") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(mgr.resident()) == 1
    loads = sum(r.direction == "load" for r in mgr.moves)
    assert mgr.swaps == move_plan.swaps_from_records(mgr.moves) == loads - 1


# -- pinning: a step of its own (CPU stand-in for CUDA page-locking) ----------------------------


class _FakeDeviceLinear(torch.nn.Linear):
    """A Linear whose ``.to(<not cpu>)`` gives its parameters new storage, as a device copy does."""

    def to(self, device):
        if str(device) != "cpu":
            for p in self.parameters():
                p.data = p.data.clone()
        return self


@pytest.fixture
def fake_pinning(monkeypatch):
    """Page-locking stood in for on CPU: a "pinned" tensor is a copy made by ``_pin_copy`` (kept
    alive here, so no later tensor can reuse its address)."""
    pinned = {}

    def pin_copy(t):
        c = t.clone()
        pinned[c.data_ptr()] = c
        return c

    monkeypatch.setattr(residency, "_pinning_available", lambda device: True)
    monkeypatch.setattr(residency, "_pin_copy", pin_copy)
    monkeypatch.setattr(residency, "_is_pinned", lambda t: t.data_ptr() in pinned)
    return pinned


def test_pin_at_register_is_recorded_apart_and_offloads_reuse_the_buffer(fake_pinning):
    a, b = _FakeDeviceLinear(16, 16), _FakeDeviceLinear(16, 16)
    nb = nbytes_of(a)
    mgr = ResidencyManager("fake:0", nb, pin_host=True, clock=_Clock(0.5))
    mgr.register(move_plan.EDIT, a, nb)
    mgr.register(move_plan.SCORE, b, nb)
    assert [(r.model, r.kind, r.direction, r.nbytes, r.pinned, r.seconds) for r in mgr.pins] == [
        ("edit", "pin", "pin", nb, True, 0.5),
        ("score", "pin", "pin", nb, True, 0.5),
    ]
    assert mgr.moves == [] and a.weight.data_ptr() in fake_pinning  # pinned before any load
    buf = a.weight.data_ptr()

    got = move_plan.simulate("per_category", SEED_SIZES, mgr)
    assert got == 9 == move_plan.swaps_from_records(mgr.moves)
    s = mgr.summary()  # pins are not transfers: the move_plan counts are unchanged
    assert s["transfers"] == move_plan.transfers("per_category", SEED_SIZES, nb, nb, nb) == 19
    assert all(r.pinned for r in mgr.moves)  # the first load too: pinned at registration
    assert all(r.seconds == pytest.approx(0.5) for r in mgr.moves)  # the copy only, no pin inside
    assert (s["pins"], s["gb_pinned"], s["pin_seconds"]) == (2, 2 * nb / 1e9, 1.0)
    assert len(mgr.pins) == 2  # every offload copied into the buffers: nothing pinned again

    mgr.acquire("edit")
    a.weight.data.add_(1.0)  # changed while on the device
    on_device = a.weight.detach().clone()
    mgr.evict("edit")
    assert a.weight.data_ptr() == buf and torch.equal(a.weight, on_device)
    assert mgr.moves[-1].pinned and len(mgr.pins) == 2


def test_pinning_that_fails_turns_itself_off_and_says_why(fake_pinning, monkeypatch):
    """A host that cannot lock more memory (ulimit -l, RAM) must not fail the run: the models
    move from pageable memory, slower, and the summary says why nothing was pinned."""

    def refuse(t):
        raise RuntimeError("CUDA error: out of memory (cudaHostAlloc)")

    monkeypatch.setattr(residency, "_pin_copy", refuse)
    a = _FakeDeviceLinear(8, 8)
    nb = nbytes_of(a)
    mgr = ResidencyManager("fake:0", nb, pin_host=True)
    mgr.register(move_plan.EDIT, a, nb)
    mgr.acquire("edit")
    mgr.evict("edit")
    s = mgr.summary()
    assert s["pins"] == 0 and s["pinned"] == 0 and s["transfers"] == 2
    assert "cudaHostAlloc" in s["pin_failed"] and mgr.pin_host is False


def test_reshaped_tensor_is_pinned_again_after_its_offload(fake_pinning):
    a = _FakeDeviceLinear(8, 8)
    mgr = ResidencyManager("fake:0", 10 * nbytes_of(a), pin_host=True)
    mgr.register("a", a, nbytes_of(a))
    mgr.acquire("a")
    a.weight.data = a.weight.data.double()  # cast while resident: its buffer no longer fits
    mgr.evict("a")
    assert not mgr.moves[-1].pinned  # part of it went to pageable memory
    assert len(mgr.pins) == 2 and mgr.pins[-1].nbytes == 8 * 8 * 8  # then pinned, as its own step
    mgr.acquire("a")
    assert mgr.moves[-1].pinned and len(mgr.pins) == 2


def test_pinned_flag_reports_the_memory_not_the_setting(fake_pinning):
    a, b = _FakeDeviceLinear(16, 16), _FakeDeviceLinear(16, 16)
    nb = nbytes_of(a)
    mgr = ResidencyManager("fake:0", nb, pin_host=False)
    mgr.register("edit", a, nb)
    mgr.register("score", b, nb)
    assert move_plan.simulate("ours", SEED_SIZES, mgr) == 1
    assert mgr.pins == [] and not any(r.pinned for r in mgr.moves) and len(mgr.moves) == 3
    c = _FakeDeviceLinear(16, 16)
    for p in c.parameters():
        p.data = residency._pin_copy(p.data)  # pinned by someone else (an earlier manager)
    other = ResidencyManager("fake:0", nb, pin_host=False)
    other.register("c", c, nb)
    other.acquire("c")
    assert other.pins == [] and other.moves[0].pinned  # the load did read page-locked memory


# -- the move bench ------------------------------------------------------------------------------


def test_bench_runs_start_from_fresh_models_and_count_only_the_schedule(fake_pinning):
    made = []

    def make():
        made.append({"edit": _FakeDeviceLinear(16, 16), "score": _FakeDeviceLinear(16, 16)})
        return made[-1]

    cap = nbytes_of(_lin()) + 1
    pinned = bench.run_schedule("ours", SEED_SIZES, make, "fake:0", cap, "pinned")
    pageable = bench.run_schedule("ours", SEED_SIZES, make, "fake:0", cap, "pageable")
    assert made[0]["edit"] is not made[1]["edit"]
    assert move_plan.transfers("ours", SEED_SIZES, cap - 1, cap - 1, cap) == 3
    for r in (pinned, pageable):  # no clean-up eviction counted: move_plan's 3 transfers
        assert (r["swaps"], r["transfers"], r["loads"], r["offloads"]) == (1, 3, 2, 1)
        assert r["moved_bytes"] == 3 * (cap - 1) and r["swap_bytes"] == 2 * (cap - 1)
    assert pinned["pinned_transfers"] == 3 and pinned["pin_steps"] == 2
    assert pinned["pin_bytes"] == 2 * (cap - 1)
    assert pageable["pinned_transfers"] == 0 == pageable["pin_steps"]  # nothing left pinned
    assert not any(t.data_ptr() in fake_pinning for t in made[1]["edit"].parameters())


def test_bench_swap_records_pair_offloads_with_their_load():
    def rec(direction):
        return MoveRecord("m", "a", "b", "move", direction, 10, 1.0)

    first, off, on, tail = rec("load"), rec("offload"), rec("load"), rec("offload")
    assert bench._swap_records([first, off, on, tail]) == [off, on]


def test_bench_realistic_shapes_are_the_real_models():
    models = bench_models.build_realistic(materialize=False)  # meta device: shapes only
    edit, score = models["edit"], models["score"]
    got = {k: sum(p.numel() for p in m.parameters()) for k, m in edit.items()}
    got["score"] = sum(p.numel() for p in score.parameters())
    assert got == bench_models.REALISTIC_PARAMS
    assert next(edit.parameters()).dtype == torch.float16
    assert next(score.parameters()).dtype == torch.bfloat16
    assert nbytes_of(edit) == 2 * sum(bench_models.REALISTIC_PARAMS[k] for k in edit) + 77 * 8
    assert (
        nbytes_of(score) < 2 * bench_models.REALISTIC_PARAMS["score"] + 2**20
    )  # tied lm_head once


def test_bench_materialize_keeps_tied_weights_tied():
    with torch.device("meta"):
        m = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10, bias=False))
    m[1].weight = m[0].weight
    bench_models.materialize_random(m, torch.Generator().manual_seed(0))
    assert m[1].weight is m[0].weight and m[0].weight.device.type == "cpu"
    assert nbytes_of(m) == 10 * 4 * 4 and m[0].weight.std() > 0


# -- real GPU ------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_moves_are_real_and_pinned():
    a, b = torch.nn.Linear(1024, 1024), torch.nn.Linear(1024, 1024)
    want = {"a": a.weight.detach().clone(), "b": b.weight.detach().clone()}
    nb = nbytes_of(a)
    mgr = ResidencyManager("cuda", nb)
    mgr.register("a", a, nb)
    mgr.register("b", b, nb)
    assert [(r.model, r.kind, r.nbytes) for r in mgr.pins] == [("a", "pin", nb), ("b", "pin", nb)]
    assert a.weight.is_pinned() and b.weight.is_pinned() and mgr.moves == []
    buf_b = b.weight.data_ptr()
    for name in "abab":
        mgr.acquire(name)
    assert b.weight.device.type == "cuda" and a.weight.device.type == "cpu"
    assert a.weight.is_pinned() and mgr.swaps == 3 and len(mgr.pins) == 2  # nothing pinned again
    mgr.acquire("a")
    assert b.weight.is_pinned() and b.weight.data_ptr() == buf_b  # copied into the same buffer
    assert torch.equal(b.weight, want["b"]) and torch.equal(a.weight.cpu(), want["a"])
    assert len(mgr.moves) == 1 + 2 * mgr.swaps
    assert all(r.pinned and not r.same_device and r.gb_per_s is not None for r in mgr.moves)
    s = mgr.summary()
    assert s["load_gb_per_s"] and s["offload_gb_per_s"] and s["pin_seconds"] > 0


@pytest.mark.gpu
def test_cuda_pageable_moves_are_recorded_pageable():
    a, b = torch.nn.Linear(1024, 1024), torch.nn.Linear(1024, 1024)
    nb = nbytes_of(a)
    mgr = ResidencyManager("cuda", nb, pin_host=False)
    mgr.register("a", a, nb)
    mgr.register("b", b, nb)
    for name in "aba":
        mgr.acquire(name)
    assert mgr.pins == [] and not b.weight.is_pinned() and mgr.swaps == 2
    assert not any(r.pinned for r in mgr.moves) and all(r.gb_per_s for r in mgr.moves)
    c = torch.nn.Linear(1024, 1024)
    for p in c.parameters():
        p.data = p.data.pin_memory()  # pinned elsewhere: the record says what the load read
    other = ResidencyManager("cuda", nb, pin_host=False)
    other.register("c", c, nb)
    other.acquire("c")
    assert other.pins == [] and other.moves[0].pinned
