"""VRAM budgets under the Prefect harness: packing by GiB, fail-fast on oversize, fairness."""

from __future__ import annotations

import time

import pytest
from prefect import flow, task

from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.memory.budget import BudgetError, VramEstimate
from tasks.vram import ensure_limits, vram_budget

GIB = 1 << 30


def fake_gpu(index: int) -> DeviceChoice:
    """A GPU choice for budget logic on a CPU machine (no CUDA call is made for the budget)."""
    return DeviceChoice(
        device=f"cuda:{index}",
        kind="cuda",
        index=index,
        physical_index=index,
        name="test-80g",
        total_memory_bytes=80 * GIB,
        requested="cuda",
        fallback=False,
        reason="test",
    )


@task
def hold(gib: int, seconds: float, gpu: int) -> tuple[float, float, float]:
    est = VramEstimate(nbytes=gib * GIB, basis=f"test {gib} GiB")
    with vram_budget(est, device=fake_gpu(gpu), timeout_s=120) as g:
        start = time.time()
        time.sleep(seconds)
        end = time.time()
    assert g.occupy_gib == gib and g.capacity_gib == 80
    return start, end, g.wait_s


@flow
def two_holders(gib: int, gpu: int, seconds: float) -> list[tuple[float, float, float]]:
    futs = [hold.submit(gib, seconds, gpu) for _ in range(2)]
    return [f.result() for f in futs]


def overlap(a, b) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def test_two_60_gib_tasks_serialise_and_two_30_gib_run_together(prefect_harness):
    ensure_limits({"vram-gpu90": 80, "vram-gpu91": 80})
    big = two_holders(60, 90, 3.0)
    assert overlap(*big) < 0, f"60+60 GiB on an 80 GiB card overlapped: {big}"
    # The turnstile serialises acquisition, not the work. After a refused poll Prefect's server
    # says retry after the limit's average slot occupancy (2 s on a fresh limit) times the
    # requests queued on it, with Poisson jitter: on a loaded 2-core CI host the second holder
    # waited 4.5 s. So each holds 10 s and the test asks only that the second started while the
    # first still ran.
    small = two_holders(30, 91, 10.0)
    assert overlap(*small) > 0, f"30+30 GiB should run together: {small}"


def test_request_larger_than_card_fails_before_waiting(prefect_harness):
    ensure_limits({"vram-gpu92": 80})
    t0 = time.monotonic()
    with pytest.raises(BudgetError, match="exceeds vram-gpu92's 80 GiB"):
        with vram_budget(VramEstimate(nbytes=81 * GIB, basis="too big"), device=fake_gpu(92)):
            pass
    assert time.monotonic() - t0 < 5


def test_missing_limit_is_a_clear_error(prefect_harness):
    with pytest.raises(BudgetError, match="deployments.setup"):
        with vram_budget(VramEstimate(nbytes=GIB, basis="x"), device=fake_gpu(93)):
            pass


def test_cpu_work_holds_no_slots(prefect_harness):
    cpu = DeviceChoice(
        device="cpu", kind="cpu", name="cpu", requested="cpu", fallback=False, reason="t"
    )
    with vram_budget(VramEstimate(nbytes=500 * GIB, basis="x"), device=cpu) as g:
        pass
    assert g.limit is None and g.occupy_gib == 0


def test_ensure_limits_is_idempotent_and_resizes(prefect_harness):
    from prefect.client.orchestration import get_client

    ensure_limits({"vram-gpu94": 40})
    ensure_limits({"vram-gpu94": 40})
    ensure_limits({"vram-gpu94": 79})
    with get_client(sync_client=True) as c:
        assert c.read_global_concurrency_limit_by_name("vram-gpu94").limit == 79
        assert c.read_global_concurrency_limit_by_name("vram-gpu94-turnstile").limit == 1


def test_first_gpu_work_creates_this_hosts_limits_from_discovery(prefect_harness, monkeypatch):
    from gpuflows.core.hardware.devices import Discovery, GpuInfo
    from tasks import vram

    fake = Discovery(
        method="nvml",
        gpus=[GpuInfo(index=0, nvml_index=95, name="test-80g", total_memory_bytes=80 * GIB)],
    )
    monkeypatch.setattr(vram, "discover", lambda: fake)
    with vram_budget(VramEstimate(nbytes=10 * GIB, basis="x"), device=fake_gpu(95)) as g:
        pass
    assert g.limit == "vram-gpu95" and g.capacity_gib == 79  # 80 GiB minus the 1 GiB reserve


def test_a_per_host_workers_environment_names_its_limits(prefect_harness, monkeypatch):
    """deployments.setup gives a per-host pool's workers GPUFLOWS_VRAM_HOST (and the prefix when
    it is not the default): their flow runs then hold <host>-<prefix>N, never another host's."""
    from tasks.vram import VRAM_HOST_ENV, VRAM_PREFIX_ENV, limit_naming

    ensure_limits({"node-z-vram-gpu96": 40, "vram-gpu96": 80, "node-z-big-gpu96": 20})
    monkeypatch.setenv(VRAM_HOST_ENV, "node-z")
    with vram_budget(VramEstimate(nbytes=GIB, basis="x"), device=fake_gpu(96)) as g:
        pass
    assert (g.limit, g.capacity_gib) == ("node-z-vram-gpu96", 40)
    monkeypatch.setenv(VRAM_PREFIX_ENV, "big-gpu")
    with vram_budget(VramEstimate(nbytes=GIB, basis="x"), device=fake_gpu(96)) as g:
        pass
    assert (g.limit, g.capacity_gib) == ("node-z-big-gpu96", 20)
    assert limit_naming("other", "vram-gpu") == ("other", "vram-gpu")  # arguments win
    monkeypatch.setenv(VRAM_HOST_ENV, "node-y")  # a host whose limits were never created
    with pytest.raises(BudgetError, match="node-y-big-gpu96.*GPUFLOWS_VRAM_HOST"):
        with vram_budget(VramEstimate(nbytes=GIB, basis="x"), device=fake_gpu(96)):
            pass


def test_limit_capacity_is_the_gpus_limit_and_none_on_cpu(prefect_harness):
    from tasks.vram import limit_capacity_gib

    ensure_limits({"vram-gpu98": 37})
    assert limit_capacity_gib(fake_gpu(98)) == 37
    cpu = DeviceChoice(
        device="cpu", kind="cpu", name="cpu", requested="cpu", fallback=False, reason="t"
    )
    assert limit_capacity_gib(cpu) is None
