"""Publishing a tiered result: markdown artifact + JSON + markdown file, one place for all flows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext

from gpuflows.core.evidence.envlock import EnvironmentLock, render_lock_markdown
from gpuflows.core.evidence.trust import TrustAssessment, render_trust_markdown
from gpuflows.core.store.io import atomic_write_bytes, atomic_write_json, results_root
from tasks.artifacts import validate_key
from tasks.md_fit import fit_tables
from tasks.plots import embed_named_plots


def run_dir(flow_name: str) -> Path:
    """``results/<flow>/<flow-run-name or 'local'>/``: where a run's user-readable files go."""
    ctx = FlowRunContext.get()
    name = ctx.flow_run.name if ctx and ctx.flow_run else "local"
    return results_root() / flow_name / name


def remove_empty_run_dir(flow_name: str, run_name: str) -> bool:
    """Delete ``results/<flow>/<run name>/`` if it holds no file (a run killed before writing).

    Only empty folders go (deepest first); a folder with any file is left whole. True if removed.
    """
    root = results_root() / flow_name / run_name
    if not root.is_dir() or any(p.is_file() or p.is_symlink() for p in root.rglob("*")):
        return False
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        d.rmdir()
    root.rmdir()
    return True


def publish_tiered_report(
    *,
    key: str,
    title: str,
    body_md: str,
    assessment: TrustAssessment,
    lock: EnvironmentLock,
    payload: dict[str, Any],
    out_dir: Path,
) -> dict[str, Any]:
    """Write ``report.json`` and ``report.md`` under ``out_dir`` and publish the markdown artifact.

    The artifact always shows the tier, the checks behind it, what is missing for the next
    tier, and the environment lock; every ``.png`` the body names in backticks is shown in it
    (``tasks.plots.embed_named_plots``, downscaled) and tables too wide for the page become lists
    (``tasks.md_fit``); ``report.md`` keeps the paths and tables.
    """
    validate_key(key)
    md = (
        f"# {title}\n\n**Trust Tier: {assessment.tier.value}**\n\n{body_md.strip()}\n\n"
        f"{render_trust_markdown(assessment)}\n## Environment lock\n\n{render_lock_markdown(lock)}\n\n"
        f"Files: `{out_dir}`\n"
    )
    record = {
        "title": title,
        "tier": assessment.tier.value,
        "assessment": assessment,
        "lock": lock,
        **payload,
    }
    json_path = atomic_write_json(out_dir / "report.json", record)
    md_path = atomic_write_bytes(out_dir / "report.md", md.encode())
    artifact_id = create_markdown_artifact(
        embed_named_plots(fit_tables(md)), key=key, description=f"{title} — {assessment.tier.value}"
    )
    ctx = FlowRunContext.get()
    return {
        "json": str(json_path),
        "markdown": str(md_path),
        "artifact_id": str(artifact_id),
        "key": key,
        "flow_run_id": str(ctx.flow_run.id) if ctx and ctx.flow_run else None,
        "tier": assessment.tier.value,
    }
