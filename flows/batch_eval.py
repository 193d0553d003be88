"""``batch-eval``: re-ranker evaluation (seed 000): set expansion, modality ablation, SLO baseline.

1. Environment lock; safety gate (wall time, VRAM ceiling) checked between the steps.
2. Data: a dataset folder (``gpuflows.pipelines.batch_eval.schema``; bad input refused before
   any model loads) or the generated default (synthetic -> T1); fusion head trained on the
   train split over the real MiniLM text encoder.
3. Set expansion to ``target_size`` with ``hard_share`` hard queries (hard = the model's nDCG@10
   below ``hard_ndcg_below``), the minimum detectable effect at that size.
4. Modality ablation (zero + permutation, bootstrap CI, randomization test, Holm); TREC run and
   qrels re-scored by ir-measures.
5. Production baseline: offline and server (Poisson) scenarios, SLO checks on 95 % bounds, the
   stored baseline compared (events ``gpuflows.slo.breached`` / ``gpuflows.slo.regressed``).
6. CoTRR-Lite: a lighter configuration checked against p95 <= 150 ms and peak <= 512 MB.
7. Final report ``batch-eval-report`` (decisions, tiers, plots, archive with a digest manifest).

    python -m flows.batch_eval --preset smoke
    python -m flows.batch_eval --preset seed --device cuda
    python -m flows.batch_eval --data-path my_dataset/ --target-size 600
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from gpuflows.pipelines.batch_eval import BatchEvalParams, InputError, run_lock, summarise
from tasks.batch_eval import (
    SafetyGate,
    ablate,
    compare_and_store,
    cotrr_lite,
    expand,
    load_data,
    load_expanded,
    measure_baseline,
    train,
)
from tasks.crash_guard import crash_stale_runs
from tasks.hardware import pick_device
from tasks.reports import publish_tiered_report, run_dir
from tasks.result_store import prefect_results_dir
from tasks.summary import summary_printer

REPORT_KEY = "batch-eval-report"


@flow(name="batch-eval", log_prints=True, result_storage=prefect_results_dir())
def batch_eval(params: BatchEvalParams = BatchEvalParams()) -> dict[str, Any]:  # noqa: B008
    """Re-ranker evaluation: expansion, ablation, SLO baseline, final tiered report."""
    crash_stale_runs()
    p = params
    out = run_dir("batch-eval")
    data = load_data(p, out)  # bad data fails here, before any model loads
    choice = pick_device(p.device)
    gate = SafetyGate(p.max_wall_s, p.vram_ceiling_gb, choice.device)
    lock = run_lock(p, data, choice)
    head = train(data, data.digest(), p.head_epochs, p.seed, choice, str(out.parent / "heads"))
    gate.check("train")
    expanded = expand(data, data.digest(), head, p, choice, str(out))
    gate.check("expansion")
    ids = expanded["result"]["query_ids"]
    evaluated = load_expanded(expanded, data)
    abl = ablate(evaluated, expanded["digest"], head, ids, p, choice, str(out))
    gate.check("ablation")
    base = measure_baseline(evaluated, head, ids, p, choice)
    gate.check("baseline")
    lite = cotrr_lite(evaluated, head, ids, p, choice)
    s = summarise(
        p,
        data=data,
        lock=lock,
        head=head,
        expanded=expanded,
        ablation=abl,
        baseline=base,
        lite=lite,
        device_used=choice.device,
        out=out,
    )
    stored = compare_and_store(base, choice.device, s["promote"], str(out.parent / "baselines"))
    published = publish_tiered_report(
        key=REPORT_KEY,
        title="Batch evaluation of the re-ranker",
        body_md=s["body_md"],
        assessment=s["assessment"],
        lock=lock,
        payload={**s["payload"], "baseline_store": stored},
        out_dir=out,
    )
    return {
        "tier": s["assessment"].tier.value,
        "sections": s["sections"],
        "decisions": s["decisions"],
        "report": published,
        "archive": s["archive"],
        "plots": s["plots"],
        "events": stored["events"],
        "results_dir": str(out),
        "device": choice.device,
    }


def _head(out: dict[str, Any]) -> list[str]:
    d = out["decisions"]
    return [
        f"\nbatch-eval finished on {out['device']}: {out['tier']}",
        f"  integrity: {d['integrity']}; baseline: {d['baseline']}",
        f"  sections:  {out['sections']}",
        f"  archive:   {out['archive']['path']}",
    ]


def main(argv: list[str] | None = None) -> int:
    from tasks.cli import run_cli

    return run_cli(
        batch_eval,
        BatchEvalParams,
        argv,
        report=summary_printer("batch-eval", _head),
        errors=(InputError,),
        prog="python -m flows.batch_eval",
    )


if __name__ == "__main__":
    raise SystemExit(main())
