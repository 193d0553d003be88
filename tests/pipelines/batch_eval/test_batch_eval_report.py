"""Decisions are computed from the checks; the archive's manifest verifies its files."""

from __future__ import annotations

import json
import zipfile

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.digest import file_digest
from gpuflows.pipelines.batch_eval import report


def _c(name, ok, **numbers):
    return CheckResult(
        name=name, passed=ok, numbers=numbers, reason=f"{name} {'ok' if ok else 'bad'}"
    )


def test_decisions_follow_the_checks():
    good_i = [_c("modality_ablation", True), _c("expansion_target", True)]
    good_s = [_c("slo_p95_latency", True), _c("slo_error_rate", True, errors=0)]
    d = report.decide(good_i, good_s, {})
    assert (d.integrity, d.baseline) == (report.READY, report.ESTABLISHED)
    assert any("dual review" in a for a in d.next_actions)
    d = report.decide([_c("modality_ablation", False), good_i[1]], good_s, {})
    assert d.integrity == report.FIXES and d.integrity_reasons == ["modality_ablation bad"]
    d = report.decide(good_i, [good_s[0], _c("slo_error_rate", False, errors=0)], {})
    assert d.baseline == report.VIOLATION
    assert any(a.startswith("measure more requests") for a in d.next_actions)
    d = report.decide(good_i, [_c("slo_p95_latency", False)], {})
    assert d.baseline == report.VIOLATION and "bring slo_p95_latency" in d.next_actions[1]


def test_archive_manifest_digests(tmp_path):
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("x")
    arc = report.write_archive(tmp_path)
    assert arc["digest"] == file_digest(arc["path"])
    with zipfile.ZipFile(arc["path"]) as z:
        m = json.loads(z.read("MANIFEST.json"))
        assert m == {
            "a.json": file_digest(tmp_path / "a.json"),
            "sub/b.txt": file_digest(tmp_path / "sub" / "b.txt"),
        }
        assert z.read("sub/b.txt") == b"x"


def test_plots_are_written(tmp_path):
    p = report.plot_latency([10.0, 12.0, 30.0], 1, 300.0, tmp_path / "l.png")
    drops = [
        {
            "ablation": "visual-zero",
            "mean_drop": 0.05,
            "ci_low": 0.02,
            "ci_high": 0.08,
            "passed": True,
        }
    ]
    q = report.plot_ablation(drops, 0.01, tmp_path / "a.png")
    r = report.plot_hard_easy([0.5, 0.9, 0.95], [True, False, False], 0.85, tmp_path / "h.png")
    for f in (p, q, r):
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
