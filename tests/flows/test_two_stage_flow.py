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
import torch

from flows.two_stage_eval import (
    MONITOR_KEY,
    PROGRESS_KEY,
    REPORT_KEY,
    TwoStageEvalParams,
    two_stage_eval,
)
from gpuflows.core.faults import InputError
from gpuflows.core.memory.budget import GIB
from gpuflows.core.memory.weight_files import weights_nbytes
from gpuflows.core.store.ledger import Ledger
from gpuflows.pipelines.two_stage_eval import edited_intact
from tasks.artifacts import read_artifacts

ROOT = Path(__file__).resolve().parents[2]
FAST = {"device": "cpu", "steps": 1}


def _records(stage: str, root: Path | None = None) -> list[dict]:
    """Every record the stage appended to its ledger, in order: one per item computed (a result,
    its error, or an out-of-memory error to retry), so re-runs are counted by the checkpoint."""
    root = root or Path(os.environ["GPUFLOWS_RESULTS_DIR"])
    path = root / "two-stage-eval" / "checkpoint" / f"{stage}.jsonl"
    out = []
    for raw in path.read_bytes().split(b"\n")[:-1] if path.exists() else []:
        try:
            out.append(json.loads(raw))
        except ValueError:  # a line torn by a SIGKILL mid-write: the ledger skips it too
            continue
    return out


def _count(stage: str) -> int:
    return len(_records(stage))


def _total() -> int:
    return _count("edit") + _count("score")


def test_smoke_end_to_end_then_rerun_computes_nothing(prefect_harness, results):
    before = _total()
    out = two_stage_eval(TwoStageEvalParams(**FAST))
    assert _total() - before == 20  # 10 edits + 10 scores
    o = out["summary"]["overall"]
    assert out["tier"] == "T1-Indicative" and o["n_scored"] + o["n_failed"] == 10
    assert set(out["summary"]) >= {"physical", "environment", "social", "causal", "referential"}
    report = read_artifacts(REPORT_KEY)[0].data
    assert "T1-Indicative" in report and "per category (seed)" in report
    assert "no VRAM limit held (CPU)" in report and out["vram_grant"]["limit"] is None
    assert "| per category (seed) | 0 | 9 |" in report  # both fit here; one-model budget: 9
    assert out["batching"]["edit"]["size"] == 4 and "CPU" in out["batching"]["score"]["basis"]
    assert float(read_artifacts(PROGRESS_KEY)[0].data) == pytest.approx(100.0)
    assert "GPU monitor inactive" in read_artifacts(f"{MONITOR_KEY}-summary")[0].data
    assert "GPU monitor: inactive (" in report and out["gpu_monitor"]["samples"] == 0
    edited = list((results / "two-stage-eval" / "checkpoint" / "edited").glob("*.png"))
    assert len(edited) == 10
    before = _total()
    again = two_stage_eval(TwoStageEvalParams(**FAST))
    assert _total() == before, "a finished pair was redone"
    assert again["summary"] == out["summary"]


def test_a_deleted_or_damaged_edited_image_is_edited_again(prefect_harness, results):
    """The ledger says 'edited', the file says otherwise: the pair is edited again (and scored
    from the new file), never scored from a missing or damaged image."""
    out = two_stage_eval(TwoStageEvalParams(**FAST))
    edited = sorted((results / "two-stage-eval" / "checkpoint" / "edited").glob("*.png"))
    edited[0].unlink()
    edited[1].write_bytes(edited[1].read_bytes()[:100])  # cut short: the digest no longer holds
    e0, s0 = _count("edit"), _count("score")
    again = two_stage_eval(TwoStageEvalParams(**FAST))
    assert _count("edit") - e0 == 2 and _count("score") - s0 <= 2
    assert again["summary"]["overall"]["n_scored"] == out["summary"]["overall"]["n_scored"]
    ledger = Ledger(results / "two-stage-eval" / "checkpoint" / "edit.jsonl")
    assert all(edited_intact(r) for r in ledger.latest().values())
    e1 = _count("edit")
    two_stage_eval(TwoStageEvalParams(**FAST))
    assert _count("edit") == e1, "an intact checkpoint was edited again"


