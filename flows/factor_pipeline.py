"""``factor-pipeline`` (seed 002): probing factors with a VLM, failure-key sampling, QA pairs.

Three sub-flows, each of which also runs alone (``--step probe|sample|qa``):

1. ``factor-probe``: Parquet shards (generated when no ``--input-path``) validated, then the
   shard groups mapped over this flow's task runner -- one process worker per GPU with
   ``--task-runner.kind dask`` (the 4-gpu / 8-gpu presets) -- predict -> complete template ->
   verify with the VLM, loaded here or behind ``--probe-endpoint-url`` (one per GPU server);
   per-shard JSONL, errors and manifest under ``<out>/probe``.
2. ``factor-sample``: failure records -> ``<out>/failures.jsonl`` (streaming, seeded sample).
3. ``factor-qa``: one QA pair per record against the endpoint(s) or the local engine;
   ``<out>/qa/qa.jsonl`` and ``<out>/qa/errors.jsonl`` (alone: ``<out-dir>/qa.jsonl``), every
   input id in exactly one of them, also after a kill and a re-run.

Artifacts: ``factor-pipeline-progress`` (done / failed / total, rate, ETA) and
``factor-pipeline-summary`` (per-step counts, rates, error kinds, Trust Tier).

    python -m flows.factor_pipeline --preset smoke
    python -m flows.factor_pipeline --step qa --input-path F.jsonl \\
        --endpoint-url http://127.0.0.1:8000/v1 --served-model smollm2 --out-dir D
    python -m flows.factor_pipeline --step probe --probe-endpoint-url http://127.0.0.1:8001/v1 \\
        --probe-served-model tiny-vlm --out-dir D
    python -m flows.factor_pipeline --preset 8-gpu --input-path /data/shards \\
        --endpoint-url http://h:8000/v1 ... (8 URLs) --served-model NAME
"""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped

from gpuflows.pipelines.factor_pipeline import PRESETS, FactorParams, InputError
from tasks.cli import run_cli
from tasks.crash_guard import crash_stale_runs
from tasks.factor import (
    finish_probe,
    gather_groups,
    plan_groups,
    prepare_shards,
    probe_shard_group,
    publish_report,
    qa_records,
    resolve_out_dir,
    sample_step,
)
from tasks.result_store import prefect_results_dir
from tasks.runners import gpu_resources, with_task_runner
from tasks.summary import summary_printer

__all__ = ["factor_pipeline", "factor_probe", "factor_qa", "factor_sample", "main"]


@flow(name="factor-probe", log_prints=True, result_storage=prefect_results_dir())
def factor_probe(params: FactorParams, out_dir: str) -> dict[str, Any]:
    """Step 1: validate the shards (before any model time), probe every shard group."""
    prepared = prepare_shards(params, out_dir)
    groups = plan_groups(prepared, params)
    with gpu_resources(params.task_runner):  # on Dask: each group holds one GPU worker
        futures = probe_shard_group.map(
            groups, list(range(len(groups))), unmapped(out_dir), unmapped(params)
        )
    results = gather_groups(futures, len(groups))
    return {"probe": finish_probe(prepared, results, params, out_dir), "data": prepared}


@flow(name="factor-sample", log_prints=True, result_storage=prefect_results_dir())
def factor_sample(params: FactorParams, input_path: str, out_path: str) -> dict[str, Any]:
    """Step 2: step-1 records (folder, JSONL or JSON array) -> failures JSONL."""
    return sample_step(params, input_path, out_path) | {"input": input_path}


@flow(name="factor-qa", log_prints=True, result_storage=prefect_results_dir())
def factor_qa(params: FactorParams, input_path: str, out_dir: str) -> dict[str, Any]:
    """Step 3: QA pairs for every record of a JSONL file, exactly once."""
    return qa_records(params, input_path, out_dir)


@flow(name="factor-pipeline", log_prints=True, result_storage=prefect_results_dir())
def factor_pipeline(params: FactorParams = FactorParams()) -> dict[str, Any]:  # noqa: B008
    """Steps 1-3 (or the one ``params.step`` names), then the tiered summary."""
    crash_stale_runs()
    out = resolve_out_dir(params.out_dir)
    steps: dict[str, Any] = {}
    data = None
    if params.step in ("all", "probe"):
        probed = with_task_runner(factor_probe, params.task_runner)(params, out)
        steps["probe"], data = probed["probe"], probed["data"]
    if params.step in ("all", "sample"):
        source = steps["probe"]["folder"] if "probe" in steps else params.input_path
        steps["sample"] = factor_sample(params, source, f"{out}/failures.jsonl")
    if params.step in ("all", "qa"):
        source = steps["sample"]["output"] if "sample" in steps else params.input_path
        target = f"{out}/qa" if params.step == "all" else out
        steps["qa"] = factor_qa(params, source, target)
    report = publish_report(params, steps, out, data)
    return {"steps": steps, "report": report, "tier": report["tier"], "out_dir": out}


def _head(out: dict[str, Any]) -> list[str]:
    keys = ("records", "failures", "written", "qa", "errors", "sent_now")
    return [f"\nfactor-pipeline finished: {out['tier']} -> {out['out_dir']}"] + [
        f"  {name}: " + ", ".join(f"{k} {s[k]}" for k in keys if k in s)
        for name, s in out["steps"].items()
    ]


def main(argv: list[str] | None = None) -> int:
    return run_cli(
        factor_pipeline,
        FactorParams,
        argv,
        prog="python -m flows.factor_pipeline",
        presets=PRESETS,
        report=summary_printer("factor-pipeline", _head),
        errors=(InputError,),
    )


if __name__ == "__main__":
    raise SystemExit(main())
