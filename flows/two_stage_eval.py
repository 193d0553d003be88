"""``two-stage-eval``: edit every pair with a diffusion model, then score every edit with a VLM.

Seed 004. The edit model and the reward model may not fit one GPU together, so the flow runs all
of stage 1 (every category), then swaps once, then all of stage 2: one swap, or none when the
budget holds both (the seed: 540 moves per pair, 9 per category). A residency manager
(:mod:`gpuflows.core.memory.residency`) places the models within the budget and times every
move; the report states the swaps of the naive, per-category and our order
(:mod:`gpuflows.pipelines.two_stage_eval.move_plan`).

Per pair and stage the result is checkpointed (:mod:`tasks.two_stage`): a killed run re-run with
the same parameters redoes nothing finished; a re-edited image is re-scored. Edited images are
PNG files on disk, recorded with their digest. Bad pairs are rejected before any model loads.

Artifacts: ``two-stage-eval-report`` (tiered), ``two-stage-eval-progress`` (pair-stages done),
GPU monitor ``two-stage-eval-monitor`` (samples table and ``-summary``; inactive on the CPU).

Models: ``"tiny"`` builds small random-weight models locally through the same diffusers /
transformers code (synthetic: the result caps at T1); ``"block:<name>"`` loads a ModelSource block;
anything else is a model folder on this host (safetensors, no remote code).

    python -m flows.two_stage_eval --preset smoke
    python -m flows.two_stage_eval --data bench/ --edit-model /m/ip2p --reward-model /m/vlm
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from gpuflows.pipelines.two_stage_eval import (
    FLOW_NAME,
    MONITOR_KEY,
    PROGRESS_KEY,
    REPORT_KEY,
    REPORT_TITLE,
    InputError,
    TwoStageEvalParams,
    conclude,
    flow_result,
    load_models,
    report_body,
    report_payload,
)
from tasks.cli import run_cli
from tasks.crash_guard import crash_stale_runs
from tasks.monitoring import gpu_monitor
from tasks.progress import RunProgress
from tasks.reports import publish_tiered_report, run_dir
from tasks.result_store import prefect_results_dir
from tasks.summary import summary_printer
from tasks.two_stage import edit_stage, prepare_run, score_stage
from tasks.vram import vram_budget

__all__ = ["MONITOR_KEY", "PROGRESS_KEY", "REPORT_KEY", "TwoStageEvalParams", "two_stage_eval"]


@flow(name="two-stage-eval", log_prints=True, result_storage=prefect_results_dir())
def two_stage_eval(params: TwoStageEvalParams = TwoStageEvalParams()) -> dict:  # noqa: B008
    """Edit, swap once, score; per-category statistics, swap counts, tiered report."""
    crash_stale_runs()
    log = get_run_logger()
    p = params
    # everything that can be wrong is checked before a model loads; then both load on the host
    # and the residency manager places them
    run = load_models(prepare_run(p))
    progress = RunProgress(
        PROGRESS_KEY, total=run.progress_units, what="pair-stages", min_interval_s=0.5
    )
    with (
        gpu_monitor(
            interval_s=p.monitor_interval_s,
            key=MONITOR_KEY,
            title=f"two-stage-eval on {run.choice.device}",
        ) as monitor,
        vram_budget(run.hold, device=run.choice) as grant,
    ):
        edits, edit_batches = edit_stage(
            run.pairs,
            run.indices,
            run.mgr,
            run.edit_ledger,
            run.edited_dir,
            run.fingerprints["edit"],
            run.edit_settings,
            p.batch_size,
            progress,
        )
        scores, score_batches = score_stage(
            run.pairs,
            edits,
            run.mgr,
            run.score_ledger,
            run.prompts,
            run.fingerprints["reward"],
            run.score_settings,
            p.batch_size,
            progress,
        )
    outcome = conclude(run, scores, {"edit": edit_batches, "score": score_batches})
    published = publish_tiered_report(
        key=REPORT_KEY,
        title=REPORT_TITLE,
        body_md=report_body(outcome, grant, monitor.report),
        assessment=outcome.assessment,
        lock=run.lock,
        out_dir=run_dir(FLOW_NAME),
        payload=report_payload(outcome, grant, monitor.report),
    )
    log.info(outcome.describe())
    return flow_result(outcome, published, grant, monitor.report)


CLI_ALIASES = {"--data": "data_path", "--prompts": "prompts_path"}
"""Spellings of the hand-written CLI this one replaced, still accepted."""


def _head(out: dict) -> list[str]:
    one = out["swaps_planned_one_model"]
    return [
        f"\ntwo-stage-eval finished: {out['tier']} on {out['device']}: {out['counts_line']}; "
        f"swaps {out['swaps']} "
        f"(naive {out['swaps_planned']['naive']}, "
        f"per-category {out['swaps_planned']['per_category']})",
        f"  swaps with a budget for one model: naive {one['naive']}, per-category "
        f"{one['per_category']}, ours {one['ours']}",
    ]


def main(argv: list[str] | None = None) -> int:
    """The command line, generated from :class:`TwoStageEvalParams` (``--help`` lists every field)."""
    return run_cli(
        two_stage_eval,
        TwoStageEvalParams,
        argv,
        prog="python -m flows.two_stage_eval",
        description=__doc__.split("\n\n")[0],
        aliases=CLI_ALIASES,
        errors=(ValueError, InputError),
        report=summary_printer("two-stage-eval", _head),
    )


if __name__ == "__main__":
    raise SystemExit(main())
