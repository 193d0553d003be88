"""The DataSource block mirrors the core provenance record and keeps its rules."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from blocks import DataSource
from gpuflows.core.evidence.provenance import DataProvenance

FIELDS = {
    "name": "clinic-gaze",
    "origin": "memory clinic EyeLink 1000",
    "version": "2024-05",
    "responsible": "j.doe@lab.example",
}


def test_block_round_trips_to_the_core_record():
    rec = DataSource(**FIELDS, kind="public-dataset").to_record()
    assert isinstance(rec, DataProvenance)
    assert rec.model_dump() == DataProvenance(**FIELDS, kind="public-dataset").model_dump()
    assert set(DataSource.model_fields) >= set(DataProvenance.model_fields)


@pytest.mark.parametrize(("field", "value"), [("responsible", " "), ("kind", "scraped")])
def test_block_refuses_what_the_core_refuses(field, value):
    with pytest.raises(ValidationError, match=field):
        DataSource(**FIELDS | {field: value})


def test_block_schema_has_the_fields_for_the_ui():
    schema = DataSource.model_json_schema()
    assert {"name", "origin", "version", "responsible", "kind"} <= set(schema["properties"])
    assert DataSource.get_block_type_slug() == "gpuflows-data-source"
