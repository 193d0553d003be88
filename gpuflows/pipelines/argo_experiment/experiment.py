"""The experiment's compute steps, Prefect-free: inputs, backend, one (group, chunk) unit, totals.

``flows/argo_experiment.py`` wires these through ``tasks/argo.py``:

1. :func:`load_inputs` -- questions (checked, exclusions counted) and the corpus folder (or the
   generated set), before any model loads;
2. :func:`plan` -- thresholds per c_r, the deduplicated groups, the chunks of questions;
3. :func:`run_unit` -- one group's episodes over one chunk, step-synchronous, through the
   backend (its call cache shared by every unit and run);
4. :func:`totals` -- calls asked for vs made vs the seeds' count, cache and sharing counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuflows.core.evidence.envlock import DatasetRef
from gpuflows.core.faults import InputError
from gpuflows.models.llm import CallCache, EndpointConfig, LocalModelConfig
from gpuflows.pipelines.argo_experiment.corpus import Corpus, load_corpus
from gpuflows.pipelines.argo_experiment.data import Question, QuestionSet, load_questions, select
from gpuflows.pipelines.argo_experiment.episodes import EpisodeRunner, build_episodes
from gpuflows.pipelines.argo_experiment.params import ArgoParams
from gpuflows.pipelines.argo_experiment.prompts import PromptSet, load_prompts
from gpuflows.pipelines.argo_experiment.retrieval import (
    ChromaIndex,
    Retriever,
    cached_flat_index,
    minilm_encoder,
)
from gpuflows.pipelines.argo_experiment.strategies import Group, plan_groups
from gpuflows.pipelines.argo_experiment.synth import GENERATOR_VERSION, load_synthetic


@dataclass
class Inputs:
    qset: QuestionSet
    questions: list[Question]
    corpus: Corpus | None
    prompts: PromptSet
    dataset: DatasetRef
    chroma_path: str | None = None

    @property
    def corpus_dir(self) -> str | None:
        return self.corpus.folder if self.corpus else None

    @property
    def corpus_digest(self) -> str:
        return self.corpus.digest if self.corpus else f"chroma:{self.chroma_path}"


def load_inputs(p: ArgoParams, work_dir: str | Path) -> Inputs:
    """Questions, corpus and prompts, all checked; bad input raises ``InputError`` here."""
    prompts = load_prompts(p.prompts)
    if p.questions is None:
        n = max(p.n_questions, 1)
        qset = load_synthetic(Path(work_dir) / "synthetic", n, seed=p.synthetic_seed)
        corpus_dir: str | None = str(Path(work_dir) / "synthetic" / "corpus")
    else:
        qset = load_questions(p.questions)
        corpus_dir = p.corpus
    questions = select(qset, list(p.difficulties), p.n_questions)
    corpus = None
    if p.chroma_path is None:
        corpus = load_corpus(
            corpus_dir or "", chunk_words=p.chunk_words, overlap_words=min(20, p.chunk_words // 4)
        )
    corpus_note = corpus.digest[:16] if corpus else "chroma:" + str(p.chroma_path)
    dataset = dataset_ref(qset, len(questions), corpus_note)
    return Inputs(qset, questions, corpus, prompts, dataset, p.chroma_path)


def dataset_ref(qset: QuestionSet, n_used: int, corpus_note: str) -> DatasetRef:
    """The questions' identity: our generator's name and version for the synthetic set; a
    user's file by its own name and digest, with no version of ours."""
    return DatasetRef(
        name="argo-synthetic" if qset.synthetic else Path(qset.source).name,
        version=GENERATOR_VERSION if qset.synthetic else "",
        digest=qset.digest,
        synthetic=qset.synthetic,
        description=f"{qset.source}: {n_used} questions used of {len(qset.questions)} kept "
        f"({qset.rows_read} rows read, excluded {qset.excluded or 'none'}); corpus {corpus_note}",
    )


def plan(p: ArgoParams, questions: list[Question]) -> dict[str, Any]:
    """Groups, thresholds and the chunks of question indices (``chunk_size`` each)."""
    import time

    groups, thresholds = plan_groups(p)
    chunks = [
        list(range(i, min(i + p.chunk_size, len(questions))))
        for i in range(0, len(questions), p.chunk_size)
    ]
    return {
        "groups": groups,
        "thresholds": thresholds,
        "chunks": chunks,
        "units": len(groups) * len(chunks),
        "started": time.perf_counter(),
    }


def local_config(p: ArgoParams, device: str) -> LocalModelConfig:
    """The engine config for the chosen device ('cpu' / 'cuda:N'; ``gpus`` spreads layers)."""
    if p.gpus:
        return LocalModelConfig(
            spec=p.model,
            dtype=p.dtype,
            device="auto",
            gpus=p.gpus,
            max_memory_gib=p.max_memory_gib,
            batch_size=p.batch_size,
        )
    return LocalModelConfig(spec=p.model, dtype=p.dtype, device=device, batch_size=p.batch_size)


