"""Step 2: streaming JSON array / JSONL -> JSONL, failures kept, seeded bottom-k sample, flat
memory, multi-process ranges equal to one process, bad lines located, nothing half-written."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import orjson
import pytest

from gpuflows.core.faults import InputError
from gpuflows.pipelines.factor_pipeline.sampling import (
    input_files,
    iter_lines,
    plan_ranges,
    sample_failures,
)


def _records(n, img=None):
    return [
        {"id": f"r{i}", "failure": i % 3 != 0, "x": i * 0.5, "image_path": img or f"im{i}.png"}
        for i in range(n)
    ]


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_array_and_jsonl_give_the_same_failures(tmp_path):
    recs = _records(30)
    (tmp_path / "a.json").write_text(json.dumps(recs, indent=1))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    sa = sample_failures([tmp_path / "a.json"], tmp_path / "oa.jsonl")
    sb = sample_failures([tmp_path / "b.jsonl"], tmp_path / "ob.jsonl")
    a, b = _read(tmp_path / "oa.jsonl"), _read(tmp_path / "ob.jsonl")
    assert a == b == [r for r in recs if r["failure"]]  # input order, image_path kept
    assert sa["records_in"] == sb["records_in"] == 30 and sa["written"] == 20


def test_embed_images_base64_only_when_asked(tmp_path):
    (tmp_path / "im.png").write_bytes(b"\x89PNG-bytes")
    (tmp_path / "in.jsonl").write_text(json.dumps(_records(2, img="im.png")[1]) + "\n")
    sample_failures([tmp_path / "in.jsonl"], tmp_path / "o.jsonl", embed_images=True)
    (rec,) = _read(tmp_path / "o.jsonl")
    assert "image_path" not in rec
    assert base64.b64decode(rec["image_base64"]) == b"\x89PNG-bytes"


def test_seeded_sample_same_for_any_split_and_processes(tmp_path):
    recs = _records(3000)
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in recs))
    one = sample_failures([src], tmp_path / "one.jsonl", sample_size=50, seed=7)
    assert one["written"] == 50 and one["ranges"] == 1
    many = sample_failures(
        [src], tmp_path / "many.jsonl", sample_size=50, seed=7, processes=2, split_bytes=10_000
    )
    assert many["ranges"] > 2
    a, b = _read(tmp_path / "one.jsonl"), _read(tmp_path / "many.jsonl")
    assert a == b and len(a) == 50 and len({r["id"] for r in a}) == 50
    assert all(r["failure"] for r in a)
    other = sample_failures([src], tmp_path / "s8.jsonl", sample_size=50, seed=8)
    assert other["written"] == 50 and _read(tmp_path / "s8.jsonl") != a  # the seed matters
    # without sampling, the split conversion keeps every line once, in order
    sample_failures([src], tmp_path / "all.jsonl", processes=2, split_bytes=7_777)
    assert _read(tmp_path / "all.jsonl") == [r for r in recs if r["failure"]]


def test_ranges_cover_every_line_once(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in _records(500)))
    ids = [r["id"] for f, a, b in plan_ranges([src], 4, 1000) for r in iter_lines(f, a, b)]
    assert ids == [f"r{i}" for i in range(500)]


def test_non_json_line_named_and_no_output(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a"}\n{"id": "b", oops\n')
    out = tmp_path / "o.jsonl"
    out.write_text("previous output\n")
    with pytest.raises(InputError, match="in.jsonl line 2: not JSON"):
        sample_failures([src], out)
    assert out.read_text() == "previous output\n"  # untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_record_without_id_and_missing_input(tmp_path):
    (tmp_path / "in.json").write_text('[{"id": "a"}, {"x": 1}]')
    with pytest.raises(InputError, match="in.json item 1: the record has no 'id'"):
        sample_failures([tmp_path / "in.json"], tmp_path / "o.jsonl")
    with pytest.raises(InputError, match="does not exist"):
        input_files(tmp_path / "nope")


_RSS = """
import sys
from pathlib import Path
from gpuflows.pipelines.factor_pipeline.sampling import sample_failures
sample_failures([Path(sys.argv[1])], Path(sys.argv[2]), embed_images=False)
# VmHWM: this process's peak RSS (ru_maxrss would include the forking parent's)
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]
print(int(hwm.split()[1]) // 1024)
"""


def test_memory_flat_with_input_size(tmp_path):
    def peak_mib(n):
        src = tmp_path / f"in{n}.json"
        with open(src, "wb") as f:  # a JSON array, the seed's step-1 format
            f.write(b"[")
            for i, r in enumerate(_records(n)):
                f.write((b"," if i else b"") + orjson.dumps(r | {"pad": "x" * 200}))
            f.write(b"]")
        out = subprocess.run(
            [sys.executable, "-c", _RSS, str(src), str(tmp_path / "o.jsonl")],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout.strip()), src.stat().st_size

    small, s_bytes = peak_mib(10_000)
    big, b_bytes = peak_mib(150_000)
    assert b_bytes > 12 * s_bytes
    assert big < 100 and big - small < 8, (small, big)
