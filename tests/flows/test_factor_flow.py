"""factor-pipeline end to end in the Prefect harness: the three sub-flows, the CLI's QA step
against the fault responder, artifacts, exactly-once on a re-run, bad input before model time."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flows.factor_pipeline import factor_pipeline, main
from gpuflows.core.faults import InputError
from gpuflows.models.llm.faults_server import fault_app, running
from gpuflows.pipelines.factor_pipeline import FactorParams, check_exactly_once, preset_params
from tasks.artifacts import read_artifacts
from tasks.factor import PROGRESS_KEY, SUMMARY_KEY

TINY = {
    "n_images": 6,
    "n_shards": 2,
    "qa_model": "tiny-qwen2",
    "qa_max_new_tokens": 6,
    "vlm_max_new_tokens": 3,
    "failure_batch_size": 3,
}


@pytest.fixture(scope="module")
def run(prefect_harness, tmp_path_factory):
    out = tmp_path_factory.mktemp("factor")
    p = preset_params("smoke", out_dir=str(out), **TINY)
    return p, factor_pipeline(p), factor_pipeline(p)


def _lines(p):
    return [json.loads(x) for x in Path(p).read_text().splitlines()]


def test_all_three_steps_and_tier(run):
    p, first, _ = run
    s = first["steps"]
    assert s["probe"]["images_in"] == s["probe"]["records"] == 6
    assert s["sample"]["records_in"] == 6 and s["sample"]["written"] == s["probe"]["failures"]
    ids = {r["id"] for r in _lines(s["sample"]["output"])}
    check = check_exactly_once(s["qa"]["out_dir"], ids)
    assert check["missing"] == [] and check["duplicated"] == [] and check["outcomes"] == len(ids)
    assert first["tier"] == "T1-Indicative"  # computed: generated data, random-weight models
    report = json.loads(Path(first["report"]["json"]).read_text())
    failed = {c["name"]: c["reason"] for c in report["assessment"]["checks"] if not c["passed"]}
    assert "real_data" in failed and "real_model" in failed
    passed = {c["name"] for c in report["assessment"]["checks"] if c["passed"]}
    assert "integrity" in passed  # every image recorded, every id exactly once
    md = Path(first["report"]["markdown"]).read_text()
    assert "| 1 probe | 6 |" in md and "errors.jsonl" in md
    assert read_artifacts(SUMMARY_KEY) and read_artifacts(PROGRESS_KEY)


def test_rerun_sends_nothing_and_skips_finished_shards(run):
    _, first, second = run
    assert second["steps"]["qa"]["sent_now"] == 0
    assert second["steps"]["qa"]["skipped_with_outcome"] == first["steps"]["sample"]["written"]
    assert second["steps"]["probe"]["images_now"] == 0
    assert second["steps"]["qa"]["qa"] + second["steps"]["qa"]["errors"] == len(
        _lines(first["steps"]["sample"]["output"])
    )


def test_cli_qa_step_against_an_endpoint(prefect_harness, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(
            json.dumps({"id": f"k{i}", "prompt": f"{i} [[500x1]] Q: what is it? A: a dog."}) + "\n"
            for i in range(5)
        )
    )
    app = fault_app(0.01)
    with running(app) as url:
        rc = main(
            [
                "--step",
                "qa",
                "--input-path",
                str(src),
                "--endpoint-url",
                url,
                "--served-model",
                "m",
                "--out-dir",
                str(tmp_path / "D"),
                "--concurrency",
                "2",
            ]
        )
    assert rc == 0, capsys.readouterr().err
    qa = _lines(tmp_path / "D" / "qa.jsonl")
    assert sorted(r["id"] for r in qa) == [f"k{i}" for i in range(5)]
    assert all(r["attempts"] == 2 for r in qa) and app.state.stats["in_flight_max"] <= 2
    assert (tmp_path / "D" / "errors.jsonl").read_text() == ""


def test_cli_bad_input_exit_2_before_model_time(prefect_harness, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a"}\n{"id": "a"}\n')
    rc = main(
        [
            "--step",
            "qa",
            "--input-path",
            str(src),
            "--endpoint-url",
            "http://127.0.0.1:9/v1",
            "--served-model",
            "m",
            "--out-dir",
            str(tmp_path / "D"),
        ]
    )
    assert rc == 2 and "line 2: duplicate id 'a'" in capsys.readouterr().err
    rc = main(["--step", "qa", "--out-dir", str(tmp_path / "D")])
    assert rc == 2 and "--input-path" in capsys.readouterr().err
    with pytest.raises(InputError, match="missing column"):
        bad = tmp_path / "shards"
        bad.mkdir()
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"id": ["x"]}), bad / "a.parquet")
        factor_pipeline(
            FactorParams(step="probe", input_path=str(bad), out_dir=str(tmp_path / "o"))
        )


@pytest.mark.slow
def test_probe_groups_on_two_dask_process_workers(prefect_harness, fast_worker_start, tmp_path):
    """nproc_per_node=2: the shard groups run as tasks on two worker processes (the CPU stand-in
    for one worker per GPU; on a GPU host the 4-gpu/8-gpu presets pin one GPU each)."""
    p = FactorParams(
        step="probe",
        out_dir=str(tmp_path),
        nproc_per_node=2,
        n_images=4,
        n_shards=2,
        failure_batch_size=2,
        vlm_max_new_tokens=2,
        task_runner={"kind": "dask", "n_workers": 2},
    )
    out = factor_pipeline(p)
    probe = out["steps"]["probe"]
    assert probe["groups"] == 2 and probe["records"] == 4
    pids = probe["worker_pids"]
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, not this one
    manifest = json.loads(Path(probe["manifest"]).read_text())
    assert [s["rows"] for s in manifest["shards"]] == [2, 2]


def test_step_counts_agree_in_summary_log_and_report(run):
    """One record per step (what the step returned): the terminal summary, the qa step's log
    line, the report's step table and report.json give the same counts."""
    from flows.factor_pipeline import _head
    from tests.fixtures.flow_logs import flow_run_messages

    _, first, _ = run
    s = first["steps"]
    p, q = s["probe"], s["qa"]
    head = _head(first)
    assert f"  qa: records {q['records']}, qa {q['qa']}, errors {q['errors']}" in "\n".join(head)
    assert any(
        ln.startswith(f"  probe: records {p['records']}, failures {p['failures']}") for ln in head
    )
    logs = flow_run_messages(first["report"]["flow_run_id"], subflows=True)
    qa_lines = [m for m in logs if m.startswith("factor qa: ")]
    assert qa_lines and all(
        m.startswith(f"factor qa: {q['qa']} qa, {q['errors']} errors") for m in qa_lines
    ), qa_lines
    md = Path(first["report"]["markdown"]).read_text()
    assert f"| 3 qa | {q['records']} | {q['qa']} | {q['errors']} |" in md
    assert f"| 1 probe | {p['images_in']} | {p['records']} ({p['failures']} failures) |" in md
    saved = json.loads(Path(first["report"]["json"]).read_text())["steps"]
    assert {k: saved["qa"][k] for k in ("records", "qa", "errors")} == {
        k: q[k] for k in ("records", "qa", "errors")
    }
