"""tasks.summary: the same end-of-run lines for every flow, naming every artifact of the run."""

from __future__ import annotations

import pytest
from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from tasks.summary import end_of_run_summary, summary_printer


def test_summary_names_report_files_and_every_artifact_of_the_run(
    prefect_harness, tmp_path, capsys
):
    md = tmp_path / "run-1" / "report.md"

    @flow(name="summary-test")
    def publish() -> dict:
        create_markdown_artifact("# r", key="summary-test-report")
        create_table_artifact([{"a": 1}], key="summary-test-samples")
        return {
            "device": "cpu",
            "report": {
                "markdown": str(md),
                "tier": "tier-under-test",
                "key": "summary-test-report",
                "flow_run_id": str(flow_run.id),
            },
        }

    out = publish()
    text = end_of_run_summary("summary-test", out)
    assert "summary-test finished: tier-under-test on cpu" in text
    assert f"report:    {md}" in text and f"files:     {md.parent}" in text
    assert "artifacts: summary-test-report, summary-test-samples" in text
    assert out["report"]["flow_run_id"] in text  # UI link or the run id
    summary_printer("summary-test")(out)
    assert "summary-test-samples" in capsys.readouterr().out


def test_a_result_without_report_names_what_is_missing():
    with pytest.raises(ValueError, match="no 'report'.*keys: \\['tier'\\]"):
        end_of_run_summary("two-stage-eval", {"tier": "x"})
