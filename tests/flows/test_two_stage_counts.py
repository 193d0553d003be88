"""two-stage-eval's pair counts agree everywhere: terminal summary, log line, report, report.json.

They once disagreed ("6 scored, 3 failed, 4 rejected" in the summary line, "6 scored, 0 failed" in
the log): rejected pairs were also counted as failed in one and not in the other. Now one
``PairCounts`` is computed per run and every place prints it.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from flows.two_stage_eval import REPORT_KEY, main
from tasks.artifacts import read_artifacts

COUNTS = re.compile(r"(\d+) scored, (\d+) failed, (\d+) rejected \(of (\d+) pairs read\)")


def _plant_rejections(data: Path) -> None:
    from tests.fixtures.images import truncated_jpeg

    (data / "images" / "cut.jpg").write_bytes(truncated_jpeg())
    with open(data / "social.jsonl", "a") as fh:
        for rec in (
            {"pair_id": "broken", "category": "social", "image": "no.png", "instruction": "x"},
            {"pair_id": "cut", "category": "social", "image": "images/cut.jpg", "instruction": "x"},
        ):
            fh.write(json.dumps(rec) + "\n")
    nocat = {"pair_id": "nocat", "image": "images/social-000.png", "instruction": "x"}
    (data / "extra.jsonl").write_text(json.dumps(nocat) + "\n")


def test_summary_log_and_report_give_the_same_counts(
    prefect_harness, results, tmp_path, monkeypatch, capsys, caplog
):
    from gpuflows.models.vlm_reward import RewardModel
    from gpuflows.pipelines.two_stage_eval.synth import generate_benchmark

    inner = RewardModel.answer

    def half_garbled(self, images, *args, **kwargs):  # every other answer has no number
        answers = inner(self, images, *args, **kwargs)
        return [a if i % 2 else "No number here." for i, a in enumerate(answers)]

    monkeypatch.setattr(RewardModel, "answer", half_garbled)
    data = generate_benchmark(tmp_path / "data", "smoke", seed=0)
    _plant_rejections(data)
    caplog.set_level(logging.INFO)
    argv = ["--device", "cpu", "--steps", "1", "--batch-size", "2", "--data-path", str(data)]
    assert main(argv) == 0
    want = ("5", "5", "3", "13")  # 10 valid pairs: 5 scored, 5 failed; 3 rejected at load

    summary = [ln for ln in capsys.readouterr().out.splitlines() if "finished:" in ln]
    assert len(summary) == 1 and COUNTS.search(summary[0]).groups() == want, summary
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("two-stage")]
    assert any(COUNTS.search(m) and COUNTS.search(m).groups() == want for m in logged), logged
    md = read_artifacts(REPORT_KEY)[0].data
    assert COUNTS.search(md).groups() == want
    report_json = next((results / "two-stage-eval").glob("*/report.json"))
    report = json.loads(report_json.read_text())
    assert report["counts"] == {"read": 13, "scored": 5, "failed": 5, "rejected": 3}
    overall = report["summary"]["overall"]
    assert (overall["n_scored"], overall["n_failed"], overall["n_rejected"]) == (5, 5, 3)
    assert len(report["failed"]) == 5 and len(report["rejected"]) == 3