def test_a_pair_out_of_memory_alone_fails_alone_and_is_retried_next_run(
    prefect_harness, results, tmp_path, monkeypatch
):
    """A pair too big for the budget even alone (an oversized image, say) must not stop a long
    run at that pair forever: it is that pair's error (marked to retry), the others finish, and
    the next run tries only it again."""
    from gpuflows.core.evidence.digest import bytes_digest
    from gpuflows.models.diffusers_edit import EditModel
    from gpuflows.pipelines.two_stage_eval.synth import generate_benchmark

    data = generate_benchmark(tmp_path / "data", "smoke", seed=0)
    big = json.loads((data / "social.jsonl").read_text().splitlines()[0])
    inner = EditModel.edit

    big_index = int(bytes_digest(big["pair_id"].encode())[-8:], 16)  # the flow's per-pair seed

    def edit(self, images, prompts, *args, **kwargs):
        if big_index in kwargs["indices"]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")
        return inner(self, images, prompts, *args, **kwargs)

    monkeypatch.setattr(EditModel, "edit", edit)
    params = TwoStageEvalParams(**FAST, data_path=str(data))
    out = two_stage_eval(params)
    assert out["summary"]["overall"]["n_scored"] + len(out["failed"]) == 10
    assert "out of memory on this item alone" in out["failed"][big["pair_id"]]
    assert out["batching"]["edit"]["items_oom"] == 1
    report = read_artifacts(REPORT_KEY)[0].data
    assert "1 pair(s) out of memory alone, retried by the next run" in report
    monkeypatch.setattr(EditModel, "edit", inner)  # memory to spare now
    e0, s0 = _count("edit"), _count("score")
    again = two_stage_eval(params)
    assert (_count("edit") - e0, _count("score") - s0) == (1, 1)
    assert [_records(s)[-1]["pair_id"] for s in ("edit", "score")] == [big["pair_id"]] * 2
    assert big["pair_id"] not in again["failed"]


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


def test_run_capacity_is_the_gpus_limit_narrowed_by_the_asked_budget(prefect_harness):
    from gpuflows.core.hardware.devices import DeviceChoice
    from tasks.vram import ensure_limits, run_capacity_bytes

    gpu = DeviceChoice(
        device="cuda:89",
        kind="cuda",
        index=89,
        physical_index=89,
        name="test-80g",
        total_memory_bytes=80 * GIB,
        requested="cuda",
        fallback=False,
        reason="test",
    )
    ensure_limits({"vram-gpu89": 37})
    assert run_capacity_bytes(gpu, None, fallback_bytes=1) == 37 * GIB
    assert run_capacity_bytes(gpu, 10, fallback_bytes=1) == 10 * GIB
    assert run_capacity_bytes(gpu, 50, fallback_bytes=1) == 37 * GIB  # never above the limit
    cpu = DeviceChoice(
        device="cpu", kind="cpu", name="cpu", requested="cpu", fallback=False, reason="t"
    )
    assert run_capacity_bytes(cpu, None, fallback_bytes=123) == 123  # room for both models
    assert run_capacity_bytes(cpu, 0.5, fallback_bytes=123) == GIB // 2


def test_vram_hold_is_the_budget_when_batches_grow_else_the_resident_models():
    from gpuflows.core.memory.budget import VramEstimate
    from gpuflows.pipelines.two_stage_eval import vram_hold

    needs = {
        "edit": VramEstimate(nbytes=6 * GIB, basis="edit 6"),
        "reward": VramEstimate(nbytes=8 * GIB, basis="reward 8"),
    }
    sized = vram_hold(None, needs, 20 * GIB)
    assert sized.nbytes == 20 * GIB and "batches are sized to fill it" in sized.basis
    assert "resident at peak 14.00 GiB" in sized.basis
    assert vram_hold(4, needs, 20 * GIB).nbytes == 14 * GIB  # both fit: both resident
    one = vram_hold(4, needs, 10 * GIB)  # they take turns: the larger one at a time
    assert one.nbytes == 8 * GIB and one.basis == "resident models at peak: edit 6; reward 8"


def test_model_too_big_for_budget_fails_before_loading(prefect_harness, results):
    before = _total()
    with pytest.raises(InputError, match="needs .* GiB .* budget"):
        two_stage_eval(TwoStageEvalParams(**FAST, vram_budget_gib=1e-6))
    assert _total() == before


def test_bad_pairs_are_reported_and_skipped(prefect_harness, results, tmp_path):
    from gpuflows.pipelines.two_stage_eval.synth import generate_benchmark
    from tests.fixtures.images import truncated_jpeg

    data = generate_benchmark(tmp_path / "data", "smoke", seed=0)
    (data / "images" / "cut.jpg").write_bytes(truncated_jpeg())
    with open(data / "social.jsonl", "a") as fh:
        for rec in (
            {"pair_id": "broken", "category": "social", "image": "no.png", "instruction": "x"},
            {
                "pair_id": "empty",
                "category": "social",
                "image": "images/social-000.png",
                "instruction": "",
            },
            {"pair_id": "cut", "category": "social", "image": "images/cut.jpg", "instruction": "x"},
        ):
            fh.write(json.dumps(rec) + "\n")
    # social.jsonl implies its records' category; a file named for no category does not
    nocat = {"pair_id": "nocat", "image": "images/social-000.png", "instruction": "x"}
    (data / "extra.jsonl").write_text(json.dumps(nocat) + "\n")
    out = two_stage_eval(TwoStageEvalParams(**FAST, data_path=str(data)))
    assert out["rejected"] == 4 and out["summary"]["overall"]["n_scored"] == 10
    # rejected pairs count as rejected (never also failed), in their category when they named one
    social, overall = out["summary"]["social"], out["summary"]["overall"]
    assert (social["n_failed"], social["n_rejected"]) == (0, 3)  # "nocat" named no category
    assert (overall["n_failed"], overall["n_rejected"]) == (0, 4)
    assert out["counts"] == {"read": 14, "scored": 10, "failed": 0, "rejected": 4}
    report = json.loads(Path(out["report"]["json"]).read_text())
    assert {r["pair_id"]: r["field"] for r in report["rejected"]} == {
        "broken": "image",
        "empty": "instruction",
        "cut": "image",
        "nocat": "category",
    }
    md = read_artifacts(REPORT_KEY)[0].data
    assert "`cut` image: does not decode" in md and "truncated" in md


