"""Exactly-once outcome files: torn last line ignored and repaired, no duplicate ever, one
writer per folder, bad lines located."""

from __future__ import annotations

import json

import pytest

from gpuflows.core.faults import InputError
from gpuflows.pipelines.factor_pipeline.outcomes import OutcomeStore, check_exactly_once


def test_record_once_and_resume(tmp_path):
    with OutcomeStore(tmp_path) as s:
        s.record("qa", {"id": "a", "question": "q", "answer": "x"})
        s.record("error", {"id": "b", "kind": "timeout", "attempts": 3})
        with pytest.raises(RuntimeError, match="'a' already has an outcome in qa.jsonl"):
            s.record("error", {"id": "a"})
    with OutcomeStore(tmp_path) as s:
        assert s.has("a") and s.has("b") and not s.has("c")
        assert s.summary()["resumed"] == {"qa": 1, "error": 1}
    assert check_exactly_once(tmp_path, {"a", "b"}) == {
        "missing": [],
        "extra": [],
        "duplicated": [],
        "outcomes": 2,
    }


def test_torn_last_line_ignored_and_repaired(tmp_path):
    qa = tmp_path / "qa.jsonl"
    qa.write_bytes(b'{"id": "a", "answer": "x"}\n{"id": "b", "ans')
    with OutcomeStore(tmp_path) as s:
        assert s.has("a") and not s.has("b")
        assert s.repaired == 1
        s.record("qa", {"id": "b", "answer": "y"})
    lines = [json.loads(x) for x in qa.read_text().splitlines()]
    assert [r["id"] for r in lines] == ["a", "b"]


def test_same_id_in_both_files_refused(tmp_path):
    (tmp_path / "qa.jsonl").write_text('{"id": "a"}\n')
    (tmp_path / "errors.jsonl").write_text('{"id": "a"}\n')
    with pytest.raises(InputError, match="errors.jsonl line 1: id 'a' already has an outcome"):
        OutcomeStore(tmp_path).open()
    # refused before writing anything: both files as they were, lock released
    assert (tmp_path / "errors.jsonl").read_text() == '{"id": "a"}\n'
    (tmp_path / "errors.jsonl").unlink()
    OutcomeStore(tmp_path).open().close()


def test_corrupt_middle_line_named(tmp_path):
    (tmp_path / "qa.jsonl").write_text('{"id": "a"}\nnot json\n{"id": "c"}\n')
    with pytest.raises(InputError, match="qa.jsonl line 2: not an outcome record"):
        OutcomeStore(tmp_path).open()


def test_second_writer_refused(tmp_path):
    with OutcomeStore(tmp_path):
        with pytest.raises(InputError, match="being written by another run"):
            OutcomeStore(tmp_path).open()
