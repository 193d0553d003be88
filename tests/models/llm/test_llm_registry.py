"""The language-model backends are registered by name and share one interface."""

from __future__ import annotations

from gpuflows.models.llm.endpoint import EndpointClient
from gpuflows.models.llm.load import build_tiny_qwen2, load_engine
from gpuflows.models.registry import get_model


def test_llm_backends_by_name():
    assert get_model("causal-lm") is load_engine
    assert get_model("endpoint") is EndpointClient
    assert get_model("tiny-causal-lm") is build_tiny_qwen2
