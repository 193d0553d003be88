"""The engine's continuous-batching modes on the tiny random Qwen2, float32 on the CPU:
transformers' manager (``continuous``) and ours over a dense cache (``refill``) give the same
texts as the bucketed mode and ``model.generate``; stop strings cut the text; sampled requests
keep their own seeded generators; the call cache; an OOM falls back to bucketed batches."""

from __future__ import annotations

import pytest
import torch

from gpuflows.core.faults import InputError
from gpuflows.models.llm.cache import CallCache
from gpuflows.models.llm.config import LLMRequest, LocalModelConfig
from gpuflows.models.llm.engine import LocalEngine
from gpuflows.models.llm.load import load_engine


@pytest.fixture(scope="module")
def base():
    return load_engine(LocalModelConfig(spec="tiny-qwen2"))


def _engine(base, **kw) -> LocalEngine:
    return LocalEngine(base.model, base.tokenizer, identity=base.identity, **kw)


def _requests() -> list[LLMRequest]:
    # mixed prompt lengths and output caps: with 3 rows at a time, a short request finishing
    # frees its slot for the next one
    prompts = ["hi", "hello there", "a much longer prompt than the others, by far", "x y z"]
    reqs = [
        LLMRequest(id=f"p{i}", prompt=p, max_new_tokens=(3, 12, 5, 9)[i])
        for i, p in enumerate(prompts)
    ]
    reqs += [
        LLMRequest(id=f"c{i}", messages=({"role": "user", "content": q},), max_new_tokens=7)
        for i, q in enumerate(["why?", "what is 2+2?"])
    ]
    return reqs


def test_continuous_greedy_equals_bucketed_and_hf_generate(base):
    reqs = _requests()
    cont = _engine(base, batch_size=3, batching="continuous")
    got = cont.generate(reqs)
    bucketed = _engine(base, batch_size=3, batching="bucketed").generate(reqs)
    assert [r.id for r in got] == [r.id for r in reqs]
    assert [r.text for r in got] == [r.text for r in bucketed]
    assert [r.completion_tokens for r in got] == [r.completion_tokens for r in bucketed]
    assert [r.finish_reason for r in got] == [r.finish_reason for r in bucketed]
    for req, res in zip(reqs, got, strict=True):
        ids = torch.tensor([base.render(req)])
        out = base.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=req.max_new_tokens,
            do_sample=False,
            pad_token_id=base.pad_id,
        )
        assert res.text == base.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        assert res.batch["batching"] == "continuous"
    rec = cont.record()
    assert rec["batching"] == "continuous"
    assert rec["counts"]["calls"] == len(reqs) and rec["counts"]["continuous_sessions"] == 1
    assert rec["counts"]["prefill_tokens_requested"] == sum(len(base.render(r)) for r in reqs)
    assert rec["counts"]["output_tokens"] == sum(r.completion_tokens for r in got)


def test_continuous_stop_strings_and_sampled_requests(base):
    free = _engine(base).generate([LLMRequest(id="a", prompt="stop test", max_new_tokens=12)])[0]
    stop = free.text[4:6]
    assert stop
    reqs = [
        LLMRequest(id="a", prompt="stop test", max_new_tokens=12, stop=(stop,)),
        LLMRequest(id="s", prompt="tell me", temperature=1.0, top_p=0.9, seed=7, max_new_tokens=8),
    ]
    got = _engine(base, batching="continuous").generate(reqs)
    assert got[0].text == free.text[: free.text.find(stop)] and got[0].finish_reason == "stop"
    # the sampled request ran on the bucketed path with its own generator: same text
    assert got[1].text == _engine(base, batching="bucketed").generate(reqs[1:])[0].text
    assert got[1].batch["batching"] == "bucketed"


def test_continuous_rerun_is_served_by_the_cache(base, tmp_path):
    cache = CallCache(tmp_path / "calls.sqlite")
    reqs = _requests()[:3]
    first = _engine(base, cache=cache, batching="continuous").generate(reqs)
    again_engine = _engine(base, cache=cache, batching="continuous")
    again = again_engine.generate(reqs)
    assert again_engine.counts["calls"] == 0
    assert [r.text for r in again] == [r.text for r in first] and all(r.cached for r in again)


def test_auto_is_refill_and_falls_back_where_the_cache_cannot_merge(base, monkeypatch):
    eng = _engine(base)
    assert eng.batching == "refill" and eng.record()["batching"] == "refill"
    monkeypatch.setattr("gpuflows.models.llm.refill.supports_refill", lambda model: False)
    got = eng.generate(_requests()[:2])
    assert all(r.batch["batching"] == "bucketed" for r in got)


def test_bad_batching_mode_is_named(base):
    with pytest.raises(InputError, match="batching='paged'"):
        _engine(base, batching="paged")


SYSTEM = "You are a careful grader. Answer with one word only, then stop. " * 2


def test_refill_equals_one_at_a_time_keeps_rows_full_and_shares_the_prefix(base):
    caps = (3, 12, 5, 9, 20, 7)
    prompts = ["hi", "hello there", "a much longer prompt than the others", "x y z", "q", "mid"]
    reqs = [
        LLMRequest(id=f"p{i}", prompt=SYSTEM + p, max_new_tokens=caps[i])
        for i, p in enumerate(prompts)
    ]
    reqs.append(LLMRequest(id="s", prompt=SYSTEM + "?", temperature=1.0, seed=3, max_new_tokens=6))
    refill = _engine(base, batch_size=3, batching="refill")
    got = refill.generate(reqs)
    single = _engine(base, batch_size=1, batching="bucketed").generate(reqs)
    assert [r.id for r in got] == [r.id for r in reqs]
    assert [r.text for r in got] == [r.text for r in single]  # sampled row included
    assert [r.finish_reason for r in got] == [r.finish_reason for r in single]
    c = refill.record()["counts"]
    assert c["calls"] == len(reqs) and c["output_tokens"] == sum(r.completion_tokens for r in got)
    # a finished row's slot is taken at the next step: every step but the tail runs 3 rows
    assert c["decode_row_steps"] / c["decode_steps"] > 2.5
    assert max(r.batch["admitted_at_step"] for r in got) > 0
    # the system prompt is prefilled once, not per row
    assert c["prefill_tokens_saved"] >= (len(reqs) - 1) * len(SYSTEM)


def test_refill_stop_strings_and_oom_fallback(base, monkeypatch):
    free = _engine(base).generate([LLMRequest(id="a", prompt="stop test", max_new_tokens=12)])[0]
    stop = free.text[4:6]
    req = LLMRequest(id="a", prompt="stop test", max_new_tokens=12, stop=(stop,))
    got = _engine(base, batching="refill").generate([req])[0]
    assert got.text == free.text[: free.text.find(stop)] and got.finish_reason == "stop"

    eng = _engine(base, batch_size=4, batching="refill")

    def oom(*_a, **_k):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        yield  # a generator, as run_refill

    monkeypatch.setattr("gpuflows.models.llm.refill.run_refill", oom)
    reqs = _requests()
    out = eng.generate(reqs)  # falls back to bucketed batches at half the size
    assert all(r.ok for r in out) and eng.sizer.size == 2
    assert [r.text for r in out] == [r.text for r in _engine(base, batch_size=1).generate(reqs)]
