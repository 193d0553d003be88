"""The endpoint client against the fault-injecting responder (a real HTTP server, 127.0.0.1)."""

from __future__ import annotations

import random
import time

import httpx
import pytest

from gpuflows.core.faults import InputError
from gpuflows.models.llm.cache import CallCache
from gpuflows.models.llm.config import EndpointConfig, LLMRequest
from gpuflows.models.llm.endpoint import EndpointClient, retry_after_s
from gpuflows.models.llm.faults_server import fault_app, running


def _chat(rid: str, text: str, **kw) -> LLMRequest:
    return LLMRequest(id=rid, messages=({"role": "user", "content": text},), **kw)


def _client(url: str, **kw) -> EndpointClient:
    cfg = EndpointConfig(base_url=url, model="m", backoff_base_s=0.01, backoff_max_s=0.05, **kw)
    return EndpointClient(cfg, rng=random.Random(0))


def test_in_flight_never_above_the_limit_counted_at_the_server():
    app = fault_app(latency_s=0.05)
    with running(app) as url:
        client = _client(url, concurrency=5)
        got = client.generate([_chat(str(i), f"q{i}") for i in range(40)])
    stats = app.state.stats
    assert all(r.ok for r in got) and stats["requests"] == 40
    assert stats["in_flight_max"] == 5  # the limit reached, never passed
    assert [r.id for r in got] == [str(i) for i in range(40)]


def test_retries_honour_retry_after_and_count_attempts():
    app = fault_app()
    with running(app) as url:
        client = _client(url)
        got = client.generate(
            [
                _chat("a", "[[429x2 ra=0.4]] a"),
                _chat("b", "[[503x1 ram=300]] b"),
                _chat("c", "[[500x2]] c"),
            ]
        )
    assert [r.attempts for r in got] == [3, 2, 3] and all(r.ok for r in got)
    times = app.state.stats["attempts"]
    ta = times["[[429x2 ra=0.4]] a"]
    assert min(ta[1] - ta[0], ta[2] - ta[1]) >= 0.39
    gap_b = times["[[503x1 ram=300]] b"][1] - times["[[503x1 ram=300]] b"][0]
    assert gap_b >= 0.29
    assert client.record()["counts"]["retries"] == 2 + 1 + 2


def test_a_failing_request_is_isolated_as_its_error_record():
    app = fault_app()
    with running(app) as url:
        client = _client(url, max_attempts=3, timeout_s=0.5)
        reqs = [
            _chat("ok1", "fine"),
            _chat("bad", "[[400]] never retried"),
            _chat("down", "[[500]] always down"),
            _chat("json", "[[malformed]] x"),
            _chat("slow", "[[timeoutx1]] hangs once"),
            _chat("far", "[[429 ra=900]] asks for 15 minutes"),
            _chat("ok2", "also fine"),
        ]
        got = {r.id: r for r in client.generate(reqs)}
    assert got["ok1"].ok and got["ok2"].ok and got["ok2"].text.endswith("also fine")
    assert (got["bad"].error.kind, got["bad"].error.status, got["bad"].attempts) == (
        "http_status",
        400,
        1,
    )
    assert got["down"].error.kind == "http_status" and got["down"].error.attempts == 3
    assert got["json"].error.kind == "bad_response"
    assert got["slow"].ok and got["slow"].attempts == 2  # the timeout, then the answer
    assert got["far"].error.kind == "retry_after_over_cap" and "retry_after_cap_s" in (
        got["far"].error.message
    )
    assert client.record()["errors_by_kind"] == {
        "http_status": 2,
        "bad_response": 1,
        "retry_after_over_cap": 1,
    }


def test_connection_refused_is_retried_then_an_error_record():
    with running(fault_app()) as url:
        pass  # the server is gone: its port now refuses connections
    client = _client(url, max_attempts=2)
    (res,) = client.generate([_chat("a", "x")])
    assert res.error.kind == "connection" and res.error.attempts == 2


def test_cache_answers_a_rerun_with_zero_calls_and_never_stores_errors(tmp_path):
    app = fault_app()
    cache = CallCache(tmp_path / "c.sqlite")
    reqs = [_chat("a", "one"), _chat("b", "[[400]] two"), _chat("c", "three", temperature=0.5)]
    with running(app) as url:
        cfg = EndpointConfig(base_url=url, model="m", revision="r1")
        first = EndpointClient(cfg, cache).generate(reqs)
        again_client = EndpointClient(cfg, cache)
        again = again_client.generate(reqs)
        other = EndpointClient(cfg.model_copy(update={"revision": "r2"}), cache)
        other.generate(reqs[:1])
    assert [r.text for r in again] == [r.text for r in first]
    assert again[0].cached and again[2].cached and not again[1].ok
    assert again_client.counts["calls"] == 1  # only the error is asked again
    assert other.counts["calls"] == 1  # another declared revision is another model
    assert app.state.stats["requests"] == 3 + 1 + 1


def test_completions_api_and_bad_requests_fail_before_sending():
    with running(fault_app()) as url:
        client = _client(url, api="completions")
        (res,) = client.generate([LLMRequest(id="p", prompt="raw text")])
        assert res.ok and res.text.endswith("raw text")
        with pytest.raises(InputError, match="api='completions' sends a prompt"):
            client.generate([_chat("a", "x")])
        with pytest.raises(InputError, match="api='chat' sends messages"):
            _client(url).generate([LLMRequest(id="p", prompt="x")])


def test_retry_after_parsing():
    h = httpx.Headers
    assert retry_after_s(h({"retry-after-ms": "250"})) == 0.25
    assert retry_after_s(h({"retry-after": "7"})) == 7.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 100))
    assert 95 <= retry_after_s(h({"retry-after": date})) <= 101
    assert retry_after_s(h({"retry-after": "soon"})) is None
    assert retry_after_s(h({})) is None
