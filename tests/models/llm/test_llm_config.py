"""Bad endpoint or local model settings fail at construction, naming the field and the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gpuflows.models.llm.config import EndpointConfig, LocalModelConfig


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("127.0.0.1:8000/v1", "base_url=.*not an http"),
        ("ftp://x/v1", "base_url=.*not an http"),
        ("http://127.0.0.1:8000/v1/chat/completions", "names an endpoint path"),
    ],
)
def test_bad_base_url(url, match):
    with pytest.raises(ValidationError, match=match):
        EndpointConfig(base_url=url, model="m")


def test_endpoint_identity_has_url_model_and_revision():
    a = EndpointConfig(base_url="http://h:1/v1/", model="m", revision="r1")
    assert a.base_url == "http://h:1/v1"
    b = a.model_copy(update={"revision": "r2"})
    assert a.identity() != b.identity() and "model:m" in a.identity()


def test_endpoint_needs_model_and_positive_concurrency():
    with pytest.raises(ValidationError, match="model"):
        EndpointConfig(base_url="http://h/v1", model="")
    with pytest.raises(ValidationError, match="concurrency"):
        EndpointConfig(base_url="http://h/v1", model="m", concurrency=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "gpu"}, "device='gpu'"),
        ({"device": "auto"}, "needs gpus"),
        ({"gpus": "0,1"}, "needs device='auto'"),
        ({"device": "auto", "gpus": "0;1"}, "gpus='0;1'"),
        ({"max_memory_gib": 10}, "max_memory_gib only applies"),
    ],
)
def test_bad_local_config(kwargs, match):
    with pytest.raises(ValidationError, match=match):
        LocalModelConfig(spec="tiny-qwen2", **kwargs)


def test_gpu_indices():
    cfg = LocalModelConfig(spec="x", device="auto", gpus="0, 2")
    assert cfg.gpu_indices() == [0, 2]


def test_batching_mode_reaches_the_engine_and_a_bad_one_names_the_field():
    from gpuflows.models.llm.load import load_engine

    engine = load_engine(LocalModelConfig(spec="tiny-qwen2", batching="bucketed"))
    assert engine.record()["batching"] == "bucketed"
    with pytest.raises(ValidationError, match="batching"):
        LocalModelConfig(spec="tiny-qwen2", batching="paged")
