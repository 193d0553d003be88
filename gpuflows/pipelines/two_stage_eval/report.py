"""The outcome of a two-stage-eval run and its report: scores, model moves, resources (no Prefect).

:func:`conclude` turns the stages' records into the per-category statistics, the swap counts of
the three orders (:mod:`gpuflows.pipelines.two_stage_eval.move_plan`), the measured moves, the
failed pairs and the Trust assessment; :func:`report_body`, :func:`report_payload` and
:func:`flow_result` are what the flow publishes and returns. The VRAM grant and the GPU monitor
report are read by their attributes (``tasks.vram.VramGrant``, ``tasks.monitoring.MonitorReport``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gpuflows.core.evidence.trust import TrustAssessment
from gpuflows.core.memory.budget import GIB
from gpuflows.pipelines.two_stage_eval.bench import canonical_category
from gpuflows.pipelines.two_stage_eval.evidence import assess_run
from gpuflows.pipelines.two_stage_eval.move_plan import compare
from gpuflows.pipelines.two_stage_eval.run_plan import TwoStageRun
from gpuflows.pipelines.two_stage_eval.score_stats import (
    is_scored,
    render_markdown,
    summarize_scores,
)

REPORT_KEY = "two-stage-eval-report"
PROGRESS_KEY = "two-stage-eval-progress"
MONITOR_KEY = "two-stage-eval-monitor"
REPORT_TITLE = "Two-stage edit-and-score evaluation"


@dataclass(frozen=True)
class PairCounts:
    """A run's pair counts, computed once in :func:`conclude`: the one source of every count the
    summary line, the log line, the report and ``report.json`` give (read = scored + failed +
    rejected; a pair rejected at load is rejected, never also failed)."""

    read: int
    scored: int
    failed: int
    rejected: int

    def line(self) -> str:
        """``6 scored, 0 failed, 4 rejected (of 10 pairs read)``."""
        return (
            f"{self.scored} scored, {self.failed} failed, {self.rejected} rejected "
            f"(of {self.read} pairs read)"
        )

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("read", "scored", "failed", "rejected")}


@dataclass(frozen=True)
class TwoStageOutcome:
    """What a run found: statistics, planned and measured swaps, failures, Trust assessment."""

    run: TwoStageRun
    scores: dict[str, dict]
    batching: dict[str, dict]
    summary: dict[str, Any]
    planned: dict[str, int]
    planned_one: dict[str, int]
    moved: dict[str, Any]
    failed: dict[str, str]
    assessment: TrustAssessment
    counts: PairCounts

    def describe(self) -> str:
        """One log line: tier, the pair counts, swaps."""
        return (
            f"two-stage-eval: {self.assessment.tier.value}, {self.counts.line()}, "
            f"{self.moved['swaps']} swap(s)"
        )


def conclude(
    run: TwoStageRun, scores: dict[str, dict], batching: dict[str, dict]
) -> TwoStageOutcome:
    """Statistics, swap counts and the Trust assessment of a run whose stages are done."""
    pairs, loaded = run.pairs, run.loaded
    # a pair rejected at load counts as rejected (in its category when it named a valid one),
    # never also as failed: failed = ran and got no score
    summary = summarize_scores(
        [(q.category, scores[q.pair_id]["score"], scores[q.pair_id]["error"]) for q in pairs],
        rejected=[canonical_category(r.category) for r in loaded.rejected],
    )
    ne, ns = run.needs["edit"].nbytes, run.needs["reward"].nbytes
    planned = compare(loaded.sizes(), ne, ns, run.capacity)
    # the same data under a budget that holds one model at a time: what the orders cost there
    planned_one = compare(loaded.sizes(), ne, ns, max(ne, ns))
    failed = {
        q.pair_id: scores[q.pair_id]["error"] or "no score"
        for q in pairs
        if not is_scored(scores[q.pair_id]["score"], scores[q.pair_id]["error"])
    }
    overall = summary["overall"]
    counts = PairCounts(
        read=len(pairs) + len(loaded.rejected),
        scored=overall["n_scored"],
        failed=len(failed),
        rejected=len(loaded.rejected),
    )
    if (counts.failed, counts.rejected) != (overall["n_failed"], overall["n_rejected"]):
        raise RuntimeError(f"pair counts disagree: {counts} vs the statistics' {overall}")
    return TwoStageOutcome(
        run=run,
        scores=scores,
        batching=batching,
        summary=summary,
        planned=planned,
        planned_one=planned_one,
        moved=run.mgr.summary(),
        failed=failed,
        assessment=assess_run(run, scores, summary),
        counts=counts,
    )


def _gib(n: int) -> str:
    return f"{n / GIB:.3f} GiB"


def monitor_record(report: Any) -> dict:
    """The GPU monitor's report as JSON: samples, reason when inactive, summary, plot path."""
    return {
        "samples": report.samples,
        "reason": report.reason,
        "summary": report.summary,
        "plot": None if report.png_path is None else str(report.png_path),
    }


