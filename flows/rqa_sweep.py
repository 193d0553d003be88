"""``rqa-sweep``: RQA over a grid of (m, tau, eps, l_min), group statistics, a tiered summary.

Seed 001's five steps per combination, sweep-aware: the distances of one (subject, series, m,
tau) are computed once for every eps
(:func:`gpuflows.pipelines.rqa_sweep.engine.sweep_histograms`) and every l_min and v_min is read
from the line histograms. Definitions (embedding, strict ``dist < eps``, Theiler window,
DET/L/ENT/LAM/TT, NaN for 0/0) are those of :mod:`gpuflows.pipelines.rqa_sweep.rqa`. This module
only wires the steps; their code is in :mod:`gpuflows.pipelines.rqa_sweep` and :mod:`tasks.rqa`.

1. RQA: one cached task per (m, tau) over all subjects and series (``tasks.rqa.rqa_mt``;
   granularity from the measured task overhead, see that module). A killed run resumes: finished
   (m, tau) tasks are cache hits.
2. Merge: one tidy Parquet table ``rqa_sweep.parquet``: subject_id, group, series, m, tau, eps,
   l_min, N, RR, DET, L_max, L_mean, DIV, ENT, LAM, TT, V_max (one row per subject x series x m
   x tau x eps x l_min).
3. Derived features (``features.parquet``, per subject x m x tau x eps x l_min, when the
   series include x and y; NaN where a ratio is 0/0 or x/0):
   ``DET_x_over_y`` = DET(x) / DET(y) (horizontal vs vertical determinism);
   ``LAM_x_over_y`` = LAM(x) / LAM(y);
   ``DET_joint_minus_marginal`` = DET(xy) - (DET(x) + DET(y)) / 2 and
   ``RR_joint_minus_marginal`` = RR(xy) - (RR(x) + RR(y)) / 2 (needs xy too): how much the joint
   2-D embedding adds beyond the two marginal series.
4. Statistics (``stats.parquet``): per combination x measure, Kruskal-Wallis H, p and
   epsilon^2; pairwise Mann-Whitney U with Cliff's delta
   (:mod:`gpuflows.pipelines.rqa_sweep.stats`); Benjamini-Hochberg q over the whole sweep, per
   test. Measures that do not depend on l_min (RR, L_max, DIV, LAM, TT, V_max) are tested once,
   at the smallest l_min, so identical tests do not inflate the FDR family.
5. Plots: ``effect_heatmap.png`` (epsilon^2 over (m, tau) x eps for the best measure, series and
   l_min) and ``top_distributions.png`` (per-group values of the 3 best combinations).

Summary artifact ``rqa-sweep-summary`` (Trust Tier: synthetic data -> T1), progress artifact
``rqa-sweep-progress`` (combinations done / total, ETA), GPU monitor ``rqa-sweep-monitor``.

    python -m flows.rqa_sweep --preset smoke
    python -m flows.rqa_sweep --preset seed-test --device cuda
    python -m flows.rqa_sweep --data gaze.parquet --m 1 2 3 --tau 1 --eps 0.1 0.2 --l-min 2
    python -m flows.rqa_sweep --preset seed-test --task-runner dask      # local cluster, 1 per GPU
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from gpuflows.pipelines.rqa_sweep import (
    DEFAULT_MAX_COMBINATIONS,
    TOP_N,
    InputError,
    RqaSweepParams,
    build_report,
    expand_units,
    load_sweep_data,
    series_arrays,
    sweep_lock,
    units_by_pair,
    write_sweep_tables,
)
from tasks.cli import run_cli
from tasks.crash_guard import crash_stale_runs
from tasks.hardware import DeviceChoice, pick_device
from tasks.monitoring import gpu_monitor
from tasks.reports import publish_tiered_report, run_dir
from tasks.result_store import prefect_results_dir
from tasks.rqa import run_units, submit_units
from tasks.runners import with_task_runner
from tasks.summary import summary_printer

__all__ = [
    "DEFAULT_MAX_COMBINATIONS",
    "MONITOR_KEY",
    "PROGRESS_KEY",
    "SUMMARY_KEY",
    "RqaSweepParams",
    "main",
    "rqa_sweep",
    "rqa_sweep_units",
]

SUMMARY_KEY = "rqa-sweep-summary"
PROGRESS_KEY = "rqa-sweep-progress"
MONITOR_KEY = "rqa-sweep-monitor"


@flow(name="rqa-sweep-units", log_prints=True, result_storage=prefect_results_dir())
def rqa_sweep_units(
    params: RqaSweepParams, choice: DeviceChoice, progress_key: str = PROGRESS_KEY
) -> list[dict]:
    """Every distinct (m, tau) of the sweep as a task on this flow's task runner (a Dask cluster
    when ``rqa-sweep`` runs with ``task_runner.kind='dask'``); GPU units ask for a Dask GPU.

    Takes the parameters, not the arrays, and loads the data itself: flow parameters are stored
    by the API as JSON. Returns ``[{"m", "tau", "result"}]`` in the sweep's order.
    """
    frame, _, _ = load_sweep_data(params)
    return submit_units(series_arrays(frame, list(params.series)), params, choice, progress_key)


@flow(name="rqa-sweep", log_prints=True, result_storage=prefect_results_dir())
def rqa_sweep(params: RqaSweepParams = RqaSweepParams()) -> dict[str, Any]:  # noqa: B008
    """RQA parameter sweep: exact sweep-aware RQA, tidy table, group statistics, tiered summary."""
    crash_stale_runs()
    log = get_run_logger()
    p = params
    frame, ref, synthetic = load_sweep_data(p)  # bad data fails here, before any compute
    choice = pick_device(p.device)
    lock = sweep_lock(p, ref, choice)
    series = series_arrays(frame, list(p.series))
    out = run_dir("rqa-sweep")
    out.mkdir(parents=True, exist_ok=True)
    with gpu_monitor(
        interval_s=p.monitor_interval_s,
        key=MONITOR_KEY,
        title=f"rqa-sweep on {choice.device}",
    ):
        if p.task_runner.kind == "thread":
            computed = run_units(series, p, choice, PROGRESS_KEY)
        else:  # the units as tasks of a subflow on the chosen cluster
            log.info("rqa-sweep: (m, tau) units on %s", p.task_runner)
            computed = units_by_pair(
                with_task_runner(rqa_sweep_units, p.task_runner)(p, choice, PROGRESS_KEY)
            )
        results = expand_units(computed, p.m, p.tau)

    tables = write_sweep_tables(results, frame, out, top_n=TOP_N)
    report = build_report(
        p,
        frame=frame,
        synthetic=synthetic,
        lock=lock,
        n_series=len(series),
        tables=tables,
        results=results,
        computed=computed,
    )
    published = publish_tiered_report(
        key=SUMMARY_KEY,
        title="RQA parameter sweep",
        body_md=report.body,
        assessment=report.assessment,
        lock=lock,
        payload=report.payload,
        out_dir=out,
    )
    tier, rows = report.assessment.tier.value, report.payload["rows"]
    log.info("rqa-sweep: %s, %d rows -> %s", tier, rows, tables.table)
    return {
        "tier": tier,
        "table": str(tables.table),
        "features": str(tables.features_path),
        "stats": str(tables.stats_path),
        "plots": tables.plots,
        "report": published,
        "results_dir": str(out),
        "rows": rows,
        "device": report.device_used,
    }


CLI_ALIASES = {
    "--data": "data_path",
    "--task-runner": "task_runner.kind",
    "--dask-address": "task_runner.address",
    "--dask-workers": "task_runner.n_workers",
}
"""Spellings of the hand-written CLI this one replaced, still accepted."""


def _head(out: dict[str, Any]) -> list[str]:
    return [
        f"\nrqa-sweep finished: {out['tier']} on {out['device']}, {out['rows']:,} rows",
        f"  table:     {out['table']}",
        f"  stats:     {out['stats']}",
        f"  plots:     {', '.join(out['plots'])}",
    ]


def main(argv: list[str] | None = None) -> int:
    """The command line, generated from :class:`RqaSweepParams` (``--help`` lists every field)."""
    return run_cli(
        rqa_sweep,
        RqaSweepParams,
        argv,
        prog="python -m flows.rqa_sweep",
        description=__doc__.split("\n\n")[0],
        aliases=CLI_ALIASES,
        errors=(InputError,),
        report=summary_printer("rqa-sweep", _head),
    )


if __name__ == "__main__":
    raise SystemExit(main())
