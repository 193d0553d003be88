"""The GPU bench's code path as a CPU smoke: ``bench/llm_calls.py --quick`` builds the random
Qwen2.5 architecture (tiny shapes), runs one-at-a-time ``generate`` and every engine mode on the
same requests, and writes every figure the GPU run reports (projection for the sequential
subset included)."""

from __future__ import annotations

import json

import pytest

from bench import llm_calls


def test_quick_smoke_writes_every_figure(tmp_path):
    out = tmp_path / "llm-calls.json"
    result = llm_calls.main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result, default=str))
    local = result["local"]
    assert local["model"] == "random-qwen2.5-tiny" and local["synthetic"] is True
    assert result["endpoint"] == [] and local["failed_modes"] == {}
    seq = local["sequential"]
    assert seq["requests_run"] == 4 < local["requests"] == 6
    assert seq["seconds_projected"]["value"] > seq["seconds"]["value"]
    for mode in llm_calls.MODES:
        m = local[mode]
        # float32 on the CPU: batched greedy equals one-at-a-time greedy
        assert m["texts_identical_to_sequential"] == "4/4", mode
        assert m["output_tokens"] == 6 * 6  # random weights: no end-of-sequence, all run to cap
        assert m["calls_per_s"]["value"] > 0 and m["speedup_calls_per_s"]["value"] > 0
        assert m["prefill_tokens_requested"] >= m["prefill_tokens_computed"] > 0
    assert "published_mark" not in local  # stated beside a GPU run only


def test_requests_mix_prompt_lengths_and_output_caps():
    reqs = llm_calls.bench_requests(10)
    assert len({r.max_new_tokens for r in reqs}) == len(llm_calls.MAX_NEW)
    lengths = [len(r.messages[1]["content"]) for r in reqs]
    assert max(lengths) > 5 * min(lengths)
    assert all(r.messages[0]["content"] == llm_calls.SYSTEM for r in reqs)


@pytest.mark.gpu
def test_quick_smoke_on_cuda_states_the_published_mark(tmp_path):
    """On a GPU host: the same smoke on cuda:0 (float32, tiny shapes) reports the vLLM mark
    beside its measured output tokens/s, labelled as published, and every mode ran."""
    result = llm_calls.main(["--quick", "--device", "cuda", "--out", str(tmp_path / "r.json")])
    local = result["local"]
    mark = local["published_mark"]
    assert mark["vllm_8b_one_h100_output_tok_per_s"]["value"] == llm_calls.VLLM_MARK_TOK_S
    assert "not measured" in mark["note"]
    assert mark["ours_best_output_tok_per_s"]["value"] > 0
    for mode in llm_calls.MODES:
        assert local[mode]["output_tokens"] == 6 * 6, mode