def resources_md(grant: Any, batching: dict, monitor: Any) -> str:
    """VRAM held, batch sizes and why, GPU monitor: the report's resources section."""
    held = (
        f"held {grant.occupy_gib} GiB of `{grant.limit}` ({grant.capacity_gib} GiB) for "
        f"{grant.held_s:.1f} s after waiting {grant.wait_s:.1f} s"
        if grant.limit
        else "no VRAM limit held (CPU)"
    )
    lines = ["", "", f"VRAM budget: {held}.", "", "Batches:"]
    for stage, b in batching.items():
        alone = (
            f"; {b['items_oom']} pair(s) out of memory alone, retried by the next run"
            if b["items_oom"]
            else ""
        )
        lines.append(
            f"- {stage}: {b['size']} per call "
            f"({b['basis']}; OOM halvings {b['oom_halvings']}{alone})"
        )
    seen = (
        f"{monitor.samples} samples, peak memory "
        + ", ".join(f"GPU {r['gpu_index']} {r['memory_max_used_mib']} MiB" for r in monitor.summary)
        if monitor.samples
        else f"inactive ({monitor.reason})"
    )
    lines += ["", f"GPU monitor: {seen}; artifact `{MONITOR_KEY}-summary`."]
    return "\n".join(lines)


def scores_md(o: TwoStageOutcome) -> str:
    """Pairs, per-category scores, model moves (planned and measured), failed and rejected."""
    run, loaded, moved, planned, planned_one = (
        o.run,
        o.run.loaded,
        o.moved,
        o.planned,
        o.planned_one,
    )
    gbps = moved["gb_per_s"]
    lines = [
        f"Pairs: {o.counts.line()}; device {run.choice.device}.",
        "",
        "## Scores (0-10)",
        "",
        render_markdown(o.summary),
        "",
        "## Model moves",
        "",
        f"Needs: edit {_gib(run.needs['edit'].nbytes)}, reward {_gib(run.needs['reward'].nbytes)}; "
        f"budget {_gib(run.capacity)}.",
        "",
        "| order | swaps, this budget | swaps, a budget for one model |",
        "|---|---|---|",
        f"| naive (per pair) | {planned['naive']} | {planned_one['naive']} |",
        f"| per category (seed) | {planned['per_category']} | {planned_one['per_category']} |",
        f"| ours (all edits, then all scores) | {planned['ours']} | {planned_one['ours']} |",
        "",
        f"Measured this run: {moved['swaps']} swap(s), {moved['transfers']} transfer(s), "
        f"{moved['gb_moved']:.3f} GB in {moved['seconds']:.3f} s"
        + (f" ({gbps:.2f} GB/s)" if gbps and not math.isinf(gbps) else "")
        + (" — same device (no GPU): moves are bookkeeping" if moved["same_device"] else "")
        + ".",
    ]
    if o.failed:
        lines += ["", f"Failed pairs ({len(o.failed)}):", ""]
        lines += [f"- `{k}`: {v[:160]}" for k, v in list(o.failed.items())[:20]]
    if loaded.rejected:
        lines += ["", "Rejected pairs:", ""]
        lines += [f"- `{r.pair_id}` {r.field}: {r.reason[:160]}" for r in loaded.rejected[:20]]
    return "\n".join(lines)


def report_body(o: TwoStageOutcome, grant: Any, monitor: Any) -> str:
    """The report's markdown body (the publisher adds the tier, checks and lock)."""
    return scores_md(o) + resources_md(grant, o.batching, monitor)


def report_payload(o: TwoStageOutcome, grant: Any, monitor: Any) -> dict[str, Any]:
    """Everything ``report.json`` holds besides the tier, assessment and lock."""
    run = o.run
    return {
        "counts": o.counts.as_dict(),
        "summary": o.summary,
        "swaps_planned": o.planned,
        "swaps_planned_one_model": o.planned_one,
        "moves": o.moved,
        "move_records": [vars(m) for m in run.mgr.moves],
        "failed": o.failed,
        "rejected": [vars(r) for r in run.loaded.rejected],
        "checkpoint": str(run.checkpoint),
        "needs": {k: v.model_dump() for k, v in run.needs.items()},
        "capacity_bytes": run.capacity,
        "vram_grant": grant.model_dump(mode="json"),
        "batching": o.batching,
        "gpu_monitor": monitor_record(monitor),
        "models": {
            k: {
                "source": m.source,
                "path": str(m.path),
                "dtype": m.dtype,
                "fingerprint": run.fingerprints[k],
            }
            for k, m in run.models.items()
        },
    }


def flow_result(o: TwoStageOutcome, published: dict, grant: Any, monitor: Any) -> dict[str, Any]:
    """What the flow returns: tier, statistics, swaps, report paths, failures, resources."""
    return {
        "tier": o.assessment.tier.value,
        "counts": o.counts.as_dict(),
        "counts_line": o.counts.line(),
        "summary": o.summary,
        "swaps": o.moved["swaps"],
        "swaps_planned": o.planned,
        "swaps_planned_one_model": o.planned_one,
        "report": published,
        "failed": o.failed,
        "rejected": o.counts.rejected,
        "device": o.run.choice.device,
        "batching": o.batching,
        "vram_grant": grant.model_dump(mode="json"),
        "gpu_monitor": monitor_record(monitor),
    }
