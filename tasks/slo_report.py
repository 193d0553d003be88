"""Publish an SLO report from inside a flow: JSON + PNG, markdown artifact, baseline, events.

Events an automation can act on:

- ``gpuflows.slo.regressed``: the run is worse than the stored same-device baseline.
- ``gpuflows.slo.breached``: at least one SLO check failed.
- ``gpuflows.slo.drifted``: the run is worse than the *first* baseline of its service and
  device (cumulative drift that run-to-run comparisons let through).

All name the resource ``gpuflows.service.<service>`` and carry the numbers in the payload.
"""

from __future__ import annotations

import re
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from gpuflows.core.evidence.trust import Tier
from gpuflows.core.naming import slug
from gpuflows.core.slo.baseline import BaselineStore, compare_to_baseline
from gpuflows.core.slo.measure import SloMeasurement, SloPolicy, check_slo, with_goodput_bound
from gpuflows.core.slo.report import plot_latency, render_slo_markdown
from gpuflows.core.store.io import atomic_write_json, results_root
from tasks.artifacts import validate_key
from tasks.plots import embed_png


def _resource(m: SloMeasurement) -> dict[str, str]:
    return {
        "prefect.resource.id": f"gpuflows.service.{slug(m.service)}",
        "prefect.resource.name": m.service,
        "gpuflows.device": m.device,
        "gpuflows.target-device": m.target_device,
    }


def publish_slo_report(
    measurement: SloMeasurement,
    policy: SloPolicy,
    *,
    key: str,
    tier_block: str = "",
    store: BaselineStore | None = None,
    update_baseline: bool = True,
    tier: Tier | str | None = None,
) -> dict[str, Any]:
    """Check, compare with the baselines, write JSON + PNG, publish the artifact, emit events.

    Call inside a flow or task. Goodput is recomputed from the raw samples under the policy's
    bound (``goodput_latency_ms``, else ``p95_ms_max``). The run is compared with the current
    baseline (regression) and with the first baseline of its service and device (cumulative
    drift). It becomes the new baseline only if ``update_baseline``, its Trust Tier is T2 or
    better, every SLO check passed and it neither regressed nor drifted: a breached, dirty,
    T1 or slower run never becomes the bar later runs are held to.

    Args:
        tier: the run's Trust Tier (from ``gpuflows.core.evidence.trust.assess``); None or T1:
            never promoted.

    Args:
        key: markdown artifact key (lowercase letters, digits, dashes); same key, new version.
        tier_block: markdown appended verbatim (e.g. the Trust Tier section).
        store: baseline store (default: ``results_root()/"baselines"``).

    Returns:
        Paths (``json``, ``plot``, ``baseline``), ``artifact_id``, ``checks_passed``,
        ``failed_checks``, ``regressed``, ``drifted``, ``comparable``, ``baseline_updated``,
        ``promotion`` (why it was or was not promoted) and ``events``.
    """
    validate_key(key)
    m = measurement
    if policy.goodput_bound_ms != m.goodput_latency_ms:
        m = with_goodput_bound(m, policy.goodput_bound_ms)
    store = store or BaselineStore()
    checks = check_slo(m, policy)
    baseline = store.load(m.service, m.device)
    regression = compare_to_baseline(m, baseline, policy.regression_tolerance)
    first = store.load_first(m.service, m.device)
    drift = compare_to_baseline(m, first, policy.regression_tolerance)

    out = results_root() / "slo" / slug(m.service)
    stem = f"{slug(m.device)}-{re.sub(r'[^0-9]', '', m.measured_at)}"
    json_path = atomic_write_json(
        out / f"{stem}.json",
        {
            "measurement": m.model_dump(mode="json"),
            "policy": policy.model_dump(mode="json"),
            "checks": [c.model_dump(mode="json") for c in checks],
            "regression": regression.model_dump(mode="json"),
            "drift_from_first": drift.model_dump(mode="json"),
        },
    )
    plot_path = (
        plot_latency(m.samples_ms, out / f"{stem}.png", f"{m.service} on {m.device}")
        if m.samples_ms
        else None
    )
    # the latency distribution shown in the artifact (tasks.plots), ahead of the tier block
    plot_md = f"## Latency distribution\n\n{embed_png(plot_path)}\n\n" if plot_path else ""
    markdown = render_slo_markdown(m, checks, regression, plot_md + tier_block, drift=drift)
    artifact_id = create_markdown_artifact(
        markdown=markdown, key=key, description=f"SLO report of {m.service} on {m.device}."
    )

    events: list[str] = []

    def emit(name: str, payload: dict[str, Any]) -> None:
        emit_event(event=name, resource=_resource(m), payload=payload | {"report_key": key})
        events.append(name)

    if regression.regressed:
        emit(
            "gpuflows.slo.regressed",
            {
                "tolerance": regression.tolerance,
                "baseline_measured_at": regression.baseline_measured_at,
                "regressed": [d.model_dump(mode="json") for d in regression.regressed_metrics],
            },
        )
    failed = [c for c in checks if not c.passed]
    if failed:
        emit("gpuflows.slo.breached", {"failed": [c.model_dump(mode="json") for c in failed]})
    if drift.regressed:
        emit(
            "gpuflows.slo.drifted",
            {
                "tolerance": drift.tolerance,
                "first_baseline_measured_at": drift.baseline_measured_at,
                "drifted": [d.model_dump(mode="json") for d in drift.regressed_metrics],
            },
        )

    tier_value = tier.value if isinstance(tier, Tier) else tier
    blockers = [
        why
        for bad, why in (
            (not update_baseline, "baseline updates off"),
            (tier_value not in (Tier.T2.value, Tier.T3.value), f"tier {tier_value or 'unknown'}"),
            (bool(failed), f"failed checks: {', '.join(c.name for c in failed)}"),
            (regression.regressed, "regressed"),
            (drift.regressed, "drifted from the first baseline"),
        )
        if bad
    ]
    baseline_updated = not blockers
    if baseline_updated:
        store.save(m)
    return {
        "json": str(json_path),
        "plot": str(plot_path) if plot_path else None,
        "baseline": str(store.path(m.service, m.device)),
        "artifact_id": str(artifact_id),
        "checks_passed": not failed,
        "failed_checks": [c.name for c in failed],
        "regressed": regression.regressed,
        "drifted": drift.regressed,
        "comparable": regression.comparable,
        "baseline_updated": baseline_updated,
        "promotion": "promoted" if baseline_updated else "not promoted: " + "; ".join(blockers),
        "events": events,
    }
