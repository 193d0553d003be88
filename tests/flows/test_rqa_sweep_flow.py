"""rqa-sweep end to end on the CPU (smoke preset): tidy table vs the reference, artifacts,
cache hits on a re-run, and bad input failing before any compute.

What ran is counted from the Prefect API: each (m, tau) unit is a task run ``rqa-m{m}-tau{tau}``
in state ``Completed`` when it computed, ``Cached`` when a re-run found its result."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.rqa_sweep import PROGRESS_KEY, SUMMARY_KEY, RqaSweepParams, rqa_sweep
from gpuflows.core.faults import InputError
from gpuflows.pipelines.rqa_sweep import METRIC_NAMES, gaze
from gpuflows.pipelines.rqa_sweep.grid import n_computed
from gpuflows.pipelines.rqa_sweep.rqa import rqa_metrics
from tasks.artifacts import read_artifacts
from tests.fixtures.task_states import task_runs, task_runs_within, task_states

SMOKE = RqaSweepParams(preset="smoke", device="cpu", monitor_interval_s=0.2)
UNIT = "rqa-m"
"""Name prefix of the (m, tau) unit task runs (``task_run_name="rqa-m{m}-tau{tau}"``)."""


def _run(params: RqaSweepParams):
    """Run the flow: (its output, its flow run id); the flow's error is raised as it was."""
    state = rqa_sweep(params, return_state=True)
    return state.result(), state.state_details.flow_run_id


def _units(params: RqaSweepParams) -> int:
    """Distinct (m, tau) units the grid computes (m = 1 once, whatever tau)."""
    return n_computed(params.m, params.tau)


def _assert_sample_matches_reference(tidy, frame, n: int, random_state: int) -> None:
    """``n`` random rows of the tidy table equal the NumPy reference on the same series."""
    for _, row in tidy.sample(n, random_state=random_state).iterrows():
        sub = frame[frame["subject_id"] == row["subject_id"]]
        series = {"x": sub["x"], "y": sub["y"], "xy": sub[["x", "y"]]}[row["series"]]
        ref = rqa_metrics(
            series.to_numpy(np.float64),
            int(row["m"]),
            int(row["tau"]),
            row["eps"],
            int(row["l_min"]),
        )
        got = [row[k] for k in ("N", *METRIC_NAMES)]
        want = [ref[k] for k in ("N", *METRIC_NAMES)]
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


@pytest.fixture(scope="module")
def smoke_run(prefect_harness):
    out, run_id = _run(SMOKE)
    return out, task_states(run_id, UNIT, _units(SMOKE))


def test_smoke_runs_end_to_end_with_artifacts(smoke_run):
    out, states = smoke_run
    # m = 1 is computed once (its distances do not depend on tau), every other (m, tau) once
    assert states == Counter({"Completed": len(SMOKE.m) * len(SMOKE.tau) - (len(SMOKE.tau) - 1)})
    assert out["tier"] == "T1-Indicative" and out["device"] == "cpu"
    summary = read_artifacts(SUMMARY_KEY)[0].data
    assert "T1-Indicative" in summary and "synthetic" in summary
    assert "Best-separating combinations" in summary
    progress = read_artifacts(PROGRESS_KEY)[0]
    assert float(progress.data) == pytest.approx(100.0)
    assert "36/36 combinations" in progress.description
    assert len(out["plots"]) == 2


def test_tidy_table_has_one_row_per_cell_and_matches_reference(smoke_run):
    out, _ = smoke_run
    tidy = pd.read_parquet(out["table"])
    n_sub = 3 * gaze.PRESETS["smoke"].n_per_group
    assert len(tidy) == n_sub * 3 * SMOKE.n_combinations
    keys = ["subject_id", "series", "m", "tau", "eps", "l_min"]
    assert not tidy.duplicated(keys).any()
    assert set(tidy["group"]) == {"control", "mci", "ad"}
    frame = gaze.generate_preset("smoke", seed=0)
    _assert_sample_matches_reference(tidy, frame, n=6, random_state=1)
    m1 = tidy[tidy["m"] == 1]  # the reused m = 1 rows equal the reference at their own tau
    for tau in SMOKE.tau:
        row = m1[(m1["tau"] == tau) & (m1["series"] == "x")].iloc[0]
        sub = frame[frame["subject_id"] == row["subject_id"]]["x"].to_numpy(np.float64)
        ref = rqa_metrics(sub, 1, tau, row["eps"], int(row["l_min"]))
        assert row["DET"] == pytest.approx(ref["DET"], rel=1e-12, nan_ok=True)
    stats = pd.read_parquet(out["stats"])
    kw = stats[stats["test"] == "kruskal_wallis"]
    assert kw["q"].notna().any() and {"derived", "x", "y", "xy"} <= set(kw["series"])


