"""Bench: the ARGO experiment the seeds' way vs ours, same model, questions, prompts and seeds.

* Seeds' way: every (c_r point, strategy, question, seed) is its own episode, run one at a time,
  one ``generate`` per model call (batch size 1), no call cache -- every c_r point re-run.
* Ours: the deduplicated plan (baselines once for all c_r points, ARGO once per distinct
  (theta_cont, theta_star)), step-synchronous batches, per-call seeds from the state so shared
  states share calls, the SQLite call cache; then the same again (a re-run: zero model calls).

Figures: calls issued, model calls, wall time, calls/s, and the projected time of the seed's
full experiment (1000 questions x 4 strategies x 10 c_r points: 400,000 calls in the seed's own
count): the seeds' way at its measured calls/s; ours at its measured *seed-equivalent* rate (the
seeds' calls for the same rows divided by our wall time), which is conservative for larger runs
(bigger batches). Retrieval uses the real MiniLM and the flat index in both.

    .venv/bin/python bench/argo_throughput.py                       # CPU, SmolLM2-135M
    python bench/argo_throughput.py --model random-qwen2.5-7b --dtype bfloat16 --device cuda \\
        --n 8 --tokens 64                                            # GPU host

Writes ``bench/results/argo-throughput-<device>.json``; the last line printed is the summary.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.record import RESULTS, fig, provenance, write_result  # noqa: E402
from gpuflows.models.llm import CallCache, LocalModelConfig  # noqa: E402
from gpuflows.pipelines.argo_experiment import ArgoParams, plan_groups  # noqa: E402
from gpuflows.pipelines.argo_experiment.corpus import load_corpus  # noqa: E402
from gpuflows.pipelines.argo_experiment.data import select  # noqa: E402
from gpuflows.pipelines.argo_experiment.episodes import EpisodeRunner, build_episodes  # noqa: E402
from gpuflows.pipelines.argo_experiment.prompts import load_prompts  # noqa: E402
from gpuflows.pipelines.argo_experiment.retrieval import (  # noqa: E402
    Retriever,
    cached_flat_index,
    minilm_encoder,
)
from gpuflows.pipelines.argo_experiment.strategies import Policy, baseline_policy  # noqa: E402
from gpuflows.pipelines.argo_experiment.synth import load_synthetic  # noqa: E402

SEED_FULL_CALLS = 400_000  # the seed's own count: 1000 q x 4 strategies x 10 c_r x ~10 calls


def random_qwen25_7b(
    device: str, dtype: str, cache: CallCache | None, batch_size: int | None, batching: str
):
    """A random-weight model of Qwen2.5-7B's architecture (same shapes and cost), on ``device``,
    with the tiny byte-level tokenizer (ids fit the 152,064-token vocabulary)."""
    from gpuflows.models.llm.random_arch import random_arch_engine

    return random_arch_engine(
        "random-qwen2.5-7b",
        device=device,
        dtype=dtype,
        cache=cache,
        batch_size=batch_size,
        batching=batching,
    )


def engine(args, cache: CallCache | None, batch_size: int | None, batching: str = "auto"):
    """The engine; the seeds' way takes ``batching="bucketed"`` at batch 1: one plain
    ``generate`` per call, as the seeds run it (refill's slot bookkeeping is for many rows)."""
    if args.model == "random-qwen2.5-7b":
        return random_qwen25_7b(args.device, args.dtype, cache, batch_size, batching)
    from gpuflows.models.llm.load import load_engine

    cfg = LocalModelConfig(
        spec=args.model,
        dtype=args.dtype,
        device=args.device,
        batch_size=batch_size,
        batching=batching,
    )
    return load_engine(cfg, cache=cache)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=1, help="questions per difficulty")
    ap.add_argument(
        "--c-r", type=float, nargs="+", default=[0.005, 0.010, 0.015, 0.020, 0.021, 0.025, 0.050]
    )
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=16, help="max new tokens, every role")
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="argo-bench-"))
    caps = dict.fromkeys(("decomposer", "retrieval_answer", "reasoner", "synthesizer"), args.tokens)
    p = ArgoParams(
        n_questions=args.n,
        c_r=args.c_r,
        max_steps=args.max_steps,
        max_new_tokens=caps,
        chunk_words=40,
        model=args.model,
    )
    qset = load_synthetic(tmp / "syn", args.n)
    questions = select(qset, list(p.difficulties), p.n_questions)
    corpus = load_corpus(tmp / "syn" / "corpus", chunk_words=40, overlap_words=10)
    enc = minilm_encoder()
    index = cached_flat_index(corpus, enc, tmp / "emb")
    prompts = load_prompts()
    groups, thresholds = plan_groups(p)

    def runner(backend, sequential: bool) -> EpisodeRunner:
        return EpisodeRunner(
            backend,
            Retriever(index, enc, k=p.top_k),
            prompts,
            max_steps=p.max_steps,
            delta_r=p.delta_r,
            delta_p=p.delta_p,
            max_new_tokens=caps,
            sequential=sequential,
        )

    # -- the seeds' way -------------------------------------------------------------------
    seq_engine = engine(args, None, 1, "bucketed")
    t0 = time.perf_counter()
    seed_calls = 0
    seed_answers: dict[str, str] = {}
    for row in thresholds:
        for s in p.strategies:
            pol = (
                Policy("argo", row["theta_cont"], row["theta_star"])
                if s == "argo"
                else baseline_policy(s, p.baseline_theta_star)
            )
            r = runner(seq_engine, True)
            for rec in r.run(build_episodes(questions, list(p.seeds), [pol])):
                seed_answers[f"{rec['episode']}"] = rec["answer"]
            seed_calls += r.counts["model_calls"]
    seed_wall = time.perf_counter() - t0
    del seq_engine

    # -- ours ---------------------------------------------------------------------------------
    cache = CallCache(tmp / "calls.sqlite")
    ours_engine = engine(args, cache, args.batch_size)
    ours = {
        "requests": 0,
        "model_calls": 0,
        "cache_hits": 0,
        "shared_in_batch": 0,
        "generate_calls": 0,
    }
    t0 = time.perf_counter()
    ours_answers: dict[str, str] = {}
    for g in groups:
        r = runner(ours_engine, False)
        for rec in r.run(build_episodes(questions, list(p.seeds), g.policies)):
            ours_answers[rec["episode"]] = rec["answer"]
        for k in ours:
            ours[k] += r.counts[k]
    ours_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    rerun_calls = 0
    for g in groups:
        r = runner(ours_engine, False)
        r.run(build_episodes(questions, list(p.seeds), g.policies))
        rerun_calls += r.counts["model_calls"]
    rerun_wall = time.perf_counter() - t0

    same = sum(seed_answers.get(k) == v for k, v in ours_answers.items())
    seed_rate = seed_calls / seed_wall
    equiv_rate = seed_calls / ours_wall
    result = {
        "name": "argo-throughput",
        "device": args.device,
        **provenance(),
        "setup": {
            "model": args.model,
            "dtype": args.dtype,
            "questions": len(questions),
            "c_r_points": len(args.c_r),
            "strategies": list(p.strategies),
            "max_steps": args.max_steps,
            "max_new_tokens": args.tokens,
            "groups": [g.name for g in groups],
            "decoding": p.decoding,
            "engine": ours_engine.record(),
        },
        "figures": {
            "seed_way_calls": fig(seed_calls, "calls"),
            "seed_way_wall": fig(round(seed_wall, 2), "s"),
            "seed_way_calls_per_s": fig(round(seed_rate, 3), "calls/s"),
            "ours_requests": fig(ours["requests"], "requests"),
            "ours_model_calls": fig(ours["model_calls"], "calls"),
            "ours_cache_hits": fig(ours["cache_hits"], "calls"),
            "ours_shared_in_batch": fig(ours["shared_in_batch"], "calls"),
            "ours_generate_batches": fig(ours["generate_calls"], "batches"),
            "ours_wall": fig(round(ours_wall, 2), "s"),
            "ours_model_calls_per_s": fig(round(ours["model_calls"] / ours_wall, 3), "calls/s"),
            "ours_seed_equivalent_calls_per_s": fig(round(equiv_rate, 3), "calls/s"),
            "speedup_wall": fig(round(seed_wall / ours_wall, 2), "x"),
            "rerun_model_calls": fig(rerun_calls, "calls"),
            "rerun_wall": fig(round(rerun_wall, 2), "s"),
            "answers_identical_to_seed_way": fig(f"{same}/{len(ours_answers)}", "episodes"),
            "projected_seed_full_seed_way": fig(round(SEED_FULL_CALLS / seed_rate / 3600, 1), "h"),
            "projected_seed_full_ours": fig(round(SEED_FULL_CALLS / equiv_rate / 3600, 2), "h"),
        },
    }
    path = write_result(RESULTS / f"argo-throughput-{args.device.split(':')[0]}.json", result)
    f = result["figures"]
    print(f"wrote {path}")
    print(
        f"argo-throughput {args.model} on {args.device}: seeds' way {seed_calls} calls in "
        f"{seed_wall:.1f} s ({seed_rate:.2f} calls/s); ours {ours['model_calls']} model calls "
        f"({ours['cache_hits']} cached, {ours['shared_in_batch']} shared) in {ours_wall:.1f} s = "
        f"{f['speedup_wall']['value']}x faster; re-run {rerun_calls} calls; seed's full "
        f"experiment projected {f['projected_seed_full_seed_way']['value']} h -> "
        f"{f['projected_seed_full_ours']['value']} h"
    )


if __name__ == "__main__":
    main()
