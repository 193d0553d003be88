"""Killed runs end Crashed: a check at each flow run's start, and the automation on a server.

Self-hosted Prefect never notices a flow-run process that died (SIGKILL, OOM killer, host lost):
the run stays *Running* forever. ``make deploy`` installs the zombie automation, but CLI runs,
``make demo`` and every run killed before that automation existed are not covered. So every flow
calls :func:`crash_stale_runs` first:

1. against a real server (``PREFECT_API_URL`` set) it installs the automation
   ``gpuflows-crash-stale-flow-runs`` once (``deployments.automations``, idempotent by name);
2. it reads the other *Running* runs of the same flow and marks *Crashed* each one whose last
   sign of life (its last ``prefect.flow-run.heartbeat`` event, else the moment it entered
   Running) is older than ``max_silence_s``. A run that never sent a heartbeat and entered Running
   less than ``max_silence_s`` ago is left alone; heartbeats come every 30 s (prefect.toml).
   A crashed run's results folder is removed when it holds no file (killed before writing).

The next identical run then reuses every cached task result of the crashed one (house cache
policy); ``prefect flow-run retry <id> --entrypoint flows/<x>.py:<flow>`` resumes the crashed run
itself. Never raises: a check that cannot reach the API logs why and the run goes on.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.reports import remove_empty_run_dir

#: seconds without a heartbeat after which a Running run is taken for dead (3 heartbeats)
DEFAULT_MAX_SILENCE_S = 90
SILENCE_ENV = "GPUFLOWS_STALE_RUN_S"
_automation_checked: set[str] = set()


def max_silence_s() -> float:
    """``$GPUFLOWS_STALE_RUN_S`` or 90; raises naming the variable when it is not a number > 0."""
    raw = os.environ.get(SILENCE_ENV, "").strip()
    if not raw:
        return float(DEFAULT_MAX_SILENCE_S)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(
            f"{SILENCE_ENV}={raw!r}: give the seconds without a heartbeat after which a Running "
            f"run counts as dead, a number > 0 (default {DEFAULT_MAX_SILENCE_S})"
        )
    return value


def _parse(ts: str | None) -> datetime | None:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None


def _last_heartbeat(client: Any, run_id: str, since: datetime) -> datetime | None:
    body = {
        "filter": {
            "occurred": {"since": since.isoformat(), "until": datetime.now(UTC).isoformat()},
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
            "order": "DESC",
        },
        "limit": 1,
    }
    events = client.request("POST", "/events/filter", json=body).json().get("events") or []
    return _parse(events[0]["occurred"]) if events else None


def stale_runs(
    client: Any, flow_name: str, current_id: str | None, silence_s: float
) -> list[tuple[str, str, float]]:
    """(run id, run name, seconds silent) of the Running runs of ``flow_name`` taken for dead."""
    body = {
        "flows": {"name": {"any_": [flow_name]}},
        "flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}},
        "limit": 200,
        "offset": 0,
    }
    now = datetime.now(UTC)
    out = []
    for fr in client.request("POST", "/flow_runs/filter", json=body).json():
        if fr["id"] == current_id:
            continue
        entered = _parse((fr.get("state") or {}).get("timestamp")) or _parse(fr.get("start_time"))
        if entered is None:
            continue
        beat = _last_heartbeat(client, fr["id"], entered - timedelta(seconds=5))
        last = max(entered, beat) if beat else entered
        silent = (now - last).total_seconds()
        if silent > silence_s:
            out.append((fr["id"], fr["name"], silent))
    return out


def _ensure_automation(log: Any) -> None:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url or url in _automation_checked:
        return  # ephemeral mode: nothing runs automations once this process is gone
    try:
        from deployments.automations import ensure_crash_automation

        ensure_crash_automation()
        _automation_checked.add(url)
    except Exception as exc:  # noqa: BLE001 - the guard must never stop the work
        log.warning("crash automation not installed on %s: %r", url, exc)


def crash_stale_runs(*, silence_s: float | None = None, automation: bool = True) -> list[str]:
    """Mark dead Running runs of the current flow Crashed; the ids marked. Call it first in a flow.

    Outside a flow run it does nothing and returns ``[]``.
    """
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.states import Crashed

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return []
    log = _logger()
    silence = max_silence_s() if silence_s is None else silence_s
    if automation:
        _ensure_automation(log)
    marked = []
    try:
        with get_client(sync_client=True) as client:
            for run_id, name, silent in stale_runs(
                client, ctx.flow.name, str(ctx.flow_run.id), silence
            ):
                client.set_flow_run_state(
                    run_id,
                    Crashed(
                        message=(
                            f"no heartbeat for {silent:.0f} s (> {silence:g} s), seen by run "
                            f"{ctx.flow_run.name} at its start: the flow-run process is gone"
                        )
                    ),
                    force=True,
                )
                marked.append(run_id)
                if remove_empty_run_dir(ctx.flow.name, name):
                    log.info("removed the empty results folder of crashed run %s", name)
                log.warning(
                    "flow run %s (%s) had no heartbeat for %.0f s: marked Crashed; resume it with "
                    "`prefect flow-run retry %s --entrypoint <file>:<flow>`",
                    name,
                    run_id,
                    silent,
                    run_id,
                )
    except Exception as exc:  # noqa: BLE001
        log.warning("stale-run check skipped: %r", exc)
    return marked


def _logger() -> logging.Logger | logging.LoggerAdapter:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)