def test_rerun_executes_no_compute_task(smoke_run):
    out, run_id = _run(SMOKE)
    states = task_states(run_id, UNIT, _units(SMOKE))
    assert states == Counter({"Cached": _units(SMOKE)}), f"a finished unit ran again: {states}"
    assert pd.read_parquet(out["table"]).equals(pd.read_parquet(smoke_run[0]["table"]))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"eps": [0.1, 0.0]}, "eps"),
        ({"eps": [-1.0]}, "eps"),
        ({"l_min": [0, 2]}, "l_min"),
        ({"m": [0]}, "m"),
        ({"preset": "full", "max_combinations": 100}, "max_combinations"),
        (
            {
                "m": list(range(1, 13)),
                "eps": [0.1] * 1 + [0.2],
                "tau": [1, 2, 3, 4, 5, 6],
                "l_min": list(range(2, 80)),
            },
            "max_combinations",
        ),
        ({"epsilon": [0.1]}, "epsilon"),
    ],
)
def test_bad_parameters_fail_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        RqaSweepParams(**kwargs)


def test_full_grid_needs_no_override_but_larger_does():
    assert RqaSweepParams(preset="full").n_combinations == 10_200
    big = {"preset": "full", "l_min": list(range(2, 13))}
    with pytest.raises(ValueError, match="max_combinations"):
        RqaSweepParams(**big)
    assert RqaSweepParams(**big, max_combinations=20_000).n_combinations == 11_220


def _write_csv(path, frame):
    frame.to_csv(path, index=False)
    return str(path)


def test_bad_data_fails_before_compute_naming_it(prefect_harness, tmp_path):
    frame = gaze.generate_preset("smoke", seed=0)
    bad_group = frame.copy()
    bad_group.loc[bad_group["subject_id"] == "mci-001", "group"] = "dementia"
    short = frame.groupby("subject_id").head(5)
    nan = frame.copy()
    nan.loc[10, "x"] = np.nan
    cases = [
        (bad_group, "dementia"),
        (short, "samples"),
        (nan, "control-000"),
    ]
    run_ids = []
    for i, (data, needle) in enumerate(cases):
        path = _write_csv(tmp_path / f"bad{i}.csv", data)
        state = rqa_sweep(
            RqaSweepParams(data_path=path, device="cpu", m=[1, 3], tau=[2]), return_state=True
        )
        with pytest.raises(InputError, match=needle):
            state.result()
        run_ids.append(state.state_details.flow_run_id)
    # not even the device was picked: the data is read and checked first
    assert task_runs_within(run_ids) == [], "a task ran on bad input"


