"""Step 3 end to end against our own OpenAI-compatible server (gpuflows.serve) on 127.0.0.1
serving SmolLM2-135M-Instruct (real weights): every id exactly once, the wrong served model
name refused before any request."""

from __future__ import annotations

import json

import pytest

from gpuflows.core.faults import InputError
from gpuflows.models.llm.faults_server import running
from gpuflows.pipelines.factor_pipeline.outcomes import check_exactly_once
from gpuflows.pipelines.factor_pipeline.qa import qa_step

pytestmark = pytest.mark.slow  # loads SmolLM2 (~20 s idle; minutes on a busy 2-core host)


@pytest.fixture(scope="module")
def server():
    from gpuflows.models.llm.config import LocalModelConfig
    from gpuflows.models.llm.load import load_engine
    from gpuflows.serve import make_app

    engine = load_engine(LocalModelConfig(spec="smollm2"))
    app = make_app(engine, "smollm2", max_batch=8, wait_s=0.05)
    with running(app) as url:
        yield url, app


def test_qa_against_our_server_with_smollm2(server, tmp_path):
    url, app = server
    recs = [
        {"id": "f1", "label": "red circle", "prediction": "blue square", "failure_key": "color"},
        {"id": "f2", "label": "green triangle", "prediction": "green", "failure_key": "shape"},
        {"id": "f3", "label": "blue square", "prediction": "no", "failure_key": "verify"},
    ]
    src = tmp_path / "f.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = qa_step(
        src,
        tmp_path / "D",
        urls=[url],
        served_model="smollm2",
        concurrency=3,
        batch_size=3,
        max_new_tokens=24,
        timeout_s=600,
    )
    check = check_exactly_once(tmp_path / "D", {"f1", "f2", "f3"})
    assert check == {"missing": [], "extra": [], "duplicated": [], "outcomes": 3}
    assert out["qa"] + out["errors"] == 3 and out["sent_now"] == 3
    for name in ("qa.jsonl", "errors.jsonl"):
        for line in (tmp_path / "D" / name).read_text().splitlines():
            rec = json.loads(line)
            assert rec["id"] in {"f1", "f2", "f3"} and rec["attempts"] == 1
            if name == "qa.jsonl":
                assert rec["question"] and rec["answer"] and rec["model"] == "smollm2"
            else:  # a real small model may miss the format: isolated, with the reason
                assert rec["kind"] == "unparsable" and "Q:" in rec["reason"]
    assert sum(app.state.batcher.batch_sizes) == 3  # served by the engine, batched


def test_wrong_served_model_refused_before_requests(server, tmp_path):
    url, app = server
    src = tmp_path / "f.jsonl"
    src.write_text('{"id": "a", "label": "x"}\n')
    before = len(app.state.batcher.batch_sizes)
    with pytest.raises(InputError, match=r"served_model='gpt-4' is not served at .*\['smollm2'\]"):
        qa_step(src, tmp_path / "D", urls=[url], served_model="gpt-4")
    assert len(app.state.batcher.batch_sizes) == before and not (tmp_path / "D").exists()
