"""Step 1's input: generated shards validate; bad shards fail naming shard, row and field."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpuflows.core.faults import InputError
from gpuflows.pipelines.factor_pipeline.generate import generate_shards
from gpuflows.pipelines.factor_pipeline.schema import iter_batches, list_shards, validate_shards


def test_generated_shards_validate_and_stream(tmp_path):
    paths = generate_shards(tmp_path / "d", n_images=10, n_shards=3, seed=1)
    assert len(paths) == 3
    infos = validate_shards(list_shards(tmp_path / "d"))
    assert sum(i.rows for i in infos) == 10
    assert infos[0].meta_columns == ("color", "shape", "size")
    batches = list(iter_batches(infos[0], 2))
    assert [len(b) for b in batches] == [2, 2]
    rec = batches[0][0]
    assert rec["image"].size == (48, 48) and rec["label"].split()[1] in rec["meta"]["shape"]
    # seeded: the same arguments give the same bytes; reused when finished
    again = generate_shards(tmp_path / "e", n_images=10, n_shards=3, seed=1)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]


def _write(path, **cols):
    pq.write_table(pa.table(cols), path)


def test_missing_column_named(tmp_path):
    _write(tmp_path / "a.parquet", id=["x"], image=[b"..."])
    with pytest.raises(InputError, match=r"shard a.parquet: missing column\(s\) \['label'\]"):
        validate_shards(list_shards(tmp_path))


def test_no_image_column(tmp_path):
    _write(tmp_path / "a.parquet", id=["x"], label=["red circle"])
    with pytest.raises(InputError, match="no image column"):
        validate_shards(list_shards(tmp_path))


def test_unreadable_image_names_record(tmp_path):
    good = generate_shards(tmp_path / "g", n_images=2, n_shards=1)[0]
    t = pq.read_table(good)
    imgs = t.column("image").to_pylist()
    imgs[1] = b"not an image"
    pq.write_table(t.set_column(t.schema.get_field_index("image"), "image", pa.array(imgs)), good)
    with pytest.raises(InputError, match=r"row 1 \(id 'img-000001'\): image does not decode"):
        validate_shards([good])


def test_missing_image_path_names_record(tmp_path):
    _write(tmp_path / "a.parquet", id=["x"], label=["l"], image_path=["nope.png"])
    with pytest.raises(InputError, match=r"id 'x'.*image_path does not decode"):
        validate_shards(list_shards(tmp_path))


def test_duplicate_id_across_shards(tmp_path):
    paths = generate_shards(tmp_path, n_images=4, n_shards=2)
    t = pq.read_table(paths[1])
    pq.write_table(t.set_column(0, "id", pa.array(["img-000000", "img-000003"])), paths[1])
    with pytest.raises(InputError, match=r"duplicate id 'img-000000' \(first at shard shard-00000"):
        validate_shards(paths)


def test_not_a_folder(tmp_path):
    with pytest.raises(InputError, match="input_path=.*does not exist"):
        list_shards(tmp_path / "missing")
