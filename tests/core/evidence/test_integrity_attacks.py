"""Issue 11, attacks 1 (two-stage data) and 5 (integrity checks that cannot fail)."""

from __future__ import annotations

import shutil

from gpuflows.core.evidence import provenance
from gpuflows.core.evidence.provenance import generated_by
from gpuflows.pipelines.two_stage_eval.bench import MANIFEST, load_benchmark
from gpuflows.pipelines.two_stage_eval.evidence import (
    failure_share_within_bound,
    rejection_share_within_bound,
)
from gpuflows.pipelines.two_stage_eval.synth import generate_benchmark, is_synthetic


def test_synthetic_bench_without_manifest_elsewhere_is_still_synthetic(tmp_path):
    src = generate_benchmark(tmp_path / "gen", "smoke", seed=4)
    copy = tmp_path / "customer-benchmark"
    shutil.copytree(src, copy)
    (copy / MANIFEST).unlink()
    provenance._REGISTERED.clear()  # a later process: only the on-disk register is left
    assert is_synthetic(copy)
    # and the loaded benchmark's digest (what the lock records) is known generated data
    assert generated_by(load_benchmark(copy).digest()) == (
        "gpuflows.pipelines.two_stage_eval.synth.generate_benchmark"
    )


def test_reformatted_benchmark_files_still_load_as_generated_data(tmp_path):
    import json

    src = generate_benchmark(tmp_path / "gen", "smoke", seed=5)
    (src / MANIFEST).unlink()
    for f in src.glob("*.jsonl"):  # same records, other bytes: the file digests change
        recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        f.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in recs))
    provenance._REGISTERED.clear()
    assert not is_synthetic(src)  # the file fingerprints no longer match ...
    assert generated_by(load_benchmark(src).digest())  # ... the content digest still does


def test_failure_share_over_the_bound_fails():
    bad = failure_share_within_bound(270, 30, 0.05)
    assert not bad.passed and "240 of 270" in bad.reason and "> bound" in bad.reason
    assert failure_share_within_bound(270, 270, 0.05).passed
    assert failure_share_within_bound(100, 95, 0.05).passed
    assert not failure_share_within_bound(100, 94, 0.05).passed
    assert not failure_share_within_bound(0, 0, 0.05).passed


def test_rejection_share_over_the_bound_fails():
    bad = rejection_share_within_bound(30, 240, 0.05)
    assert not bad.passed and "240 of 270" in bad.reason
    assert rejection_share_within_bound(270, 0, 0.05).passed
    assert not rejection_share_within_bound(0, 0, 0.05).passed
