"""``batch-eval`` end to end in Prefect's test harness on tiny inputs, the SLO events, bad input."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from gpuflows.core.evidence.digest import file_digest
from gpuflows.pipelines.batch_eval import BatchEvalParams
from gpuflows.pipelines.batch_eval.report import ESTABLISHED, FIXES, READY, VIOLATION

TINY = dict(
    n_train=24,
    n_test=16,
    n_candidates=12,
    target_size=24,
    n_requests=8,
    head_epochs=40,
    n_bootstrap=200,
    n_permutations=200,
    server_rate_qps=8.0,
    warmup=1,
    device="cpu",
)


@pytest.fixture(scope="module")
def run(prefect_harness):
    from flows.batch_eval import batch_eval

    return batch_eval(BatchEvalParams(**TINY))


def test_flow_publishes_tiered_sections_and_a_verifiable_archive(run):
    assert run["tier"] == "T1-Indicative"  # computed: synthetic data and head
    assert set(run["sections"]) == {"expanded set", "modality ablation", "SLO baseline"}
    assert run["decisions"]["integrity"] in (READY, FIXES)
    # 8 requests cannot bound p95 nor show an error rate < 0.8 %: a computed violation
    assert run["decisions"]["baseline"] == VIOLATION != ESTABLISHED
    assert "gpuflows.slo.breached" in run["events"]
    rec = json.loads(Path(run["report"]["json"]).read_text())
    reasons = json.dumps(rec["assessment"])
    assert "synthetic" in reasons and "real_data" in reasons
    assert rec["expansion"]["achieved_size"] == 24
    assert abs(rec["ablation"]["library_ndcg10"] - rec["ablation"]["baseline_ndcg10"]) < 1e-9
    md = Path(run["report"]["markdown"]).read_text()
    assert "Trust Tier: T1-Indicative" in md and "outputs.zip" in md
    with zipfile.ZipFile(run["archive"]["path"]) as z:
        manifest = json.loads(z.read("MANIFEST.json"))
        assert "ablation.json" in manifest and "expanded/queries.jsonl" in manifest
    out = Path(run["results_dir"])
    assert manifest["ablation.json"] == file_digest(out / "ablation.json")
    for name in ("latency.png", "ablation.png", "ndcg_hard_easy.png", "run.txt", "qrels.txt"):
        assert (out / name).stat().st_size > 0


def test_regression_and_breach_emit_events(prefect_harness, tmp_path):
    from tasks.batch_eval import SERVICE, compare_and_store

    fast = {"server": {"latencies_ms": [1.0 + 0.01 * i for i in range(50)]}, "checks": []}
    (tmp_path / f"{SERVICE}--cpu.json").write_text(json.dumps(fast))
    slow = {
        "server": {"latencies_ms": [5.0 + 0.01 * i for i in range(50)]},
        "checks": [{"name": "slo_p95_latency", "passed": False, "numbers": {}, "reason": "x"}],
    }
    out = compare_and_store.fn(slow, "cpu", False, str(tmp_path))
    assert out["events"] == ["gpuflows.slo.breached", "gpuflows.slo.regressed"]
    assert out["regression"]["regressed"] and not out["promoted"]
    assert json.loads((tmp_path / f"{SERVICE}--cpu.json").read_text()) == fast  # not promoted
    same = {"server": fast["server"], "checks": []}
    assert compare_and_store.fn(same, "cpu", True, str(tmp_path))["events"] == []


def test_bad_dataset_exits_2_before_any_model(prefect_harness, tmp_path, capsys):
    from flows.batch_eval import main
    from gpuflows.pipelines.batch_eval.generate import generate
    from gpuflows.pipelines.batch_eval.schema import write_dataset

    write_dataset(generate(n_train=4, n_test=4, n_candidates=12), tmp_path)
    rows = (tmp_path / "judgments.jsonl").read_text().splitlines()
    rows[5] = rows[5].replace('"relevance": ', '"relevance": 9')
    (tmp_path / "judgments.jsonl").write_text("\n".join(rows) + "\n")
    assert main(["--data-path", str(tmp_path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "judgments.jsonl, row 5, field 'relevance'" in err


def test_safety_gate_stops_on_wall_time():
    from tasks.batch_eval import SafetyGate

    SafetyGate(3600, 12, "cpu").check("train")  # within limits: nothing happens
    with pytest.raises(TimeoutError, match="safety gate at expansion"):
        SafetyGate(-1, 12, "cpu").check("expansion")
