"""The factor-pipeline summary body shows each step's errors, from the step's own record."""

from __future__ import annotations

from gpuflows.pipelines.factor_pipeline.report import build_body


def _probe(errors: int, kinds: dict[str, int]) -> dict:
    return {
        "images_in": 10,
        "records": 10,
        "answered": 10 - errors,
        "failures": 4,
        "errors": errors,
        "errors_by_kind": kinds,
        "images_per_s": 2.5,
        "seconds": 4.0,
        "device": "cpu",
        "groups": 1,
        "load_s": 1.2,
        "manifest": "m.json",
    }


def test_probe_row_and_section_carry_the_error_count_and_kinds() -> None:
    body = build_body({"probe": _probe(2, {"http_status": 2})}, [])
    row = next(line for line in body.splitlines() if line.startswith("| 1 probe"))
    assert row.split("|")[4].strip() == "2"
    assert "answered 8, errors 2 (http_status: 2)" in body


def test_a_clean_probe_says_none() -> None:
    body = build_body({"probe": _probe(0, {})}, [])
    row = next(line for line in body.splitlines() if line.startswith("| 1 probe"))
    assert row.split("|")[4].strip() == "0"
    assert "errors 0 (none)" in body
