"""two-stage-eval end to end on CPU with the tiny synthetic models: report, swaps, checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.two_stage_eval import PROGRESS_KEY, REPORT_KEY, TwoStageEvalParams, two_stage_eval
from gpuflows.budget import GIB
from gpuflows.faults import InputError
from gpuflows.residency import weights_nbytes
from tasks import two_stage
from tasks.artifacts import read_artifacts

ROOT = Path(__file__).resolve().parent.parent
FAST = {"device": "cpu", "steps": 1}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUFLOWS_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path / "results"


def _count(stage: str) -> int:
    return sum(s == stage for s, _ in two_stage.EXECUTED)


def test_smoke_end_to_end_then_rerun_computes_nothing(prefect_harness, results):
    before = len(two_stage.EXECUTED)
    out = two_stage_eval(TwoStageEvalParams(**FAST))
    assert len(two_stage.EXECUTED) - before == 20  # 10 edits + 10 scores
    o = out["summary"]["overall"]
    assert out["tier"] == "T1-Indicative" and o["n_scored"] + o["n_failed"] == 10
    assert set(out["summary"]) >= {"physical", "environment", "social", "causal", "referential"}
    report = read_artifacts(REPORT_KEY)[0].data
    assert "T1-Indicative" in report and "per category (seed)" in report
    assert float(read_artifacts(PROGRESS_KEY)[0].data) == pytest.approx(100.0)
    edited = list((results / "two-stage-eval" / "checkpoint" / "edited").glob("*.png"))
    assert len(edited) == 10
    before = len(two_stage.EXECUTED)
    again = two_stage_eval(TwoStageEvalParams(**FAST))
    assert len(two_stage.EXECUTED) == before, "a finished pair was redone"
    assert again["summary"] == out["summary"]


def test_budget_for_one_model_gives_one_swap(prefect_harness, results):
    two_stage_eval(TwoStageEvalParams(**FAST))  # builds the models; fills the checkpoint
    models = results / "models"
    needs = [weights_nbytes(d)[1] * 1.3 for d in sorted(models.iterdir())]
    budget = max(needs) * 1.01 / GIB  # room for the larger model, not both
    assert sum(needs) / GIB > budget
    out = two_stage_eval(TwoStageEvalParams(**FAST, seed=1, vram_budget_gib=budget))
    assert out["swaps"] == 1
    assert out["swaps_planned"] == {"naive": 20, "per_category": 9, "ours": 1}


def test_reedited_images_are_rescored_unchanged_ones_are_not(prefect_harness, results):
    two_stage_eval(TwoStageEvalParams(**FAST))
    ckpt = results / "two-stage-eval" / "checkpoint"
    (ckpt / "edit.jsonl").unlink()  # edits redone: the same bytes, so no score is redone
    e0, s0 = _count("edit"), _count("score")
    two_stage_eval(TwoStageEvalParams(**FAST))
    assert _count("edit") - e0 == 10 and _count("score") == s0
    e0, s0 = _count("edit"), _count("score")
    two_stage_eval(TwoStageEvalParams(device="cpu", steps=2))  # other edits: re-scored
    assert _count("edit") - e0 == 10 and _count("score") - s0 == 10


def test_model_too_big_for_budget_fails_before_loading(prefect_harness, results):
    before = len(two_stage.EXECUTED)
    with pytest.raises(InputError, match="needs .* GiB .* budget"):
        two_stage_eval(TwoStageEvalParams(**FAST, vram_budget_gib=1e-6))
    assert len(two_stage.EXECUTED) == before


def test_bad_pairs_are_reported_and_skipped(prefect_harness, results, tmp_path):
    from gpuflows.edit_bench_synth import generate_benchmark

    data = generate_benchmark(tmp_path / "data", "smoke", seed=0)
    with open(data / "social.jsonl", "a") as fh:
        fh.write(json.dumps({"pair_id": "broken", "category": "social", "image": "no.png",
                             "instruction": "x"}) + "\n")  # fmt: skip
        fh.write(json.dumps({"pair_id": "empty", "category": "social",
                             "image": "images/social-000.png", "instruction": ""}) + "\n")  # fmt: skip
    out = two_stage_eval(TwoStageEvalParams(**FAST, data_path=str(data)))
    assert out["rejected"] == 2 and out["summary"]["overall"]["n_scored"] > 0
    report = json.loads(Path(out["report"]["json"]).read_text())
    assert {r["pair_id"]: r["field"] for r in report["rejected"]} == {
        "broken": "image", "empty": "instruction",
    }  # fmt: skip


@pytest.mark.slow
def test_sigkill_mid_stage_then_rerun_loses_and_repeats_nothing(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL, PREFECT_RESULTS_LOCAL_STORAGE_PATH

    counter = tmp_path / "count.txt"
    env = dict(
        os.environ,
        PREFECT_API_URL=PREFECT_API_URL.value(),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value()),
        PYTHONPATH=str(ROOT),
        GPUFLOWS_RESULTS_DIR=str(tmp_path / "results"),
    )
    cmd = [sys.executable, str(ROOT / "tests" / "fixtures" / "two_stage_slow.py"), str(counter)]
    quiet = {"cwd": ROOT, "env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}

    def items() -> list[str]:
        return counter.read_text().split() if counter.exists() else []

    proc = subprocess.Popen([*cmd, "0.4"], start_new_session=True, **quiet)
    try:
        deadline = time.monotonic() + 240
        while len(items()) < 3:
            assert proc.poll() is None, "flow ended before it could be killed"
            assert time.monotonic() < deadline, "flow too slow to reach its third edit"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    first = items()
    assert 3 <= len(first) < 10 and all(i.startswith("edit:") for i in first)
    subprocess.run([*cmd, "0.0"], check=True, timeout=300, **quiet)
    done = items()
    assert sorted(done) == sorted(set(done)), f"an item ran twice: {done}"
    assert sum(i.startswith("edit:") for i in done) == 10
    assert sum(i.startswith("score:") for i in done) == 10
    assert Path(str(counter) + ".done").read_text() == "10"
