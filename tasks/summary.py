"""One end-of-run summary for every flow's command line: tier, report, artifacts, files, UI link.

Each flow returns a dict holding ``report`` (what :func:`tasks.reports.publish_tiered_report`
returned: tier, markdown and JSON paths, artifact key, flow-run id). :func:`end_of_run_summary`
turns it into the same few lines for every flow, listing every artifact key the run published
(read back from the API, so monitor, progress and SLO artifacts are named too) and the run's page
in the UI. Use ``run_cli(..., report=summary_printer("rqa-sweep"))``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def run_artifact_keys(flow_run_id: str) -> list[str]:
    """Keys of the artifacts a flow run published (sorted, unique); [] when the API cannot say."""
    from prefect.client.orchestration import get_client

    body = {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200, "offset": 0}
    try:
        with get_client(sync_client=True) as client:
            rows = client.request("POST", "/artifacts/filter", json=body).json()
    except Exception:  # noqa: BLE001 - a summary line must not fail a finished run
        return []
    return sorted({r["key"] for r in rows if r.get("key")})


def ui_run_url(flow_run_id: str) -> str | None:
    """The run's page in the UI (``PREFECT_UI_URL``), None without a UI URL (ephemeral mode)."""
    from prefect.settings import get_current_settings

    ui = get_current_settings().ui_url
    return f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


def end_of_run_summary(flow_name: str, out: dict[str, Any], head: list[str] | None = None) -> str:
    """The summary lines for ``out``, a flow's return value (needs ``out["report"]``).

    ``head``: the flow's own first lines (what it found); the rest is the same for every flow:
    report, files, every artifact key of the run, and where to see it in the UI.
    """
    rep = out.get("report")
    if not isinstance(rep, dict) or "markdown" not in rep:
        raise ValueError(
            f"{flow_name}: the flow's result has no 'report' from publish_tiered_report "
            f"(keys: {sorted(out)}); return it as out['report']"
        )
    device = f" on {out['device']}" if out.get("device") else ""
    lines = head or [f"\n{flow_name} finished: {rep.get('tier') or out.get('tier')}{device}"]
    lines.append(f"  report:    {rep['markdown']}")
    lines.append(f"  files:     {Path(rep['markdown']).parent}")
    run_id = rep.get("flow_run_id")
    keys = run_artifact_keys(run_id) if run_id else []
    lines.append(f"  artifacts: {', '.join(keys) if keys else rep.get('key', '-')}")
    url = ui_run_url(run_id) if run_id else None
    if url:
        lines.append(f"  UI:        {url}")
    elif run_id:
        lines.append(f"  flow run:  {run_id} (start `prefect server start` to browse it)")
    return "\n".join(lines)


def summary_printer(
    flow_name: str, head: Callable[[dict[str, Any]], list[str]] | None = None
) -> Callable[[dict[str, Any]], None]:
    """A ``report=`` callable for ``tasks.cli.run_cli`` printing :func:`end_of_run_summary`;
    ``head(out)`` gives the flow's own first lines."""

    def _print(out: dict[str, Any]) -> None:
        print(end_of_run_summary(flow_name, out, head(out) if head else None))

    return _print
