"""Our server serving the tiny VLM (synthetic) on 127.0.0.1, driven by the endpoint client:
images go as OpenAI image_url data-URL parts, answers equal the engine's, remote image URLs get
a clear 400, the client's cache key follows the image bytes."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from gpuflows.models.llm.cache import CallCache
from gpuflows.models.llm.config import EndpointConfig, LLMRequest, LocalModelConfig
from gpuflows.models.llm.endpoint import EndpointClient
from gpuflows.models.llm.faults_server import running
from gpuflows.models.llm.vlm_load import load_vlm_engine
from gpuflows.models.registry import get_model
from gpuflows.models.tiny import build_tiny_reward_model
from gpuflows.serve import make_app


def png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (36, 36), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    folder = build_tiny_reward_model(tmp_path_factory.mktemp("m") / "tiny-llava")
    return load_vlm_engine(LocalModelConfig(spec=str(folder), batch_size=8))


def _reqs(n: int = 6) -> list[LLMRequest]:
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    return [
        LLMRequest(
            id=f"r{i}",
            messages=({"role": "user", "content": f"what colour is it, {i}?"},),
            images=(png(colors[i % 3]),),
            max_new_tokens=4 + i % 3,
        )
        for i in range(n)
    ]


def test_registry_names_the_vlm_loader():
    assert get_model("image-text-to-text") is load_vlm_engine


def test_images_through_our_server_answer_as_the_engine(engine, tmp_path):
    reqs = _reqs()
    app = make_app(engine, "tiny-vlm", max_batch=8, wait_s=0.2)
    cache = CallCache(tmp_path / "calls.sqlite")
    with running(app) as url:
        client = EndpointClient(
            EndpointConfig(base_url=url, model="tiny-vlm", concurrency=6), cache
        )
        got = client.generate(reqs)
        again = EndpointClient(EndpointConfig(base_url=url, model="tiny-vlm"), cache)
        other = reqs[0].model_copy(update={"images": (png((250, 250, 0)),)})
        second = again.generate([*reqs, other])
        remote = httpx.post(
            url + "/chat/completions",
            json={
                "model": "tiny-vlm",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://x.org/a.png"}},
                            {"type": "text", "text": "what?"},
                        ],
                    }
                ],
            },
        )
        broken = httpx.post(
            url + "/chat/completions",
            json={
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64,AAAA"},
                            }
                        ],
                    }
                ]
            },
        )
    assert all(r.ok for r in got)
    assert max(app.state.batcher.batch_sizes) > 1  # concurrent image requests shared a batch
    assert [r.text for r in got] == [r.text for r in engine.generate(reqs)]
    assert again.counts["calls"] == 1 and [r.cached for r in second] == [True] * 6 + [False]
    assert remote.status_code == 400 and "not fetched (offline)" in remote.text
    assert broken.status_code == 400 and "not a readable image" in broken.text


def test_client_sends_openai_image_parts_and_keys_by_digest():
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        seen.append(json.loads(request.content))
        msg = {"role": "assistant", "content": "ok"}
        return httpx.Response(200, json={"choices": [{"message": msg, "finish_reason": "stop"}]})

    (req,) = _reqs(1)
    client = EndpointClient(
        EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m"),
        transport=httpx.MockTransport(handler),
    )
    assert client.generate([req])[0].text == "ok"
    parts = seen[0]["messages"][0]["content"]
    assert parts[0]["type"] == "image_url" and parts[1] == {
        "type": "text",
        "text": "what colour is it, 0?",
    }
    url = parts[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == req.images[0]
    key = client._rendered(req)
    assert key["images"] == req.image_digests() and url not in str(key)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a server process of its own: imports torch and builds the tiny VLM
def test_python_m_serve_tiny_vlm(tmp_path):
    port = _free_port()
    env = os.environ | {"GPUFLOWS_RESULTS_DIR": str(tmp_path / "results")}
    cmd = [sys.executable, "-m", "gpuflows.serve", "--model", "tiny-vlm", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(base + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        client = EndpointClient(EndpointConfig(base_url=base, model="tiny-vlm", concurrency=3))
        got = client.generate(_reqs(3))
        assert all(r.ok and r.completion_tokens >= 1 for r in got)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
