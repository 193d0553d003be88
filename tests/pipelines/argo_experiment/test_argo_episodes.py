"""Episodes on the tiny random-weight Qwen2 through the real engine: batching, sharing, caching.

The retriever's encoder here is a bag-of-words hash (fast, deterministic); retrieval with the
real MiniLM is tested in test_argo_retrieval.py.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from gpuflows.models.llm import CallCache, LocalModelConfig
from gpuflows.models.llm.load import load_engine
from gpuflows.pipelines.argo_experiment.corpus import load_corpus
from gpuflows.pipelines.argo_experiment.episodes import EpisodeRunner, build_episodes, call_seed
from gpuflows.pipelines.argo_experiment.prompts import load_prompts
from gpuflows.pipelines.argo_experiment.retrieval import FlatIndex, Retriever
from gpuflows.pipelines.argo_experiment.strategies import ALWAYS, Policy, baseline_policy
from gpuflows.pipelines.argo_experiment.synth import generate, write_synthetic

CAPS = {"decomposer": 6, "retrieval_answer": 6, "reasoner": 6, "synthesizer": 8}


class HashEncoder:
    def encode(self, texts, batch_size=64):
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, zlib.crc32(w.encode()) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("argo")
    _, corpus_dir = write_synthetic(tmp, 2, seed=0)
    corpus = load_corpus(corpus_dir, chunk_words=16, overlap_words=0)
    enc = HashEncoder()
    index = FlatIndex.build(corpus, enc)
    questions, _ = generate(2, seed=0)
    return {"tmp": tmp, "index": index, "enc": enc, "questions": questions[:3]}


def _runner(engine, world, threshold=0.3, **kw):
    retr = Retriever(world["index"], world["enc"], k=2, success_threshold=threshold)
    return EpisodeRunner(
        engine,
        retr,
        load_prompts(),
        max_steps=3,
        delta_r=0.4,
        delta_p=0.3,
        max_new_tokens=CAPS,
        **kw,
    )


def _engine(tmp, cache_name=None, **kw):
    cache = CallCache(tmp / cache_name) if cache_name else None
    return load_engine(LocalModelConfig(spec="tiny-qwen2", **kw), cache=cache)


def test_rerun_makes_zero_model_calls(world):
    engine = _engine(world["tmp"], "rerun.sqlite")
    pols = [baseline_policy("always_retrieve", 0.9), baseline_policy("random", 0.9)]
    first = _runner(engine, world)
    rec1 = first.run(build_episodes(world["questions"], [1], pols))
    assert first.counts["model_calls"] > 0 and first.counts["cache_hits"] == 0
    second = _runner(engine, world)
    rec2 = second.run(build_episodes(world["questions"], [1], pols))
    assert second.counts["model_calls"] == 0
    assert second.counts["cache_hits"] == second.counts["sent"] == first.counts["sent"]
    assert engine.counts["calls"] == first.counts["model_calls"]  # the engine agrees
    assert [r["answer"] for r in rec1] == [r["answer"] for r in rec2]


def test_shared_states_share_calls_not_strategies(world):
    # ARGO with theta_cont=0 and the baselines' theta_star IS Always-Reason in every state:
    # every one of its calls is one Always-Reason makes, so half the requests are shared.
    engine = _engine(world["tmp"], "shared.sqlite")
    twins = [baseline_policy("always_reason", 0.9), Policy("argo", 0.0, 0.9)]
    r = _runner(engine, world)
    recs = r.run(build_episodes(world["questions"], [7], twins))
    assert r.counts["shared_in_batch"] * 2 == r.counts["requests"]
    assert recs[0]["answer"] == recs[1]["answer"] and recs[0]["steps"] == recs[1]["steps"]
    # ARGO retrieving until a higher theta_star shares Always-Retrieve's opening steps; run as
    # separate tasks, the second is served by the call cache for those shared states
    # (every retrieval counts as a success here, so theta_star is what ends the episodes)
    a = _runner(engine, world, threshold=-1.0)
    a.run(build_episodes(world["questions"], [7], [baseline_policy("always_retrieve", 0.5)]))
    b = _runner(engine, world, threshold=-1.0)
    b.run(build_episodes(world["questions"], [7], [Policy("argo", ALWAYS, 0.95)]))
    assert b.counts["cache_hits"] == len(world["questions"]) * 4  # steps 0-1: 2 calls each
    assert b.counts["model_calls"] > 0  # ... and it went further on its own


def test_call_seed_ignores_the_strategy():
    assert call_seed("q1", 42, 0, "decomposer", "ctx") == call_seed(
        "q1", 42, 0, "decomposer", "ctx"
    )
    assert call_seed("q1", 42, 0, "decomposer", "ctx") != call_seed(
        "q1", 42, 1, "decomposer", "ctx"
    )
    assert call_seed("q1", 42, 0, "reasoner", "ctx") != call_seed("q1", 42, 0, "decomposer", "ctx")


def test_batched_equals_sequential_fp32_greedy(world):
    pols = [baseline_policy(s, 0.9) for s in ("always_retrieve", "always_reason", "random")]
    pols.append(Policy("argo", 0.5, 0.9))
    batched = _runner(_engine(world["tmp"]), world, greedy=True)
    rec_b = batched.run(build_episodes(world["questions"], [3], pols))
    seq = _runner(_engine(world["tmp"], batch_size=1), world, greedy=True, sequential=True)
    rec_s = seq.run(build_episodes(world["questions"], [3], pols))
    assert [r["answer"] for r in rec_b] == [r["answer"] for r in rec_s]
    assert [r["steps"] for r in rec_b] == [r["steps"] for r in rec_s]
    assert batched.counts["generate_calls"] < seq.counts["generate_calls"]
    assert seq.counts["generate_calls"] == seq.counts["requests"]  # one call per generate
    assert batched.counts["requests"] == seq.counts["requests"]  # same work asked for


def test_episode_counts_match_the_actions(world):
    r = _runner(_engine(world["tmp"]), world, greedy=True)
    recs = r.run(build_episodes(world["questions"][:1], [0], [baseline_policy("random", 0.9)]))
    rec = recs[0]
    assert rec["requests"] == 2 * rec["retrievals"] + rec["reasoning_steps"] + 1
    assert len(rec["actions"]) <= 3 and rec["strategy"] == "random"
