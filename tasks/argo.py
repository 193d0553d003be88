"""Tasks of argo-experiment: one cached task per (strategy group, chunk of questions).

* Granularity: a unit is one group's episodes over one chunk (``chunk_size`` questions x seeds),
  run step-synchronously, so each model call is a batch; a few dozen units per run keep Prefect's
  per-task overhead (tens of ms) invisible beside seconds of generation.
* Caching: the house policy (inputs + task source + kernel version). Inputs are the parameters,
  the group, the chunk's questions and the digests of the corpus and prompts; the work folder and
  the call-cache path are left out, so a re-run in a new flow run with the same inputs is a cache
  hit (no model load, no call). Below Prefect's cache, the SQLite call cache answers any call made
  before -- by another unit in a shared state, or by a run whose task cache was cleared.
* VRAM: each unit holds its estimate (placed weights + the batch's KV cache) of the GPU's VRAM
  limit while it runs (``tasks.vram.vram_budget``); nothing is held on the CPU.
* The engine and retriever are loaded once per worker process and reused by its units.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.store.io import results_root
from gpuflows.models.llm import CallCache
from gpuflows.pipelines.argo_experiment import (
    ArgoParams,
    Group,
    Question,
    load_corpus,
    make_backend,
    make_retriever,
    run_unit,
    vram_estimate,
)
from gpuflows.pipelines.argo_experiment.prompts import load_prompts
from tasks.caching import house_cache_policy
from tasks.vram import vram_budget

_LOADED: dict[str, Any] = {}


def _memo(key: str, make: Any) -> Any:
    if key not in _LOADED:
        _LOADED[key] = make()
    return _LOADED[key]


def backend_for(p: ArgoParams, choice: DeviceChoice, cache_path: str) -> Any:
    """The process's backend for these settings (loaded on first use)."""
    fields = (
        "backend",
        "model",
        "dtype",
        "gpus",
        "max_memory_gib",
        "batch_size",
        "endpoint_url",
        "endpoint_model",
    )
    key = json.dumps(
        {k: getattr(p, k) for k in fields} | {"device": choice.device, "cache": cache_path}
    )
    return _memo("backend:" + key, lambda: make_backend(p, choice.device, CallCache(cache_path)))


def retriever_for(p: ArgoParams, corpus_dir: str | None, corpus_digest: str, emb_dir: str) -> Any:
    key = json.dumps(
        [corpus_digest, p.top_k, p.success_threshold, p.chroma_path, p.chroma_collection]
    )

    def make() -> Any:
        corpus = None
        if p.chroma_path is None:
            corpus = load_corpus(
                corpus_dir or "",
                chunk_words=p.chunk_words,
                overlap_words=min(20, p.chunk_words // 4),
            )
        return make_retriever(p, corpus, emb_dir, "cpu")

    return _memo("retriever:" + key, make)


@task(
    name="argo-unit",
    task_run_name="argo-{group.name}-chunk{chunk_no}",
    cache_policy=house_cache_policy(exclude=("corpus_dir", "emb_dir", "cache_path")),
    persist_result=True,
)
def run_group_chunk(
    params: ArgoParams,
    group: Group,
    chunk_no: int,
    questions: list[Question],
    choice: DeviceChoice,
    corpus_digest: str,
    prompts_digest: str,
    corpus_dir: str | None,
    emb_dir: str,
    cache_path: str,
) -> dict[str, Any]:
    """One group's episodes over one chunk of questions; records and call counts."""
    log = get_run_logger()
    backend = backend_for(params, choice, cache_path)
    retriever = retriever_for(params, corpus_dir, corpus_digest, emb_dir)
    prompts = load_prompts(params.prompts)
    rows = len(questions) * len(params.seeds) * len(group.policies)
    with vram_budget(vram_estimate(backend, rows=rows), device=choice) as grant:
        out = run_unit(backend, retriever, prompts, params, group, questions)
    out["model"] = backend_record(backend, params)
    out["vram"] = {
        "occupy_gib": grant.occupy_gib,
        "basis": grant.estimate_basis,
        "limit": grant.limit,
    }
    c = out["counts"]
    log.info(
        "argo %s chunk %d: %d requests, %d model calls, %d cache hits, %d shared",
        group.name,
        chunk_no,
        c["requests"],
        c["model_calls"],
        c["cache_hits"],
        c["shared_in_batch"],
    )
    return out


def run_unit_task(*args: Any) -> dict[str, Any]:
    """:func:`run_group_chunk`, its result marked ``from_task_cache`` when Prefect's cache served
    it (the unit did not run: no model load, no call in this run)."""
    state = run_group_chunk(*args, return_state=True)
    out = dict(state.result())
    out["from_task_cache"] = state.name == "Cached"
    return out


def backend_record(backend: Any, p: ArgoParams) -> dict[str, Any]:
    """Which model answered (identity, source, synthetic, device, dtype) for the run's record;
    call counts live in each unit's ``counts``, not here (the backend is shared by units)."""
    if hasattr(backend, "record"):
        rec = backend.record()
    else:
        rec = {"backend": "endpoint", "model": backend.identity, "source": p.endpoint_model}
        rec |= {"synthetic": False, "device": "endpoint"}
    return {k: v for k, v in rec.items() if k not in ("counts", "cache", "model_seconds")}


def work_paths() -> dict[str, Path]:
    """Where argo runs on this host keep shared state: generated inputs and corpus embeddings
    (``work``, ``emb``) and the one call cache (``calls``), under the results root."""
    base = results_root() / "argo-experiment"
    return {"work": base / "work", "emb": base / "work" / "emb", "calls": base / "calls.sqlite"}