def make_backend(p: ArgoParams, device: str, cache: CallCache) -> Any:
    """The local engine (loaded) or the endpoint client, both with ``generate(requests)``."""
    if p.backend == "endpoint":
        from gpuflows.models.llm.endpoint import EndpointClient

        cfg = EndpointConfig(base_url=p.endpoint_url or "", model=p.endpoint_model or "")
        return EndpointClient(cfg, cache)
    from gpuflows.models.llm.load import load_engine

    return load_engine(local_config(p, device), cache=cache)


def make_retriever(
    p: ArgoParams, corpus: Corpus | None, cache_dir: str | Path, device: str
) -> Retriever:
    encoder = minilm_encoder(device="cpu" if device == "cpu" else device)
    if p.chroma_path is not None:
        index: Any = ChromaIndex(p.chroma_path, p.chroma_collection)
    elif corpus is None:
        raise InputError("no corpus: give corpus=<folder> or chroma_path")
    else:
        index = cached_flat_index(corpus, encoder, cache_dir)
    return Retriever(index, encoder, k=p.top_k, success_threshold=p.success_threshold)


def run_unit(
    backend: Any,
    retriever: Retriever,
    prompts: PromptSet,
    p: ArgoParams,
    group: Group,
    questions: list[Question],
) -> dict[str, Any]:
    """One group's episodes over ``questions`` x seeds, step-synchronous; records + counts."""
    runner = EpisodeRunner(
        backend,
        retriever,
        prompts,
        max_steps=p.max_steps,
        delta_r=p.delta_r,
        delta_p=p.delta_p,
        greedy=p.decoding == "greedy",
        max_new_tokens=p.max_new_tokens,
    )
    records = runner.run(build_episodes(questions, list(p.seeds), group.policies))
    return {
        "group": group.name,
        "episodes": records,
        "counts": dict(runner.counts),
        "retrieval_queries": retriever.queries,
    }


def seed_way_calls(rows: list[dict[str, Any]], episodes: list[dict[str, Any]]) -> int:
    """Calls the seeds' runner makes: every row (question x strategy x c_r x seed) re-run on its
    own, each call separately, nothing shared or cached."""
    per = {e["episode"]: e["requests"] for e in episodes}
    return sum(per[r["episode"]] for r in rows)


def totals(units: list[dict[str, Any]], rows: list[dict], episodes: list[dict]) -> dict[str, Any]:
    """Summed counts of the units that ran, and the seeds' count for the same rows.

    A unit served by Prefect's task cache made no call in this run: its counts are left out
    (``units_from_task_cache`` says how many; its episodes still give rows)."""
    keys = (
        "requests",
        "sent",
        "shared_in_batch",
        "cache_hits",
        "model_calls",
        "errors",
        "generate_calls",
    )
    ran = [u for u in units if not u.get("from_task_cache")]
    out: dict[str, Any] = {k: sum(u["counts"].get(k, 0) for u in ran) for k in keys}
    out["units"] = len(units)
    out["units_from_task_cache"] = len(units) - len(ran)
    out["episodes_run"] = len(episodes)
    out["rows"] = len(rows)
    out["seed_way_calls"] = seed_way_calls(rows, episodes)
    out["calls_saved_ratio"] = (
        out["seed_way_calls"] / out["model_calls"] if out["model_calls"] else None
    )
    return out


def vram_estimate(backend: Any, *, rows: int, tokens_per_row: int = 2048) -> Any:
    """The VRAM a unit needs on the engine's first device: its placed weights (the meta-device
    plan when layers span GPUs, else parameters x dtype) plus the KV cache of ``rows`` x
    ``tokens_per_row`` tokens (2 x layers x kv_heads x head_dim x dtype bytes per token)."""
    from gpuflows.core.memory.budget import VramEstimate, dtype_bytes
    from gpuflows.models.llm.placement import kv_bytes_per_token

    model = getattr(backend, "model", None)
    if model is None:  # an endpoint: nothing on our GPUs
        return VramEstimate(nbytes=0, basis="endpoint backend: no local weights")
    dtype = str(model.dtype).removeprefix("torch.")
    tokens = rows * tokens_per_row
    plan = getattr(backend, "placement", None)
    if plan is not None:
        first = min(d for d in plan.weight_bytes if isinstance(d, int))
        nbytes = plan.vram_bytes(tokens)[first]
        basis = f"placement plan on GPU {first}: weights + KV of {tokens:,} tokens"
    else:
        weights = sum(p.numel() for p in model.parameters()) * dtype_bytes(dtype)
        kv = kv_bytes_per_token(model.config, dtype) * tokens
        nbytes = int(weights + kv)
        basis = f"weights {weights:,} B + KV {kv:,} B ({rows} rows x {tokens_per_row} tokens)"
    return VramEstimate(nbytes=int(nbytes), basis=basis)
