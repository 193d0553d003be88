"""argo-experiment end to end on CPU with the tiny random-weight Qwen2 (synthetic, T1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.argo_experiment import REPORT_KEY, argo_experiment, main
from gpuflows.core.faults import InputError
from gpuflows.pipelines.argo_experiment import ArgoParams
from tasks.artifacts import read_artifacts

TINY = {
    "model": "tiny-qwen2",
    "device": "cpu",
    "n_questions": 1,
    "c_r": [0.02, 0.05],  # either side of the calibrated step: two ARGO groups
    "max_steps": 2,
    "max_new_tokens": {"decomposer": 4, "retrieval_answer": 4, "reasoner": 4, "synthesizer": 6},
    "chunk_words": 16,
}


@pytest.fixture(scope="module")
def runs(prefect_harness):
    p = ArgoParams(**TINY)
    return argo_experiment(p), argo_experiment(p)


def test_report_rows_graphs_and_tier(runs):
    first, _ = runs
    assert first["tier"] == "T1-Indicative"
    report = json.loads(Path(first["report"]["json"]).read_text())
    reasons = " ".join(c["reason"] for c in report["assessment"]["checks"] if not c["passed"])
    assert "synthetic" in reasons.lower()
    rows = [json.loads(x) for x in Path(first["rows"]).read_text().splitlines()]
    assert len(rows) == 3 * 4 * 2  # questions x strategies x c_r points (1 seed)
    drawn = report["plots"]["drawn"]
    for graph in ("1a", "1b"):
        for diff in ("easy", "medium", "hard"):
            assert sorted(drawn[graph][diff]) == sorted(
                ["ARGO", "Always-Retrieve", "Always-Reason", "Random"]
            )
    assert not report["plots"]["missing"]
    conts = sorted(r["theta_cont"] for r in report["thresholds"])
    assert conts[0] == 0.0 and conts[1] == pytest.approx(0.9469, abs=1e-3)
    t = first["totals"]
    assert t["model_calls"] > 0 and t["seed_way_calls"] > t["model_calls"]
    md = read_artifacts(REPORT_KEY)[0].data
    assert "T1-Indicative" in md and "data:image/png" in md
    model = report["model"]  # which model answered, from the backend the units used
    assert model["source"] == "tiny-qwen2" and model["synthetic"] is True
    assert model["device"] == "cpu" and "counts" not in model


def test_rerun_is_served_by_the_task_cache_with_zero_model_calls(runs):
    first, second = runs
    t = second["totals"]
    assert t["units_from_task_cache"] == t["units"] == first["totals"]["units"]
    assert t["model_calls"] == 0 and t["requests"] == 0
    rows1 = Path(first["rows"]).read_text()
    assert Path(second["rows"]).read_text() == rows1  # the same rows, nothing recomputed


def test_bad_question_file_fails_before_any_model(prefect_harness, tmp_path):
    bad = tmp_path / "fin_H.json"
    bad.write_text('["q", ["1. a", "2. b", "3. c", "4. d"], "1"]\n{oops\n')
    p = ArgoParams(**TINY | {"questions": str(bad), "corpus": str(tmp_path)})
    with pytest.raises(InputError, match="fin_H.json:2: not JSON"):
        argo_experiment(p)


def test_cli_rejects_bad_values_with_exit_2(capsys):
    assert main(["--n-questions", "0"]) == 2
    assert "--n-questions" in capsys.readouterr().err


def test_counts_agree_in_summary_log_and_report(runs):
    """One totals dict per run: the terminal summary, the log line and the report give it."""
    import ast

    from flows.argo_experiment import _head
    from tests.fixtures.flow_logs import flow_run_messages

    first, _ = runs
    t = first["totals"]
    head = "\n".join(_head(first))
    assert (
        f"calls: {t['model_calls']} run by the model, {t['cache_hits']} cached, "
        f"{t['shared_in_batch']} shared; the seeds' way: {t['seed_way_calls']}" in head
    )
    (line,) = [
        m
        for m in flow_run_messages(first["report"]["flow_run_id"])
        if m.startswith("argo-experiment: ")
    ]
    assert ast.literal_eval(line.split(", ", 1)[1]) == t
    assert json.loads(Path(first["report"]["json"]).read_text())["totals"] == t
    md = Path(first["report"]["markdown"]).read_text()
    assert f"{t['cache_hits']} answered by the call cache, **{t['model_calls']}**" in md
    assert f"**{t['seed_way_calls']}**" in md
