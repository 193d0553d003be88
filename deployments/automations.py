"""Automations the project relies on, created idempotently (by name) against the Prefect API.

* ``gpuflows-crash-stale-flow-runs`` — Prefect's documented zombie detection: a flow run whose
  heartbeat stops (its process or host is gone: a worker SIGKILLed, a machine lost) is marked
  Crashed, so `prefect flow-run retry` can resume it from its cached results. Prefect 3.8.8's
  server has no built-in detection. Needs ``flows.heartbeat_frequency`` (30 s in prefect.toml);
  the window must be a few heartbeats long.
"""

from __future__ import annotations

from datetime import timedelta

CRASH_AUTOMATION = "gpuflows-crash-stale-flow-runs"


def crash_automation(within_s: int = 90):  # noqa: ANN201 - prefect type imported lazily
    """The automation: no heartbeat (and no terminal state) for ``within_s`` → Crashed."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    if within_s < 40:
        raise ValueError(
            f"within_s={within_s}: use more than one 30 s heartbeat (>= 40 s; 90 s in "
            "production) or live runs get crashed"
        )
    return AutomationCore(
        name=CRASH_AUTOMATION,
        description="A flow run whose heartbeat stopped is Crashed (its process is gone).",
        trigger=EventTrigger(
            match={"prefect.resource.id": ["prefect.flow-run.*"]},
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_s),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {within_s} s: the flow-run process is gone",
            )
        ],
    )


def ensure_crash_automation(within_s: int = 90) -> str:
    """Create the automation unless one of that name exists; returns its id."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(CRASH_AUTOMATION)
        if existing:
            return str(existing[0].id)
        return str(client.create_automation(crash_automation(within_s)))
