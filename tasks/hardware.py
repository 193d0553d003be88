"""Tasks of the ``gpu-baseline`` flow: device choice, policies, environment lock, the measured
suite and its SLO reports. The compute and the rules are in ``gpuflows.pipelines.gpu_baseline``.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from gpuflows.core.evidence.envlock import EnvironmentLock, build_lock
from gpuflows.core.evidence.trust import Tier, TrustPolicy
from gpuflows.core.hardware.devices import DeviceChoice, choose_device
from gpuflows.core.memory.budget import VramEstimate
from gpuflows.core.slo.measure import SloMeasurement, SloPolicy
from gpuflows.pipelines.gpu_baseline import (
    HwMeasurement,
    default_slo_policy,
    estimate_suite_bytes,
    operands_ref,
    run_suite,
)
from tasks.retries import retry_options
from tasks.slo_report import publish_slo_report
from tasks.vram import VramGrant, vram_budget

__all__ = [
    "DeviceChoice",
    "load_policies",
    "lock_environment",
    "measure_suite",
    "pick_device",
    "publish_slos",
]


@task(cache_policy=NO_CACHE)
def pick_device(requested: str) -> DeviceChoice:
    """Discover GPUs (NVML, no CUDA init) and choose one; CPU with a recorded reason otherwise."""
    choice = choose_device(requested)
    log = get_run_logger()
    (log.warning if choice.fallback else log.info)(
        "device %s (%s): %s", choice.device, choice.name, choice.reason
    )
    return choice


def load_policies(
    trust_policy_block: str | None, slo_policy_block: str | None
) -> tuple[TrustPolicy, SloPolicy]:
    """The trust and SLO policies from saved blocks by name; defaults where a name is empty
    (trust: the default rules; SLO: regression checks against the stored baseline only)."""
    from blocks import SloPolicyBlock, TrustPolicyBlock

    trust = (
        TrustPolicyBlock.load(trust_policy_block).to_policy()
        if trust_policy_block
        else TrustPolicy()
    )
    slo = (
        SloPolicyBlock.load(slo_policy_block).to_policy()
        if slo_policy_block
        else default_slo_policy()
    )
    return trust, slo


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
) -> tuple[list[HwMeasurement], VramGrant]:
    """Run the microbenchmark suite under a VRAM budget computed from the sizes (never cached:
    a measurement must be taken, not remembered)."""
    est = VramEstimate(
        nbytes=estimate_suite_bytes(sizes),
        basis=f"largest single measurement of the suite at sizes {sizes}",
    )
    with vram_budget(est, device=choice, timeout_s=vram_timeout_s) as grant:
        results = run_suite(choice.device, sizes, repeats=repeats, warmup=warmup)
    return results, grant


def publish_slos(
    slos: list[tuple[str, str, SloMeasurement]],
    policy: SloPolicy,
    *,
    tier_block: str,
    tier: Tier | None = None,
) -> dict[str, dict[str, Any]]:
    """One SLO report per (operation, artifact key, measurement); ``{operation: its result}``.

    ``tier`` is the run's Trust Tier: only a T2-or-better run that passes every check becomes
    the stored baseline (None: never promoted)."""
    return {
        name: publish_slo_report(measurement, policy, key=key, tier_block=tier_block, tier=tier)
        for name, key, measurement in slos
    }
