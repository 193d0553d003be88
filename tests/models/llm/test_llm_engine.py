"""The local engine on the tiny random-weight Qwen2 (synthetic), float32 on the CPU."""

from __future__ import annotations

import pytest
import torch

from gpuflows.core.faults import InputError
from gpuflows.models.llm.cache import CallCache
from gpuflows.models.llm.config import LLMRequest, LocalModelConfig
from gpuflows.models.llm.engine import LocalEngine
from gpuflows.models.llm.load import load_engine, resolve_spec

SYSTEM = "You are a careful grader. Answer with one word only, then stop. " * 2


@pytest.fixture(scope="module")
def base():
    return load_engine(LocalModelConfig(spec="tiny-qwen2"))


def _engine(base, **kw) -> LocalEngine:
    kw.setdefault("batching", "bucketed")  # these tests are about the static batches
    return LocalEngine(base.model, base.tokenizer, identity=base.identity, **kw)


def _requests() -> list[LLMRequest]:
    prompts = ["hi", "hello there", "a much longer prompt than the others, by far", "x y z"]
    reqs = [LLMRequest(id=f"p{i}", prompt=p, max_new_tokens=6 + i) for i, p in enumerate(prompts)]
    reqs += [
        LLMRequest(id=f"c{i}", messages=({"role": "user", "content": q},), max_new_tokens=5)
        for i, q in enumerate(["why?", "what is 2+2?"])
    ]
    return reqs


def test_batched_greedy_equals_one_at_a_time_and_hf_generate(base):
    reqs = _requests()
    batched = _engine(base, batch_size=4).generate(reqs)
    single = _engine(base, batch_size=1).generate(reqs)
    assert [r.id for r in batched] == [r.id for r in reqs]
    assert [r.text for r in batched] == [r.text for r in single]
    assert max(r.batch["size"] for r in batched) == 4
    for req, res in zip(reqs, batched, strict=True):
        ids = torch.tensor([base.render(req)])
        out = base.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=req.max_new_tokens,
            do_sample=False,
            pad_token_id=base.pad_id,
        )
        want = base.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        assert res.text == want, req.id
        assert res.completion_tokens <= req.max_new_tokens


def test_shared_prefix_prefilled_once_with_the_same_answers(base):
    reqs = [
        LLMRequest(id=str(i), prompt=SYSTEM + q, max_new_tokens=4)
        for i, q in enumerate(["cat?", "dog?", "a bird?", "fish??", "ant", "owl?", "eel", "yak?"])
    ]
    sharing = _engine(base, batch_size=4, shared_prefix_min_tokens=16)
    plain = _engine(base, batch_size=4, shared_prefix_min_tokens=10_000)
    a, b = sharing.generate(reqs), plain.generate(reqs)
    assert [r.text for r in a] == [r.text for r in b]
    c = sharing.record()["counts"]
    prefix = len(SYSTEM)  # byte-level tokenizer: one token per character
    assert c["prefill_tokens_requested"] == plain.record()["counts"]["prefill_tokens_computed"]
    # the prefix once for the first batch, reused by the second: 8 rows, 7 of them saved
    assert c["prefill_tokens_saved"] >= 7 * prefix
    assert c["prefix_reuses"] >= 1
    assert all(r.batch["shared_prefix_tokens"] >= prefix for r in a)


def test_rerun_answers_from_cache_with_zero_model_calls(base, tmp_path):
    reqs = _requests()
    cache = CallCache(tmp_path / "calls.sqlite")
    first = _engine(base, cache=cache).generate(reqs)
    calls = _engine(base, cache=cache)
    again = calls.generate(reqs)
    assert calls.counts["calls"] == 0 and calls.counts["batches"] == 0
    assert [r.text for r in again] == [r.text for r in first]
    assert all(r.cached for r in again) and not any(r.cached for r in first)
    assert cache.stats()["hits"] == len(reqs) and cache.stats()["misses"] == len(reqs)
    other = LocalEngine(base.model, base.tokenizer, identity="weights:other|float32", cache=cache)
    other.generate(reqs[:1])
    assert other.counts["calls"] == 1  # another model's identity never reads these rows


def test_sampled_replay_is_identical_and_independent_of_batching(base):
    reqs = [
        LLMRequest(id=f"s{k}", prompt="tell me", temperature=1.0, top_p=0.9, seed=7, sample_index=k)
        for k in range(4)
    ] + [LLMRequest(id="g", prompt="tell me more", max_new_tokens=8)]
    a = _engine(base, batch_size=4).generate(reqs)
    b = _engine(base, batch_size=4).generate(reqs)
    c = _engine(base, batch_size=1).generate(reqs)
    assert [r.text for r in a] == [r.text for r in b] == [r.text for r in c]
    assert len({r.text for r in a[:4]}) > 1  # the k-th sample differs from the others


def test_stop_strings_cut_the_text(base):
    free = _engine(base).generate([LLMRequest(id="a", prompt="stop test", max_new_tokens=12)])[0]
    stop = free.text[4:6]
    assert stop
    cut = free.text[: free.text.find(stop)]
    res = _engine(base).generate(
        [LLMRequest(id="a", prompt="stop test", max_new_tokens=12, stop=(stop,))]
    )[0]
    assert res.text == cut and res.finish_reason == "stop"


def test_oom_halves_the_batch_and_loses_nothing(base, monkeypatch):
    eng = _engine(base, batch_size=4)
    real = eng._decode

    def flaky(items, *args):
        if len(items) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(items, *args)

    monkeypatch.setattr(eng, "_decode", flaky)
    reqs = _requests()
    got = eng.generate(reqs)
    assert all(r.ok for r in got) and len(got) == len(reqs)
    assert eng.sizer.record()["oom_halvings"] == 1 and eng.sizer.size == 2
    assert [r.text for r in got] == [r.text for r in _engine(base, batch_size=1).generate(reqs)]


def test_bad_spec_and_missing_template_fail_before_any_load(base, tmp_path):
    with pytest.raises(InputError, match="spec='no-such-model'"):
        resolve_spec("no-such-model")
    with pytest.raises(InputError, match="no .gguf file"):
        resolve_spec(f"gguf:{tmp_path / 'x.gguf'}")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(InputError, match="no safetensors"):
        resolve_spec(str(tmp_path))
    eng = _engine(base)
    eng.tokenizer = type("T", (), {"chat_template": None})()
    with pytest.raises(InputError, match="chat template"):
        eng.render(LLMRequest(id="m", messages=({"role": "user", "content": "x"},)))
