"""`python -m gpuflows.serve`: the local engine behind an OpenAI-compatible endpoint."""

from __future__ import annotations

import pytest

from gpuflows.models.llm.config import EndpointConfig, LLMRequest, LocalModelConfig
from gpuflows.models.llm.endpoint import EndpointClient
from gpuflows.models.llm.faults_server import running
from gpuflows.models.llm.load import load_engine
from gpuflows.serve import main, make_app


@pytest.fixture(scope="module")
def engine():
    return load_engine(LocalModelConfig(spec="tiny-qwen2", batch_size=8))


def test_concurrent_requests_are_batched_and_answer_as_the_engine_does(engine):
    reqs = [
        LLMRequest(
            id=str(i),
            messages=({"role": "user", "content": f"question number {i}"},),
            max_new_tokens=5,
        )
        for i in range(8)
    ]
    app = make_app(engine, "tiny", max_batch=8, wait_s=0.2)
    with running(app) as url:
        client = EndpointClient(EndpointConfig(base_url=url, model="tiny", concurrency=8))
        got = client.generate(reqs)
        wrong = EndpointClient(EndpointConfig(base_url=url, model="other", max_attempts=1))
        (miss,) = wrong.generate(reqs[:1])
    assert all(r.ok for r in got)
    assert max(app.state.batcher.batch_sizes) > 1  # concurrent requests shared an engine batch
    direct = engine.generate(reqs)
    assert [r.text for r in got] == [r.text for r in direct]
    assert [r.completion_tokens for r in got] == [r.completion_tokens for r in direct]
    assert miss.error.status == 404 and miss.error.attempts == 1


def test_bad_model_spec_exits_before_loading(capsys):
    assert main(["--model", "no-such-model", "--port", "1"]) == 2
    assert "--model='no-such-model'" in capsys.readouterr().err