def test_unparseable_answers_are_errors_never_numbers(prefect_harness, results, monkeypatch):
    """Every other answer of the reward model says no number: those pairs fail with the reason,
    are counted as failed in their category, and get no score; the rest are scored."""
    from gpuflows.models.vlm_reward import RewardModel

    inner = RewardModel.answer

    def half_garbled(self, images, *args, **kwargs):
        answers = inner(self, images, *args, **kwargs)
        return [
            a if i % 2 else "The edit follows the instruction well." for i, a in enumerate(answers)
        ]

    monkeypatch.setattr(RewardModel, "answer", half_garbled)
    out = two_stage_eval(TwoStageEvalParams(**FAST, batch_size=2))
    o = out["summary"]["overall"]
    assert (o["n_scored"], o["n_failed"]) == (5, 5)
    assert sum(c["n_failed"] for k, c in out["summary"].items() if k != "overall") == 5
    assert len(out["failed"]) == 5 and all("score" in e for e in out["failed"].values())
    ledger = results / "two-stage-eval" / "checkpoint" / "score.jsonl"
    records = [json.loads(x) for x in ledger.read_text().splitlines()]
    garbled = [r for r in records if r["error"] is not None]
    assert len(garbled) == 5 and all(r["score"] is None for r in garbled)
    assert all(isinstance(r["score"], (int, float)) for r in records if r["error"] is None)


def test_description_change_rescores_without_reediting(prefect_harness, results, tmp_path):
    """The description is read by the reward prompt only: changing it re-scores that pair (the
    score key holds the rendered prompt) and re-edits nothing (the edit key does not)."""
    from gpuflows.pipelines.two_stage_eval.synth import generate_benchmark

    data = generate_benchmark(tmp_path / "data", "smoke", seed=0)
    params = TwoStageEvalParams(**FAST, batch_size=1, data_path=str(data))
    two_stage_eval(params)
    path = data / "causal.jsonl"
    lines = path.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["description"] = rec.get("description", "") + " Seen from the left."
    path.write_text("\n".join([json.dumps(rec), *lines[1:]]) + "\n")
    e0, s0 = _count("edit"), _count("score")
    two_stage_eval(params)
    assert (_count("edit") - e0, _count("score") - s0) == (0, 1)
    assert _records("score")[-1]["pair_id"] == rec["pair_id"]


@pytest.mark.slow
def test_sigkill_mid_edit_then_mid_score_then_rerun_loses_and_repeats_nothing(
    prefect_harness, tmp_path
):
    """SIGKILL the flow process group mid-stage twice: at the third edit, then (the re-run
    finishes the edits) at the third score; a third run completes. Each edit and each score is
    computed exactly once over the three runs (one ledger record each: a pair computed twice
    would have two). One sequence for both stages: a run of its own per stage started the
    flow's process (Prefect, torch, the tiny models) once more for the same proof."""
    from prefect.settings import PREFECT_API_URL, PREFECT_RESULTS_LOCAL_STORAGE_PATH

    counter = tmp_path / "count.txt"
    checkpoint_root = tmp_path / "results"
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
        return [
            f"{stage}:{r['pair_id']}"
            for stage in ("edit", "score")
            for r in _records(stage, checkpoint_root)
        ]

    def n_edits(done: list[str]) -> int:
        return sum(i.startswith("edit:") for i in done)

    def run_and_kill(stage: str, target: int) -> list[str]:
        """Run with ``stage`` slowed (0.4 s a call); SIGKILL once ``target`` items are done."""
        proc = subprocess.Popen([*cmd, stage, "0.4"], start_new_session=True, **quiet)
        try:
            deadline = time.monotonic() + 240
            while len(items()) < target:
                assert proc.poll() is None, f"flow ended before it could be killed ({stage})"
                assert time.monotonic() < deadline, f"flow too slow to reach item {target}"
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        done = items()
        assert sorted(done) == sorted(set(done)), f"an item ran twice: {done}"
        return done

    first = run_and_kill("edit", 3)  # mid-edit: no score yet
    assert 3 <= len(first) < 10 and n_edits(first) == len(first), first
    second = run_and_kill("score", 13)  # the re-run finishes the 10 edits, then 3 scores
    assert set(first) < set(second), "the re-run lost an edit of the killed run"
    assert n_edits(second) == 10 and 3 <= len(second) - 10 < 10, second
    subprocess.run([*cmd, "score", "0.0"], check=True, timeout=300, **quiet)
    done = items()
    assert sorted(done) == sorted(set(done)), f"an item ran twice: {done}"
    assert n_edits(done) == 10
    assert sum(i.startswith("score:") for i in done) == 10
    assert Path(str(counter) + ".done").read_text() == "10"
