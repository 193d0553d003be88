"""``rqa-sweep``: RQA over a grid of (m, tau, eps, l_min), group statistics, a tiered summary.

Seed 001's five steps per combination, sweep-aware: the distances of one (subject, series, m,
tau) are computed once for every eps (:func:`gpuflows.pipelines.rqa_sweep.engine.sweep_histograms`) and every
l_min and v_min is read from the line histograms. Definitions (embedding, strict ``dist < eps``,
Theiler window, DET/L/ENT/LAM/TT, NaN for 0/0) are those of :mod:`gpuflows.pipelines.rqa_sweep.rqa`.

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
   epsilon^2; pairwise Mann-Whitney U with Cliff's delta (:mod:`gpuflows.pipelines.rqa_sweep.stats`);
   Benjamini-Hochberg q over the whole sweep, per test. Measures that do not depend on l_min
   (RR, L_max, DIV, LAM, TT, V_max) are tested once, at the smallest l_min, so identical tests
   do not inflate the FDR family.
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

import argparse
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger
from prefect.futures import as_completed
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.digest import file_digest
from gpuflows.core.evidence.envlock import build_lock
from gpuflows.core.evidence.trust import Evidence, assess
from gpuflows.core.faults import InputError
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.store.io import atomic_write_parquet
from gpuflows.pipelines.rqa_sweep import gaze
from gpuflows.pipelines.rqa_sweep.engine import MAX_EPS
from gpuflows.pipelines.rqa_sweep.grid import PRESETS, compute_units, relabel_tau
from gpuflows.pipelines.rqa_sweep.plots import plot_sweep
from gpuflows.pipelines.rqa_sweep.schema import dataset_ref, load_gaze, validate_gaze
from gpuflows.pipelines.rqa_sweep.tables import derive_features, sweep_statistics
from tasks.hardware import pick_device
from tasks.monitoring import gpu_monitor
from tasks.progress import RunProgress
from tasks.reports import publish_tiered_report, run_dir
from tasks.rqa import KEY_SEP, rqa_mt
from tasks.runners import TaskRunnerSpec, gpu_resources, with_task_runner

SUMMARY_KEY = "rqa-sweep-summary"
PROGRESS_KEY = "rqa-sweep-progress"
MONITOR_KEY = "rqa-sweep-monitor"
DEFAULT_MAX_COMBINATIONS = 10_200
"""Largest grid (m x tau x eps x l_min) run without raising ``max_combinations``: the full grid."""
TOP_N = 3

GAZE_SIZE = {"smoke": "smoke", "seed-test": "seed", "full": "seed"}
"""Size of the embedded synthetic dataset per preset (``gpuflows.pipelines.rqa_sweep.gaze.PRESETS``)."""

PosInt = Annotated[int, Field(ge=1)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class RqaSweepParams(BaseModel):
    """Parameters of ``rqa-sweep`` (the form in the Prefect UI). Unknown names are errors."""

    model_config = ConfigDict(extra="forbid")

    data_path: str | None = Field(
        None,
        description="Gaze file (Parquet or CSV, gpuflows.pipelines.rqa_sweep.schema); empty: synthetic.",
    )
    preset: Literal["smoke", "seed-test", "full"] = Field(
        "smoke", description="Grid (and synthetic data size) unless overridden below."
    )
    m: list[PosInt] | None = Field(None, min_length=1, description="Embedding dimensions.")
    tau: list[PosInt] | None = Field(None, min_length=1, description="Delays in samples.")
    eps: list[PosFloat] | None = Field(
        None, min_length=1, max_length=MAX_EPS, description="Radii > 0 (z-score units)."
    )
    l_min: list[PosInt] | None = Field(None, min_length=1, description="Minimum diagonal lines.")
    v_min: int = Field(2, ge=1, description="Minimum vertical line length (LAM, TT).")
    series: list[Literal["x", "y", "xy"]] = Field(
        default_factory=lambda: ["x", "y", "xy"],
        min_length=1,
        description="Series analysed: x, y, and the joint 2-D (x, y) embedding.",
    )
    metric: Literal["euclidean", "supremum", "manhattan"] = Field(
        "euclidean", description="Distance between embedded vectors."
    )
    theiler: int = Field(1, ge=0, description="Theiler window w (1 = exclude only the LOI).")
    normalize: bool = Field(True, description="Z-score each series (population std) first.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' (GPU if any, else CPU, recorded), 'cpu' or 'cuda'."
    )
    dtype: Literal["float64", "float32"] = Field(
        "float64",
        description=(
            "Distance dtype: float64 is exact (equal to the reference); float32 (torch backend) "
            "is faster on GPUs but flips recurrences within rounding of eps: counted and reported."
        ),
    )
    max_combinations: int = Field(
        DEFAULT_MAX_COMBINATIONS,
        ge=1,
        description="Guard: a larger m x tau x eps x l_min grid fails unless this is raised.",
    )
    seed: int = Field(0, ge=0, description="Seed of the synthetic generator and of the lock.")
    monitor_interval_s: float = Field(1.0, gt=0, description="GPU monitor sampling interval.")
    task_runner: TaskRunnerSpec = Field(
        default_factory=TaskRunnerSpec,
        description=(
            "Where the (m, tau) tasks run: 'thread' (this flow-run process, one after another) "
            "or 'dask' (a subflow whose tasks spread over a local cluster, one pinned worker "
            "per GPU, or over the cluster at address)."
        ),
    )

    @model_validator(mode="after")
    def _grid(self) -> RqaSweepParams:
        for name in ("m", "tau", "eps", "l_min"):
            values = getattr(self, name)
            values = PRESETS[self.preset][name] if values is None else values
            setattr(self, name, sorted(set(values)))
        if len(set(self.series)) != len(self.series):
            raise ValueError(f"series={self.series}: list each series once")
        n = self.n_combinations
        if n > self.max_combinations:
            raise ValueError(
                f"max_combinations: the grid has {n:,} combinations (m x tau x eps x l_min) > "
                f"max_combinations={self.max_combinations:,}; narrow the grid or raise "
                "max_combinations explicitly"
            )
        return self

    @property
    def n_combinations(self) -> int:
        return len(self.m) * len(self.tau) * len(self.eps) * len(self.l_min)

    @property
    def min_length(self) -> int:
        """Shortest series the grid allows: (m_max - 1) * tau_max + 2."""
        return (max(self.m) - 1) * max(self.tau) + 2


def _load(p: RqaSweepParams) -> tuple[pd.DataFrame, Any, bool]:
    if p.data_path:
        frame = load_gaze(p.data_path, min_length=p.min_length)
        ref = dataset_ref(frame, Path(p.data_path).name, file_digest(p.data_path)[:12], False)
        return frame, ref, False
    frame = validate_gaze(
        gaze.generate_preset(GAZE_SIZE[p.preset], seed=p.seed), min_length=p.min_length
    )
    ref = dataset_ref(
        frame,
        gaze.DATASET_NAME,
        gaze.DATASET_VERSION,
        True,
        f"gpuflows.pipelines.rqa_sweep.gaze preset {GAZE_SIZE[p.preset]!r}, seed {p.seed}",
    )
    return frame, ref, True


def _series_arrays(frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for sid, sub in frame.groupby("subject_id", sort=False):
        xy = sub[["x", "y"]].to_numpy(np.float64)
        arrays = {"x": xy[:, 0].copy(), "y": xy[:, 1].copy(), "xy": xy}
        for name in names:
            out[f"{sid}{KEY_SEP}{name}"] = np.ascontiguousarray(arrays[name])
    return out


def _summary_md(p, stats, top, n_subjects, device_used, backend, plots) -> str:
    kw = stats[(stats["test"] == "kruskal_wallis") & stats["effect"].notna()]
    lines = [
        f"Grid: m={p.m}, τ={p.tau}, ε={p.eps}, l_min={p.l_min}, v_min={p.v_min} "
        f"({p.n_combinations:,} combinations) × series {p.series}; metric {p.metric}, "
        f"Theiler {p.theiler}, z-score {p.normalize}.",
        f"Subjects: {n_subjects}. Device used: {device_used} (backend {backend}).",
        "",
        "## Best-separating combinations (Kruskal-Wallis ε², BH q across the whole sweep)",
        "",
        "| rank | measure | series | m | τ | ε | l_min | H | p | q | ε² |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    best10 = kw.sort_values(["effect", "p"], ascending=[False, True]).head(10)
    for i, (_, r) in enumerate(best10.iterrows(), 1):
        lines.append(
            f"| {i} | {r['metric']} | {r['series']} | {r['m']} | {r['tau']} | {r['eps']:g} | "
            f"{r['l_min']} | {r['statistic']:.3g} | {r['p']:.3g} | {r['q']:.3g} | "
            f"{r['effect']:.3f} |"
        )
    lines += ["", "## Mean ε² by parameter value (all measures and series)", ""]
    for par in ("m", "tau", "eps", "l_min"):
        mean = kw.groupby(par)["effect"].mean()
        if len(mean):
            vals = ", ".join(f"{k:g}: {v:.3f}" for k, v in mean.items())
            lines.append(f"- **{par}** (best {mean.idxmax():g}): {vals}")
    n_sig = int((kw["q"] < 0.05).sum())
    lines += [
        "",
        f"Kruskal-Wallis tests with q < 0.05: {n_sig} of {len(kw)}.",
        "",
        "Plots: " + ", ".join(f"`{x}`" for x in plots) if plots else "Plots: none (no test).",
    ]
    return "\n".join(lines)


def _rqa_args(p: RqaSweepParams, choice: DeviceChoice) -> tuple:
    """The arguments of ``rqa_mt`` after (series, m, tau) for this sweep."""
    return (list(p.eps), list(p.l_min), p.v_min, p.metric, p.theiler, p.normalize, choice, p.dtype)


def _progress(p: RqaSweepParams, key: str) -> tuple[RunProgress, dict[tuple[int, int], int]]:
    """The run's progress artifact in grid combinations, and the combinations each computed
    (m, tau) unit accounts for (m = 1 stands for every tau)."""
    per_unit: dict[tuple[int, int], int] = {}
    for m, _, tau_c in compute_units(p.m, p.tau):
        per_unit[(m, tau_c)] = per_unit.get((m, tau_c), 0) + len(p.eps) * len(p.l_min)
    prog = RunProgress(key, total=p.n_combinations, what="combinations", min_interval_s=0.0)
    return prog, per_unit


def _units_in_process(
    series: dict[str, np.ndarray], p: RqaSweepParams, choice: DeviceChoice
) -> dict[tuple[int, int], dict]:
    """Each distinct (m, tau) once, one after another in this process (the GPU, if any, is
    used by one unit at a time). m = 1 is computed at its first tau only (tau is irrelevant)."""
    progress, per_unit = _progress(p, PROGRESS_KEY)
    computed: dict[tuple[int, int], dict] = {}
    for m, tau in per_unit:
        computed[(m, tau)] = rqa_mt(series, m, tau, *_rqa_args(p, choice))
        progress.advance(per_unit[(m, tau)])
    return computed


def _units_as_pairs(rows: list[dict]) -> dict[tuple[int, int], dict]:
    return {(r["m"], r["tau"]): r["result"] for r in rows}


@flow(name="rqa-sweep-units", log_prints=True)
def rqa_sweep_units(
    params: RqaSweepParams, choice: DeviceChoice, progress_key: str = PROGRESS_KEY
) -> list[dict]:
    """Every distinct (m, tau) of the sweep as a task on this flow's task runner (a Dask cluster
    when ``rqa-sweep`` runs with ``task_runner.kind='dask'``); GPU units ask for a Dask GPU.

    Takes the parameters, not the arrays, and loads the data itself: flow parameters are stored
    by the API as JSON. Returns ``[{"m", "tau", "result"}]`` in the sweep's order.
    """
    p = params
    frame, _, _ = _load(p)
    series = _series_arrays(frame, list(p.series))
    progress, per_unit = _progress(p, progress_key)
    units = list(per_unit)
    gpus = None if choice.kind != "cuda" else (p.task_runner.gpus_per_task or 1.0)
    with gpu_resources(p.task_runner, gpus=gpus):
        futures = {
            rqa_mt.submit(series, m, tau, *_rqa_args(p, choice)): (m, tau) for m, tau in units
        }
    done: dict[tuple[int, int], dict] = {}
    for fut in as_completed(list(futures)):
        done[futures[fut]] = fut.result()
        progress.advance(per_unit[futures[fut]])
    return [{"m": m, "tau": tau, "result": done[(m, tau)]} for m, tau in units]


@flow(name="rqa-sweep", log_prints=True)
def rqa_sweep(params: RqaSweepParams = RqaSweepParams()) -> dict[str, Any]:  # noqa: B008
    """RQA parameter sweep: exact sweep-aware RQA, tidy table, group statistics, tiered summary."""
    log = get_run_logger()
    p = params
    frame, ref, synthetic = _load(p)  # bad data fails here, before any compute
    choice = pick_device(p.device)
    lock = build_lock(seed=p.seed, dataset=ref, device=choice, parameters=p.model_dump(mode="json"))
    series = _series_arrays(frame, list(p.series))
    groups = frame.drop_duplicates("subject_id").set_index("subject_id")["group"]
    out = run_dir("rqa-sweep")
    out.mkdir(parents=True, exist_ok=True)
    with gpu_monitor(
        interval_s=p.monitor_interval_s,
        key=MONITOR_KEY,
        title=f"rqa-sweep on {choice.device}",
    ):
        if p.task_runner.kind == "thread":
            computed = _units_in_process(series, p, choice)
        else:  # the units as tasks of a subflow on the chosen cluster
            log.info("rqa-sweep: (m, tau) units on %s", p.task_runner)
            computed = _units_as_pairs(
                with_task_runner(rqa_sweep_units, p.task_runner)(p, choice, PROGRESS_KEY)
            )
        results = [
            {**computed[(m, tau_c)], "columns": relabel_tau(computed[(m, tau_c)]["columns"], tau)}
            if tau != tau_c
            else computed[(m, tau)]
            for m, tau, tau_c in compute_units(p.m, p.tau)
        ]

    tidy = pd.concat([pd.DataFrame(r["columns"]) for r in results], ignore_index=True)
    tidy.insert(1, "group", tidy["subject_id"].map(groups))
    tidy = tidy.sort_values(
        ["subject_id", "series", "m", "tau", "eps", "l_min"], kind="stable"
    ).reset_index(drop=True)
    table = atomic_write_parquet(out / "rqa_sweep.parquet", tidy)
    features = derive_features(tidy)
    atomic_write_parquet(out / "features.parquet", features)
    stats = sweep_statistics(tidy, features)
    atomic_write_parquet(out / "stats.parquet", stats)
    plots, top = plot_sweep(tidy, features, stats, out, top_n=TOP_N)

    device_used = ",".join(sorted({r["device"] for r in results}))
    backend = ",".join(sorted({r["backend"] for r in results}))
    fallbacks = [f for r in results for f in r["fallbacks"]]
    expected = len(series) * p.n_combinations
    n_subjects = int(frame["subject_id"].nunique())
    evidence = Evidence(
        synthetic_data=synthetic,
        data_note=(
            "synthetic gaze from gpuflows.pipelines.rqa_sweep.gaze (model parameters invented)"
            if synthetic
            else f"gaze file {p.data_path}"
        ),
        lock=lock,
        sample_size=n_subjects,
        integrity=[
            CheckResult(
                name="sweep_complete",
                passed=len(tidy) == expected,
                numbers={"rows": len(tidy), "expected": expected},
                reason=f"{len(tidy)} of {expected} subject x series x combination rows",
            )
        ],
        measured_device="cuda" if "cuda" in device_used else "cpu",
        target_device="cuda",
    )
    assessment = assess(evidence)
    body = _summary_md(p, stats, top, n_subjects, device_used, backend, plots)
    if synthetic:
        body = (
            "Data: **synthetic** gaze (`gpuflows.pipelines.rqa_sweep.gaze`, invented group parameters): a test of "
            "the pipeline, not of the disease.\n\n" + body
        )
    flips = [r["flipped_pairs"] for r in computed.values() if r["flipped_pairs"] is not None]
    if p.dtype == "float32":
        body += (
            f"\n\nDistances in **float32**: {sum(flips):,} recurrence entries (pairs x eps) "
            "decided differently from float64 (within rounding of eps); rerun with "
            "dtype='float64' for the exact values."
        )
    if fallbacks:
        body += f"\n\nOOM fallbacks: {len(fallbacks)} failed attempt(s), see report.json."
    published = publish_tiered_report(
        key=SUMMARY_KEY,
        title="RQA parameter sweep",
        body_md=body,
        assessment=assessment,
        lock=lock,
        payload={
            "table": str(table),
            "plots": plots,
            "rows": len(tidy),
            "device_used": device_used,
            "backend": backend,
            "fallbacks": fallbacks,
            "task_seconds": [r["seconds"] for r in computed.values()],
            "dtype": p.dtype,
            "flipped_pairs": sum(flips) if flips else None,
        },
        out_dir=out,
    )
    log.info("rqa-sweep: %s, %d rows -> %s", assessment.tier.value, len(tidy), table)
    return {
        "tier": assessment.tier.value,
        "table": str(table),
        "features": str(out / "features.parquet"),
        "stats": str(out / "stats.parquet"),
        "plots": plots,
        "report": published,
        "results_dir": str(out),
        "rows": len(tidy),
        "device": device_used,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m flows.rqa_sweep", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--preset", default="smoke", choices=sorted(PRESETS))
    ap.add_argument("--data", default=None, help="gaze Parquet/CSV (default: synthetic)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--m", type=int, nargs="+")
    ap.add_argument("--tau", type=int, nargs="+")
    ap.add_argument("--eps", type=float, nargs="+")
    ap.add_argument("--l-min", type=int, nargs="+")
    ap.add_argument("--series", nargs="+", default=["x", "y", "xy"])
    ap.add_argument("--max-combinations", type=int, default=DEFAULT_MAX_COMBINATIONS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument(
        "--task-runner",
        choices=["thread", "dask"],
        default="thread",
        help="where the (m, tau) units run: this process, or a Dask cluster",
    )
    ap.add_argument("--dask-address", help="tcp://HOST:8786 of a running Dask scheduler")
    ap.add_argument("--dask-workers", type=int, help="workers of the local Dask cluster")
    a = ap.parse_args(argv)
    try:
        runner = TaskRunnerSpec(
            kind=a.task_runner, address=a.dask_address, n_workers=a.dask_workers
        )
        params = RqaSweepParams(
            data_path=a.data,
            preset=a.preset,
            device=a.device,
            m=a.m,
            tau=a.tau,
            eps=a.eps,
            l_min=a.l_min,
            series=a.series,
            max_combinations=a.max_combinations,
            seed=a.seed,
            dtype=a.dtype,
            task_runner=runner,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        out = rqa_sweep(params)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"\nrqa-sweep finished: {out['tier']} on {out['device']}, {out['rows']:,} rows")
    print(f"  table:     {out['table']}")
    print(f"  stats:     {out['stats']}")
    print(f"  plots:     {', '.join(out['plots'])}")
    print(f"  report:    {out['report']['markdown']}")
    print(f"  artifacts: {SUMMARY_KEY}, {PROGRESS_KEY}, {MONITOR_KEY}-summary")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
