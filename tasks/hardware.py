"""Tasks of the ``gpu-baseline`` flow: device choice, environment lock, the measured suite."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.digest import value_digest
from gpuflows.core.evidence.envlock import DatasetRef, EnvironmentLock, build_lock
from gpuflows.core.hardware.devices import DeviceChoice, choose_device
from gpuflows.core.memory.budget import VramEstimate
from gpuflows.pipelines.gpu_baseline import hwbench
from tasks.retries import retry_options
from tasks.vram import VramGrant, vram_budget

#: Versioned identity of the operands: the measured quantity is device throughput, which does not
#: depend on operand values, so the "data" is the seeded generator spec and the sizes.
OPERANDS_VERSION = "1"


@task(cache_policy=NO_CACHE)
def pick_device(requested: str) -> DeviceChoice:
    """Discover GPUs (NVML, no CUDA init) and choose one; CPU with a recorded reason otherwise."""
    choice = choose_device(requested)
    log = get_run_logger()
    (log.warning if choice.fallback else log.info)(
        "device %s (%s): %s", choice.device, choice.name, choice.reason
    )
    return choice


def suite_sizes(choice: DeviceChoice, overrides: dict[str, int] | None = None) -> dict[str, int]:
    """Sizes for the suite on this device, with caller overrides (validated by name)."""
    sizes = hwbench.default_sizes(choice.kind, choice.total_memory_bytes)
    for k, v in (overrides or {}).items():
        if k not in sizes:
            raise ValueError(f"sizes.{k} is unknown: use any of {sorted(sizes)}")
        if int(v) < 1:
            raise ValueError(f"sizes.{k}={v} must be >= 1")
        sizes[k] = int(v)
    return sizes


def operands_ref(seed: int, sizes: dict[str, int]) -> DatasetRef:
    spec = {"generator": "torch.Generator(manual_seed)", "seed": seed, "sizes": sizes}
    return DatasetRef(
        name="gpu-baseline-operands",
        version=OPERANDS_VERSION,
        digest=value_digest(spec),
        synthetic=False,
        description="seeded operands of a hardware microbenchmark; what is measured is the "
        "device's throughput, which does not depend on operand values",
    )


@task(cache_policy=NO_CACHE)
def lock_environment(
    seed: int, choice: DeviceChoice, sizes: dict[str, int], parameters: dict[str, Any]
) -> EnvironmentLock:
    """Apply the seed everywhere and record the environment of this run."""
    return build_lock(
        seed=seed, dataset=operands_ref(seed, sizes), device=choice, parameters=parameters
    )


@task(cache_policy=NO_CACHE, task_run_name="measure-{choice.device}", **retry_options(retries=2))
def measure_suite(
    choice: DeviceChoice,
    sizes: dict[str, int],
    repeats: int,
    warmup: int,
    vram_timeout_s: float = 3600.0,
) -> tuple[list[hwbench.HwMeasurement], VramGrant]:
    """Run the microbenchmark suite under a VRAM budget computed from the sizes (never cached:
    a measurement must be taken, not remembered)."""
    est = VramEstimate(
        nbytes=hwbench.estimate_suite_bytes(sizes),
        basis=f"largest single measurement of the suite at sizes {sizes}",
    )
    with vram_budget(est, device=choice, timeout_s=vram_timeout_s) as grant:
        results = hwbench.run_suite(choice.device, sizes, repeats=repeats, warmup=warmup)
    return results, grant


def check_plausible(
    measurements: list[hwbench.HwMeasurement], *, max_ratio: float = 1.10
) -> CheckResult:
    """Integrity: no figure beats a hard peak (datasheet, or an upper-bound estimate) by more than
    ``max_ratio``, as a missing synchronise would. Measured ceilings are not hard bounds (a small
    copy can run from cache faster than the ceiling did), so they are not held to it."""
    hard = [
        m
        for m in measurements
        if m.ratio is not None and not (m.peak_source or "").startswith("measured")
    ]
    over = [f"{m.name}={m.ratio:.2f}" for m in hard if m.ratio > max_ratio]
    bad = [
        m.name
        for m in measurements
        if m.value is not None and not (m.value > 0 and m.value < float("inf"))
    ]
    ok = not over and not bad
    return CheckResult(
        name="plausible_vs_peak",
        passed=ok,
        numbers={"max_ratio": max_ratio, "over_peak": len(over), "non_finite": len(bad)},
        reason="every figure at or below its peak"
        if ok
        else f"impossible figures: {', '.join(over + bad)} (timing or synchronisation bug)",
    )


def check_core_measured(measurements: list[hwbench.HwMeasurement]) -> CheckResult:
    """Integrity: the figures every pipeline relies on were measured (matmul fp32, device copy)."""
    core = {"matmul_fp32", "memory_copy"}
    got = {m.name for m in measurements if m.value is not None}
    missing = sorted(core - got)
    return CheckResult(
        name="core_measured",
        passed=not missing,
        numbers={"measured": len(got)},
        reason="matmul and copy measured" if not missing else f"not measured: {', '.join(missing)}",
    )
