"""Tasks of two-stage-eval: stage 1 edits, stage 2 scores, each pair checkpointed in a ledger.

Each stage is one retried task over all its pairs, run by the core's checkpointed stage loop
(:class:`gpuflows.core.store.stage_runner.StageRunner`) with the keys, model calls and records of
:mod:`gpuflows.pipelines.two_stage_eval.stages`. Every finished pair is recorded durably in the
checkpoint folder's ledger before the next batch; a re-run (or a retry after a crash) skips every
recorded key: nothing finished is redone, nothing is recorded twice. Models are placed by the
residency manager passed in (thread task runner: the objects are shared, not serialised). An OOM
halves the batch; a pair that runs out of memory alone is recorded as that pair's error with
``retry: true`` (the run goes on; a later run tries it again). Transient faults raise and are
retried by Prefect.

:func:`prepare_run` is everything checked before a model loads (data, prompts, device, models,
their VRAM needs within the budget, the environment lock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from gpuflows.core.memory.batch_sizer import BatchSizer
from gpuflows.core.memory.residency import ResidencyManager
from gpuflows.core.store.ledger import Ledger
from gpuflows.pipelines.two_stage_eval import (
    EditPair,
    PromptSet,
    TwoStageEvalParams,
    TwoStageRun,
    edit_call,
    edit_runner,
    load_prompts,
    model_needs,
    plan_run,
    prepare_data,
    score_call,
    score_runner,
    unedited,
)
from tasks.hardware import pick_device
from tasks.model_specs import resolve_model
from tasks.retries import retry_options
from tasks.vram import run_capacity_bytes


def prepare_run(p: TwoStageEvalParams) -> TwoStageRun:
    """Data, prompts, device, models and their needs within the budget, the lock: everything
    that can be wrong is checked here, before a model loads (``InputError`` naming the field)."""
    log = get_run_logger()
    data, loaded = prepare_data(p)
    for r in loaded.rejected:
        log.warning("pair %s rejected: %s: %s", r.pair_id, r.field, r.reason)
    prompts = load_prompts(p.prompts_path)
    choice = pick_device(p.device)
    models = {k: resolve_model(getattr(p, f"{k}_model"), k, p.dtype) for k in ("edit", "reward")}
    needs = model_needs(models)
    both = sum(n.nbytes for n in needs.values())
    capacity = run_capacity_bytes(choice, p.vram_budget_gib, fallback_bytes=both)
    return plan_run(p, data, loaded, prompts, choice, models, needs, capacity)


@task(cache_policy=NO_CACHE, task_run_name="edit-stage", **retry_options(retries=2))
def edit_stage(
    pairs: list[EditPair],
    indices: dict[str, int],
    mgr: ResidencyManager,
    ledger: Ledger,
    out_dir: Path,
    model_fp: str,
    settings: dict[str, Any],
    batch_size: int | None,
    progress: Any = None,
) -> tuple[dict[str, dict], dict[str, Any]]:
    """Edit every pair not yet in the ledger.

    Returns:
        ({pair_id: edit record} for all pairs, the batch sizing: :meth:`BatchSizer.record`).
    """
    log = get_run_logger()
    sizer = BatchSizer(batch_size, mgr.device, mgr.capacity_bytes)
    on_progress = None if progress is None else progress.advance
    stage = edit_runner(pairs, ledger, out_dir, model_fp, settings, sizer, on_progress)
    log.info(
        "stage 1: %d of %d pairs to edit (%d from the checkpoint)",
        len(stage.todo),
        len(pairs),
        len(pairs) - len(stage.todo),
    )
    if stage.lost:
        log.warning(
            "stage 1: %d edited image(s) missing or changed on disk, edited again: %s",
            len(stage.lost),
            ", ".join(p.pair_id for p in stage.lost[:10]),
        )
    if stage.todo:
        with mgr.using("edit") as model:
            stage.run(edit_call(model, settings, indices))
        log.info("stage 1 batches: %s", sizer.basis)
    records = stage.records()
    return {p.pair_id: r for p, r in zip(pairs, records, strict=True)}, sizer.record()


@task(cache_policy=NO_CACHE, task_run_name="score-stage", **retry_options(retries=2))
def score_stage(
    pairs: list[EditPair],
    edits: dict[str, dict],
    mgr: ResidencyManager,
    ledger: Ledger,
    prompts: PromptSet,
    model_fp: str,
    settings: dict[str, Any],
    batch_size: int | None,
    progress: Any = None,
) -> tuple[dict[str, dict], dict[str, Any]]:
    """Score every edited pair not yet in the ledger.

    A pair whose edit failed is not scored: its record carries the stage-1 error, no score.

    Returns:
        ({pair_id: score record} for all pairs, the batch sizing: :meth:`BatchSizer.record`).
    """
    log = get_run_logger()
    failed = unedited(pairs, edits)
    pairs = [p for p in pairs if p.pair_id not in failed]
    if progress is not None and failed:
        progress.advance(len(failed))
    sizer = BatchSizer(batch_size, mgr.device, mgr.capacity_bytes)
    on_progress = None if progress is None else progress.advance
    stage = score_runner(pairs, edits, ledger, prompts, model_fp, settings, sizer, on_progress)
    log.info(
        "stage 2: %d of %d pairs to score (%d from the checkpoint)",
        len(stage.todo),
        len(pairs),
        len(pairs) - len(stage.todo),
    )
    if stage.todo:
        with mgr.using("score") as model:
            stage.run(score_call(model, prompts, settings))
        log.info("stage 2 batches: %s", sizer.basis)
    records = stage.records()
    return {**failed, **{p.pair_id: r for p, r in zip(pairs, records, strict=True)}}, sizer.record()
