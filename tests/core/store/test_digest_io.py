"""Content digests and atomic result files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from gpuflows.core.evidence.digest import (
    array_digest,
    bytes_digest,
    digest_any,
    file_digest,
    frame_digest,
    is_array_like,
    value_digest,
)
from gpuflows.core.store.io import (
    PROJECT_RESULTS_ENV,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_parquet,
    read_json,
    results_root,
)

DIGEST = re.compile(r"^blake2b:[0-9a-f]{32}$")


# --- array_digest ------------------------------------------------------------------------


def test_array_digest_format_and_equal_content():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    d = array_digest(a)
    assert DIGEST.match(d)
    assert array_digest(a.copy()) == d
    assert array_digest(np.arange(6, dtype=np.float32).reshape(2, 3)) == d


def test_array_digest_differs_by_content():
    a = np.arange(6, dtype=np.float32)
    b = a.copy()
    b[-1] = 99
    assert array_digest(a) != array_digest(b)


def test_array_digest_differs_by_dtype_for_the_same_bytes():
    raw = np.arange(4, dtype=np.int32)
    as_float = raw.view(np.float32)
    assert raw.tobytes() == as_float.tobytes()
    assert array_digest(raw) != array_digest(as_float)


def test_array_digest_differs_by_shape_for_the_same_bytes():
    a = np.arange(6, dtype=np.float64)
    assert array_digest(a.reshape(2, 3)) != array_digest(a.reshape(3, 2))
    assert array_digest(a.reshape(2, 3)) != array_digest(a)


def test_array_digest_ignores_memory_layout():
    a = np.arange(12, dtype=np.float64).reshape(3, 4)
    fortran = np.asfortranarray(a)
    assert array_digest(fortran) == array_digest(a)
    assert array_digest(a.T) == array_digest(np.ascontiguousarray(a.T))
    assert array_digest(a[:, ::2]) == array_digest(a[:, ::2].copy())


def test_array_digest_of_empty_arrays_keeps_the_shape():
    # an empty selection is a legitimate input (memoryview.cast used to reject zero shapes)
    d03, d30 = array_digest(np.zeros((0, 3))), array_digest(np.zeros((3, 0)))
    assert DIGEST.match(d03) and d03 != d30
    assert d03 == array_digest(np.empty((0, 3)))
    assert array_digest(np.zeros(0, dtype=np.float32)) != array_digest(np.zeros(0))


def test_array_digest_of_empty_torch_tensor():
    torch = pytest.importorskip("torch")
    assert array_digest(torch.zeros(0, 3)) == array_digest(np.zeros((0, 3), dtype=np.float32))


def test_array_digest_of_datetimes():
    a = np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[D]")
    assert DIGEST.match(array_digest(a))
    assert array_digest(a) != array_digest(a.astype("datetime64[s]"))
    assert array_digest(a) != array_digest(a.view(np.int64))


def test_array_digest_of_a_list_equals_its_array():
    assert array_digest([1.0, 2.0]) == array_digest(np.array([1.0, 2.0]))


def test_array_digest_torch_matches_numpy_and_is_stable():
    torch = pytest.importorskip("torch")
    a = np.linspace(0, 1, 10, dtype=np.float32)
    t = torch.from_numpy(a.copy())
    assert array_digest(t) == array_digest(a)
    assert array_digest(t) == array_digest(t.clone())
    w = torch.ones(3, requires_grad=True)
    assert array_digest(w) == array_digest(torch.ones(3))
    # non-contiguous tensors hash their values, not their storage
    m = torch.arange(6.0).reshape(2, 3)
    assert array_digest(m.t()) == array_digest(m.t().contiguous())


def test_array_digest_torch_bfloat16():
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.0, -2.5, 3.25], dtype=torch.bfloat16)
    d = array_digest(t)
    assert DIGEST.match(d)
    assert array_digest(t.clone()) == d
    assert array_digest(torch.tensor([1.0, -2.5, 3.25], dtype=torch.bfloat16)) == d
    assert array_digest(torch.tensor([1.0, -2.5, 3.5], dtype=torch.bfloat16)) != d
    # same 16-bit words read as another dtype must not collide
    assert array_digest(t.view(torch.int16)) != d
    assert array_digest(t.view(torch.float16)) != d
    assert array_digest(t.to(torch.float32)) != d


def test_array_digest_known_value():
    # Pinned so an accidental change of the digest recipe (which would silently invalidate every
    # cache key and dataset version) fails here: blake2b-128 of b"int64|(3,)|" + the data.
    import hashlib

    a = np.array([1, 2, 3], dtype=np.int64)
    h = hashlib.blake2b(digest_size=16)
    h.update(b"int64|(3,)|")
    h.update(a.tobytes())
    assert array_digest(a) == "blake2b:" + h.hexdigest()


# --- frame, file, bytes, value digests ---------------------------------------------------


def test_frame_digest_ignores_the_index():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "c"]})
    reindexed = df.set_axis([10, 20, 30])
    assert DIGEST.match(frame_digest(df))
    assert frame_digest(reindexed) == frame_digest(df)


def test_frame_digest_sees_column_names_dtypes_and_values():
    df = pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    d = frame_digest(df)
    assert frame_digest(df.rename(columns={"x": "z"})) != d
    assert frame_digest(df.astype({"x": "float32"})) != d
    changed = df.copy()
    changed.loc[1, "y"] = 5.0
    assert frame_digest(changed) != d
    assert frame_digest(df.copy()) == d


def test_digest_any_dispatches():
    df = pd.DataFrame({"x": [1, 2]})
    assert digest_any(df) == frame_digest(df)
    assert digest_any(df["x"]) == frame_digest(df)
    a = np.ones(3)
    assert digest_any(a) == array_digest(a)


def test_is_array_like():
    assert is_array_like(np.ones(2))
    assert is_array_like(pd.DataFrame({"x": [1]}))
    assert not is_array_like(np.float64(1.0))
    assert not is_array_like([1, 2])
    assert not is_array_like({"a": 1})


def test_file_digest_matches_bytes_digest(tmp_path):
    data = bytes(range(256)) * 9000  # > 2 MiB: several 1 MiB chunks
    p = tmp_path / "blob.bin"
    p.write_bytes(data)
    assert file_digest(p) == bytes_digest(data)
    assert file_digest(str(p)) == bytes_digest(data)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_digest(empty) == bytes_digest(b"")


def test_bytes_digest_differs_by_content():
    assert bytes_digest(b"a") != bytes_digest(b"b")
    assert DIGEST.match(bytes_digest(b""))


def test_value_digest_independent_of_key_order():
    a = {"b": 1, "a": [1, 2, {"y": 1, "x": 2}]}
    b = {"a": [1, 2, {"x": 2, "y": 1}], "b": 1}
    assert value_digest(a) == value_digest(b)
    assert value_digest(a) != value_digest({"b": 2, "a": [1, 2, {"y": 1, "x": 2}]})
    assert value_digest([1, 2]) != value_digest([2, 1])  # list order matters


def test_value_digest_of_a_model_equals_its_json_dump():
    class P(BaseModel):
        m: int
        path: Path

    p = P(m=3, path=Path("/tmp/x"))
    assert value_digest(p) == value_digest({"path": "/tmp/x", "m": 3})


# --- io -----------------------------------------------------------------------------------


class Summary(BaseModel):
    name: str
    values: list[float]
    path: Path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_json_round_trip_with_model_and_numpy(tmp_path):
    target = tmp_path / "deep" / "er" / "out.json"  # parents are created
    obj = {
        "model": Summary(name="s", values=[1.5, 2.0], path=Path("/data/x")),
        "f32": np.float32(0.5),
        "i64": np.int64(7),
        "flag": np.bool_(True),
        "arr": np.arange(3),
        "path": Path("a/b"),
        "text": "héllo",
    }
    written = atomic_write_json(target, obj)
    assert written == target
    back = read_json(target)
    assert back == {
        "model": {"name": "s", "values": [1.5, 2.0], "path": "/data/x"},
        "f32": 0.5,
        "i64": 7,
        "flag": True,
        "arr": [0, 1, 2],
        "path": "a/b",
        "text": "héllo",
    }
    assert target.read_text().endswith("}\n")
    assert _leftovers(target.parent) == []
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_atomic_json_top_level_model(tmp_path):
    p = atomic_write_json(tmp_path / "m.json", Summary(name="a", values=[], path=Path("p")))
    assert Summary.model_validate(read_json(p)) == Summary(name="a", values=[], path=Path("p"))


def test_atomic_json_failure_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"version": 1})
    before = target.read_bytes()

    class NotJson:
        pass

    with pytest.raises(TypeError, match="NotJson is not JSON serialisable"):
        atomic_write_json(target, {"version": 2, "bad": NotJson()})
    assert target.read_bytes() == before
    assert read_json(target) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_bytes_failure_during_write_cleans_up(tmp_path, monkeypatch):
    import gpuflows.core.store.io as gio

    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(gio.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_atomic_write_parquet_round_trip(tmp_path):
    pytest.importorskip("pyarrow")
    df = pd.DataFrame(
        {"m": [2, 3, 4], "rr": [0.1, 0.25, 0.5], "label": ["a", "b", "c"]},
        index=[7, 8, 9],  # dropped: written with index=False
    )
    p = atomic_write_parquet(tmp_path / "t.parquet", df)
    back = pd.read_parquet(p)
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True))
    assert frame_digest(back) == frame_digest(df)
    assert _leftovers(tmp_path) == []


def test_atomic_write_overwrites(tmp_path):
    p = tmp_path / "x.json"
    atomic_write_json(p, [1])
    atomic_write_json(p, [2])
    assert read_json(p) == [2]
    assert json.loads(p.read_text()) == [2]


def test_results_root_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv(PROJECT_RESULTS_ENV, str(tmp_path / "res"))
    assert results_root() == (tmp_path / "res").resolve()
    assert results_root().is_absolute()


def test_results_root_defaults_to_cwd_results(tmp_path, monkeypatch):
    monkeypatch.delenv(PROJECT_RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert results_root() == tmp_path.resolve() / "results"
