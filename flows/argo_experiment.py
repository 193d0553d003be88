"""``argo-experiment``: ARGO adaptive RAG against Always-Retrieve, Always-Reason and Random.

Seed 003 ran 1000 questions x 4 strategies x 10 c_r points one ``generate`` at a time (400,000
calls, ~7 days). Here the same experiment is deduplicated, cached and batched:

1. Inputs checked before any model loads (:func:`gpuflows.pipelines.argo_experiment.load_inputs`):
   ORAN-Bench-13K files or our JSONL (malformed rows and repeats excluded and counted), a corpus
   folder (or a Chroma collection), versioned prompts. Default: a generated set whose answers
   are only in the generated corpus (synthetic, T1).
2. Plan: the MDP's (theta_cont, theta_star) per c_r; baselines as one group for every c_r
   point, ARGO one group per distinct threshold pair; chunks of ``chunk_size`` questions.
3. One cached task per (group, chunk) (``tasks.argo.run_group_chunk``): episodes
   step-synchronous, every model call a batch, the call cache shared by all units and runs.
4. Episodes JSONL, rows JSONL (question x strategy x c_r x seed), aggregate table, Graph 1.A
   (c_r vs accuracy, 95% CI, a panel per difficulty) and 1.B (c_r vs mean retrievals) in the
   tiered report ``argo-experiment-report``; progress ``argo-experiment-progress``; GPU monitor.

    python -m flows.argo_experiment --preset smoke
    python -m flows.argo_experiment --preset small --model /models/Qwen2.5-7B-Instruct \\
        --dtype bfloat16 --device cuda --gpus 0,1 --max-memory-gib 10
    python -m flows.argo_experiment --questions fin_H.json --corpus specs/ --difficulties hard
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from gpuflows.pipelines.argo_experiment import (
    MONITOR_KEY,
    PRESETS,
    PROGRESS_KEY,
    REPORT_KEY,
    REPORT_TITLE,
    ArgoParams,
    InputError,
    conclude,
    experiment_lock,
    load_inputs,
    plan,
    units_of,
)
from tasks.argo import run_unit_task, work_paths
from tasks.cli import run_cli
from tasks.crash_guard import crash_stale_runs
from tasks.hardware import pick_device
from tasks.monitoring import gpu_monitor
from tasks.progress import RunProgress
from tasks.reports import publish_tiered_report, run_dir
from tasks.result_store import prefect_results_dir
from tasks.summary import summary_printer

__all__ = ["MONITOR_KEY", "PROGRESS_KEY", "REPORT_KEY", "ArgoParams", "argo_experiment", "main"]


@flow(name="argo-experiment", log_prints=True, result_storage=prefect_results_dir())
def argo_experiment(params: ArgoParams = ArgoParams()) -> dict[str, Any]:  # noqa: B008
    """ARGO vs baselines over c_r: deduplicated, cached, step-synchronous batches; tiered report."""
    crash_stale_runs()
    log = get_run_logger()
    p = params
    paths = work_paths()
    inputs = load_inputs(
        p, paths["work"]
    )  # bad questions / corpus / prompts fail here, before a model
    choice = pick_device(p.device)
    lock = experiment_lock(p, inputs, choice)
    planned = plan(p, inputs.questions)
    out = run_dir("argo-experiment")
    calls = str(paths["calls"])
    progress = RunProgress(PROGRESS_KEY, total=planned["units"], what="(group, chunk) units")
    units = []
    with gpu_monitor(interval_s=p.monitor_interval_s, key=MONITOR_KEY, title="argo-experiment"):
        for unit in units_of(planned, inputs):
            units.append(
                run_unit_task(
                    p,
                    unit["group"],
                    unit["chunk_no"],
                    unit["questions"],
                    choice,
                    inputs.corpus_digest,
                    inputs.prompts.digest,
                    inputs.corpus_dir,
                    str(paths["emb"]),
                    calls,
                )
            )
            progress.advance()
    outcome = conclude(p, inputs, planned, units, lock, choice, out)
    published = publish_tiered_report(
        key=REPORT_KEY,
        title=REPORT_TITLE,
        body_md=outcome.body,
        assessment=outcome.assessment,
        lock=lock,
        payload=outcome.payload,
        out_dir=out,
    )
    log.info("argo-experiment: %s, %s", published["tier"], outcome.totals)
    return outcome.result(published)


def _head(out: dict[str, Any]) -> list[str]:
    t = out["totals"]
    return [
        f"\nargo-experiment finished: {out['tier']}",
        f"  calls: {t['model_calls']} run by the model, {t['cache_hits']} cached, "
        f"{t['shared_in_batch']} shared; the seeds' way: {t['seed_way_calls']}",
        f"  episodes: {out['episodes']}",
        f"  graphs:   {out['graph_1a']}, {out['graph_1b']}",
    ]


def main(argv: list[str] | None = None) -> int:
    return run_cli(
        argo_experiment,
        ArgoParams,
        argv,
        prog="python -m flows.argo_experiment",
        description=__doc__.split("\n\n")[0],
        presets=PRESETS,
        report=summary_printer("argo-experiment", _head),
        errors=(InputError,),
    )


if __name__ == "__main__":
    raise SystemExit(main())
