"""Step 1 with the tiny random-weight VLM (synthetic): per-shard JSONL + done files + manifest,
resume skips finished shards, judging rules, groups."""

from __future__ import annotations

import json

from gpuflows.pipelines.factor_pipeline.generate import generate_shards
from gpuflows.pipelines.factor_pipeline.probing import (
    judge,
    load_vlm,
    probe_group,
    shard_groups,
    write_manifest,
)
from gpuflows.pipelines.factor_pipeline.sampling import input_files, sample_failures
from gpuflows.pipelines.factor_pipeline.schema import list_shards, validate_shards


def test_judge_names_what_failed():
    rec = {"label": "red circle", "meta": {"color": "red", "shape": "circle"}}
    assert judge(rec, "a red circle", "yes") == (False, "")
    assert judge(rec, "blue circle", "yes") == (True, "color")
    assert judge(rec, "red", "no") == (True, "shape+verify")


def test_groups_round_robin(tmp_path):
    infos = validate_shards(generate_shards(tmp_path, n_images=10, n_shards=5))
    groups = shard_groups(infos, 2)
    assert [[i.path.name for i in g] for g in groups] == [
        ["shard-00000.parquet", "shard-00002.parquet", "shard-00004.parquet"],
        ["shard-00001.parquet", "shard-00003.parquet"],
    ]
    assert len(shard_groups(infos, 8)) == 5


def test_probe_group_writes_shards_manifest_and_resumes(tmp_path, results):
    infos = validate_shards(
        list_shards(generate_shards(tmp_path / "d", n_images=9, n_shards=3)[0].parent)
    )
    model = load_vlm("tiny-vlm")
    assert model.synthetic
    out = tmp_path / "probe"
    rec = probe_group(infos, out, batch_size=4, read_parallel=2, model=model, max_new_tokens=4)
    assert rec["images"] == 9 and len(rec["shards"]) == 3 and rec["images_per_s"] > 0
    lines = [json.loads(x) for x in (out / "shard-00000.jsonl").read_text().splitlines()]
    assert [r["id"] for r in lines] == ["img-000000", "img-000003", "img-000006"]
    r0 = lines[0]
    assert set(r0) >= {"prediction", "completion", "verify", "failure", "failure_key", "meta"}
    assert (out / r0["image_path"]).is_file() and r0["meta"]["shape"] in r0["label"]
    write_manifest(out, infos, {"model": "tiny-vlm"})
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"] == 9 and [s["rows"] for s in manifest["shards"]] == [3, 3, 3]
    # a re-run skips every finished shard (no model needed)
    again = probe_group(infos, out, batch_size=4, model=None)
    assert again["images"] == 0 and len(again["skipped"]) == 3
    # step 2 reads the folder through its manifest
    assert [p.name for p in input_files(out)] == [f"shard-0000{i}.jsonl" for i in range(3)]
    s = sample_failures(input_files(out), tmp_path / "f.jsonl", embed_images=True, base_dir=out)
    assert s["records_in"] == 9 and s["written"] == manifest["failures"]