def test_sigkilled_sweep_redoes_only_unfinished_tasks(prefect_harness, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from prefect.settings import PREFECT_API_URL, PREFECT_RESULTS_LOCAL_STORAGE_PATH

    root = Path(__file__).resolve().parents[2]
    counter = tmp_path / "count.txt"

    def calls() -> Counter[str]:
        """Series computed per unit "m,tau" (the fixture logs each before computing it)."""
        return Counter(counter.read_text().split() if counter.exists() else [])

    env = dict(
        os.environ,
        PREFECT_API_URL=PREFECT_API_URL.value(),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value()),
        PYTHONPATH=str(root),
    )
    # 9 series per (m, tau) task x 0.2 s each: ~1.8 s per task
    cmd = [sys.executable, str(root / "tests" / "fixtures" / "rqa_sweep_slow.py"), str(counter)]
    quiet = {"cwd": root, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen([*cmd, "0.2"], start_new_session=True, **quiet)
    try:
        deadline = time.monotonic() + 240
        while calls()["2,1"] < 1:  # unit (1, 1) has returned, its result persisted
            assert proc.poll() is None, "flow ended before it could be killed"
            assert time.monotonic() < deadline, "flow too slow to reach its second task"
            time.sleep(0.05)
        time.sleep(0.5)  # the second task is mid-work
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = calls()
    assert killed["1,1"] == 9 and 1 <= killed["2,1"] < 9 and killed["3,1"] == 0, killed
    subprocess.run([*cmd, "0.0"], check=True, timeout=300, **quiet)
    after = calls()
    assert after["1,1"] == 9, f"the finished unit (1, 1) was computed again: {after}"
    assert (after["2,1"], after["3,1"]) == (killed["2,1"] + 9, 9), f"each unfinished once: {after}"
    done = json.loads(Path(str(counter) + ".done").read_text())
    assert done["rows"] == 9 * 3
    states = task_states(done["flow_run_id"], UNIT, 3)
    assert states == Counter({"Cached": 1, "Completed": 2}), states


def test_float32_run_reports_flipped_pairs(prefect_harness):
    params = RqaSweepParams(
        preset="smoke",
        device="cpu",
        dtype="float32",
        m=[2],
        tau=[1],
        series=["x"],
        monitor_interval_s=0.2,
    )
    out = rqa_sweep(params)
    report = json.loads(Path(out["report"]["json"]).read_text())
    assert report["dtype"] == "float32" and isinstance(report["flipped_pairs"], int)
    assert report["backend"] == "torch-cpu"
    assert "float32" in read_artifacts(SUMMARY_KEY)[0].data


def test_dask_task_runner_spreads_units_over_a_local_cluster(prefect_harness, fast_worker_start):
    """task_runner.kind='dask': the (m, tau) units run as tasks of a subflow on a real local
    cluster of two worker processes; the table equals the reference, and a thread-runner re-run
    finds every unit already computed (the workers persisted them under the same cache keys)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    from tasks.runners import TaskRunnerSpec

    grid = {"preset": "smoke", "device": "cpu", "m": [2, 3], "tau": [1, 2], "seed": 7}
    spec = TaskRunnerSpec(kind="dask", n_workers=2)
    out, run_id = _run(RqaSweepParams(**grid, task_runner=spec, monitor_interval_s=0.2))
    n_units = _units(RqaSweepParams(**grid))
    assert task_states(run_id, UNIT, n_units) == Counter({"Completed": n_units})
    units = task_runs(run_id, UNIT)
    assert all(r["flow_run_id"] != str(run_id) for r in units), "units ran in the flow itself"
    with get_client(sync_client=True) as client:
        subflows = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["rqa-sweep-units"]))
        )
    assert any(r.state.is_completed() for r in subflows)
    assert {r["flow_run_id"] for r in units} <= {str(r.id) for r in subflows}
    n = RqaSweepParams(**grid).n_combinations
    assert f"{n}/{n} combinations" in read_artifacts(PROGRESS_KEY)[0].description
    tidy = pd.read_parquet(out["table"])
    _assert_sample_matches_reference(tidy, gaze.generate_preset("smoke", seed=7), 5, 3)

    again, again_id = _run(RqaSweepParams(**grid, monitor_interval_s=0.2))
    states = task_states(again_id, UNIT, n_units)
    assert states == Counter({"Cached": n_units}), (
        f"a unit the Dask workers ran ran again: {states}"
    )
    assert pd.read_parquet(again["table"]).equals(tidy)


def test_row_count_agrees_in_summary_log_and_report(smoke_run):
    """One row count per run (the tidy table's): the terminal summary, the log line, the report
    and report.json give the same number."""
    from flows.rqa_sweep import _head
    from tests.fixtures.flow_logs import flow_run_messages

    out, _ = smoke_run
    rows = out["rows"]
    assert rows == len(pd.read_parquet(out["table"])) > 0
    assert f", {rows:,} rows" in _head(out)[0]
    logged = [m for m in flow_run_messages(out["report"]["flow_run_id"]) if " rows -> " in m]
    assert logged and all(f", {rows} rows -> " in m for m in logged), logged
    report = json.loads(Path(out["report"]["json"]).read_text())
    assert report["rows"] == report["rows_expected"] == rows
    md = Path(out["report"]["markdown"]).read_text()
    assert f"Rows: {rows:,} of {rows:,} (subject x series x combination)." in md
