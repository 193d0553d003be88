"""tasks/llm.py: the backend by parameter, the API key from a Secret block."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

import tasks.llm as tl
from gpuflows.core.faults import InputError
from gpuflows.models.llm.endpoint import EndpointClient


def test_endpoint_backend_takes_the_key_from_the_secret_block(monkeypatch, tmp_path):
    class FakeSecret:
        @staticmethod
        def load(name):
            if name != "vllm-key":
                raise ValueError(f"Unable to find block document named {name}")
            return type("S", (), {"get": lambda self: "sk-123"})()

    import prefect.blocks.system

    monkeypatch.setattr(prefect.blocks.system, "Secret", FakeSecret)
    client = tl.make_backend(
        "endpoint",
        endpoint={"base_url": "http://127.0.0.1:9/v1", "model": "m"},
        api_key_block="vllm-key",
        cache_path=tmp_path / "c.sqlite",
    )
    assert isinstance(client, EndpointClient)
    assert client.config.api_key == SecretStr("sk-123") and client.cache is not None
    with pytest.raises(InputError, match="api_key_block='nope': no such Secret block"):
        tl.make_backend(
            "endpoint", endpoint={"base_url": "http://h/v1", "model": "m"}, api_key_block="nope"
        )


def test_bad_backend_or_missing_config_named_before_any_load():
    with pytest.raises(InputError, match="backend='gpt'"):
        tl.make_backend("gpt")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="needs local"):
        tl.make_backend("causal-lm")
    with pytest.raises(InputError, match="needs endpoint"):
        tl.make_backend("endpoint")
