"""The call cache: keys cover model, prompt and every parameter; errors are never stored; WAL."""

from __future__ import annotations

import threading

import pytest

from gpuflows.models.llm.cache import CallCache, call_key, journal_mode
from gpuflows.models.llm.config import CallError, LLMRequest, LLMResult


def _ok(rid: str, text: str) -> LLMResult:
    return LLMResult(id=rid, text=text, prompt_tokens=3, completion_tokens=2)


def test_key_changes_with_model_prompt_and_each_parameter():
    base = LLMRequest(id="a", prompt="hi", temperature=0.7, seed=1)
    k = call_key("weights:abc|float32", [1, 2, 3], base.gen_params())
    assert k == call_key("weights:abc|float32", [1, 2, 3], base.gen_params())
    others = {
        call_key("weights:abd|float32", [1, 2, 3], base.gen_params()),  # another model
        call_key("weights:abc|bfloat16", [1, 2, 3], base.gen_params()),  # another dtype
        call_key("weights:abc|float32", [1, 2, 4], base.gen_params()),  # another prompt
    }
    for change in [
        {"max_new_tokens": 65},
        {"stop": ("\n",)},
        {"temperature": 0.8},
        {"top_p": 0.9},
        {"seed": 2},
        {"sample_index": 1},
    ]:
        req = base.model_copy(update=change)
        others.add(call_key("weights:abc|float32", [1, 2, 3], req.gen_params()))
    assert k not in others and len(others) == 9


def test_greedy_key_ignores_seed_but_sampled_does_not():
    g1 = LLMRequest(id="a", prompt="hi", seed=1)
    g2 = LLMRequest(id="a", prompt="hi", seed=2)
    assert g1.gen_params() == g2.gen_params()
    s1 = g1.model_copy(update={"temperature": 1.0})
    s2 = g2.model_copy(update={"temperature": 1.0})
    assert s1.gen_params() != s2.gen_params()


def test_hit_miss_counts_and_errors_never_stored(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    assert journal_mode(tmp_path / "c.sqlite") == "wal"
    assert cache.get("k1") is None
    assert cache.put("k1", "m", _ok("a", "yes"))
    failed = LLMResult(
        id="b", finish_reason="error", error=CallError(kind="timeout", message="t", attempts=3)
    )
    assert cache.put("k2", "m", failed) is False
    got = cache.get("k1")
    assert got is not None and got.text == "yes" and got.cached
    assert cache.get("k2") is None
    assert cache.stats() | {"path": None} == {"path": None, "hits": 1, "misses": 2, "writes": 1}
    assert len(cache) == 1


def test_persists_across_connections_and_concurrent_writers(tmp_path):
    path = tmp_path / "c.sqlite"
    caches = [CallCache(path) for _ in range(4)]

    def write(i: int) -> None:
        for j in range(25):
            caches[i].put(f"k{i}-{j}", "m", _ok(f"{i}-{j}", str(j)))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh = CallCache(path)
    assert len(fresh) == 100
    assert fresh.get("k3-24").text == "24"


def test_empty_model_identity_refused():
    with pytest.raises(ValueError, match="model_identity"):
        call_key("", [1], {})


def test_request_validation_names_the_field():
    with pytest.raises(ValueError, match="exactly one of prompt"):
        LLMRequest(id="a")
    with pytest.raises(ValueError, match="messages\\[0\\] needs 'role'"):
        LLMRequest(id="a", messages=({"text": "x"},))
    with pytest.raises(ValueError, match="stop has an empty string"):
        LLMRequest(id="a", prompt="x", stop=("",))
