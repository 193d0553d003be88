"""Tasks of the ``batch-eval`` flow: data, model, expansion, ablation, baseline, report.

Granularity: one task per section (seconds to minutes of work each). The MiniLM encoder is
loaded once per process (:func:`encoder_for`) and never pickled into a result; tasks pass the
fusion head by path and digest. Cache keys: the house policy (inputs by content digest + task
source + kernel version), the dataset by its digest, the head by its weights digest; the
production baseline is a measurement and is never served from a cache.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.memory.budget import VramEstimate, estimate_model
from gpuflows.core.store.io import atomic_write_json, read_json
from gpuflows.models.reranker import RERANKERS, TextEncoder, load_head
from gpuflows.pipelines.batch_eval import ablation, expansion, lite, metrics, scoring, serving
from gpuflows.pipelines.batch_eval.generate import generate, grade, query_text
from gpuflows.pipelines.batch_eval.params import BatchEvalParams
from gpuflows.pipelines.batch_eval.schema import BatchEvalData, load_dataset, write_dataset
from tasks.caching import house_cache_policy
from tasks.vram import vram_budget

_ENCODERS: dict[str, TextEncoder] = {}
SERVICE = "batch-eval-reranker"
VERSION = "batch-eval-2026.12.1"
"""In every cache key here: bump when the model or statistics code changes (a task's key holds
its own source only, not that of the functions it calls)."""


class SafetyGate:
    """Seed 000's safety gate: wall-time limit (and VRAM ceiling on a GPU) checked between steps;
    a breach stops the run with a clear error after the last completed (atomic) write."""

    def __init__(self, max_wall_s: float, vram_ceiling_gb: float, device: str):
        self.t0, self.max_wall_s, self.ceiling, self.device = (
            time.monotonic(),
            max_wall_s,
            vram_ceiling_gb,
            device,
        )

    def check(self, where: str) -> None:
        elapsed = time.monotonic() - self.t0
        if elapsed > self.max_wall_s:
            raise TimeoutError(f"safety gate at {where}: {elapsed:.0f} s > max_wall_s")
        if self.device.startswith("cuda"):
            import torch

            used = torch.cuda.memory_allocated(self.device) / 1e9
            if used > 0.9 * self.ceiling:
                raise MemoryError(f"safety gate at {where}: {used:.1f} GB > 90 % of the ceiling")


def encoder_for(device: str) -> TextEncoder:
    if device not in _ENCODERS:
        _ENCODERS[device] = TextEncoder(device=device)
    return _ENCODERS[device]


def vram_need(data_visual_dim: int, batch: int) -> VramEstimate:
    """MiniLM (22.7 M params, fp32) + head + activation margin for ``batch`` queries."""
    n = 22_713_216 + 384 * (data_visual_dim + 2) + 2
    return estimate_model(n, "float32", activation_margin=0.5, name=f"MiniLM + head, batch {batch}")


@task(cache_policy=NO_CACHE)
def load_data(p: BatchEvalParams, out: Path) -> BatchEvalData:
    """The dataset: a validated folder, or the generated default (written beside the run)."""
    if p.data_path:
        return load_dataset(p.data_path)
    data = generate(n_train=p.n_train, n_test=p.n_test, n_candidates=p.n_candidates, seed=p.seed)
    write_dataset(data, out / "dataset")
    return data


@task(cache_policy=house_cache_policy(version=VERSION, exclude=("data", "choice")))
def train(
    data: BatchEvalData,
    data_digest: str,
    epochs: int,
    seed: int,
    choice: DeviceChoice,
    heads_dir: str,
) -> dict[str, Any]:
    """Fit the fusion head on the train split; its path (content-addressed under ``heads_dir``,
    which is in the cache key so a cached result never points into another results folder),
    digest and training figures."""
    enc = encoder_for(choice.device)
    ids = data.split("train")["query_id"].tolist()
    lists = scoring.build_lists(data, enc, ids)
    name = f"{data_digest.split(':')[-1][:16]}-s{seed}-e{epochs}.safetensors"
    out = Path(heads_dir) / name
    _, rep = scoring.fit(enc, lists, epochs=epochs, seed=seed, out=out)
    get_run_logger().info("fusion head: %d epochs in %.1f s", rep.epochs, rep.seconds)
    return {**rep.__dict__, "encoder_digest": enc.weights_digest}


def _model(head: dict, visual_dim: int, device: str):
    from gpuflows.core.evidence.digest import file_digest

    path = Path(head["weights_path"])
    if not path.exists() or file_digest(path) != head["weights_digest"]:
        raise RuntimeError(
            f"fusion head {path} is missing or differs from {head['weights_digest']}: "
            "delete the cached train result (or bump tasks.batch_eval.VERSION) and re-run"
        )
    enc = encoder_for(device)
    return RERANKERS["minilm-fusion"](enc, load_head(head["weights_path"], visual_dim)), enc


@task(cache_policy=house_cache_policy(version=VERSION, exclude=("data", "choice")))
def expand(
    data: BatchEvalData,
    data_digest: str,
    head: dict,
    p: BatchEvalParams,
    choice: DeviceChoice,
    out: str,
) -> dict[str, Any]:
    """Expand the test split to the target size and hard share; the expanded set on disk."""
    model, enc = _model(head, data.visual_dim, choice.device)
    base = data.split("test")["query_id"].tolist()
    lists = scoring.build_lists(data, enc, base)
    text = RERANKERS["text-only"](enc)
    diff = scoring.per_query(model, lists)["ndcg10"] - scoring.per_query(text, lists)["ndcg10"]
    new, res = expansion.expand(
        data,
        base,
        model,
        enc,
        target_size=p.target_size,
        hard_share=p.hard_share,
        hard_below=p.hard_ndcg_below,
        compose=query_text,
        grade=grade,
        diff_sd=float(diff.std(ddof=1)),
        seed=p.seed,
    )
    files = write_dataset(new, Path(out) / "expanded")
    return {
        "result": res.model_dump(),
        "digest": new.digest(),
        "files": {k: str(v) for k, v in files.items()},
    }


@task(cache_policy=NO_CACHE)
def load_expanded(expanded: dict[str, Any], like: BatchEvalData) -> BatchEvalData:
    """The expanded set read back from its files (digest checked), with its origin's provenance
    (a generated base keeps the expanded set synthetic)."""
    data = load_dataset(Path(expanded["files"]["queries"]).parent)
    data.name, data.version = like.name + "-expanded", like.version
    data.synthetic, data.description = like.synthetic, like.description + " (expanded)"
    if data.digest() != expanded["digest"]:
        raise RuntimeError(f"expanded set changed on disk: {data.digest()} != {expanded['digest']}")
    return data


@task(cache_policy=house_cache_policy(version=VERSION, exclude=("data", "choice")))
def ablate(
    data: BatchEvalData,
    data_digest: str,
    head: dict,
    query_ids: list[str],
    p: BatchEvalParams,
    choice: DeviceChoice,
    out: str,
) -> dict[str, Any]:
    """Modality ablation on the expanded set; the baseline's TREC run and qrels, re-scored by
    ir-measures."""
    model, enc = _model(head, data.visual_dim, choice.device)
    lists = scoring.build_lists(data, enc, query_ids)
    res = ablation.run_ablation(
        model,
        lists,
        threshold=p.ablation_threshold,
        n_bootstrap=p.n_bootstrap,
        n_permutations=p.n_permutations,
        seed=p.seed,
    )
    scores = scoring.score(model, lists)
    qrels = metrics.write_qrels(
        Path(out) / "qrels.txt", lists.qids, lists.cand_ids, lists.rel, lists.mask
    )
    run = metrics.write_run(
        Path(out) / "run.txt", lists.qids, lists.cand_ids, scores, lists.mask, model.name
    )
    lib = metrics.library_ndcg10(qrels, run)
    return {
        **res.model_dump(),
        "trec": {"qrels": str(qrels), "run": str(run)},
        "library_ndcg10": sum(lib.get(q, 0.0) for q in lists.qids) / len(lists.qids),
    }


@task(cache_policy=NO_CACHE)
def measure_baseline(
    data: BatchEvalData, head: dict, query_ids: list[str], p: BatchEvalParams, choice: DeviceChoice
) -> dict[str, Any]:
    """Offline and server scenarios, compliance gain, SLO checks (a measurement: never cached)."""
    model, enc = _model(head, data.visual_dim, choice.device)
    lists = scoring.build_lists(data, enc, query_ids)
    fn = serving.model_score_fn(model)
    kw = {"batch_size": p.batch_size, "warmup": p.warmup, "timeout_ms": p.request_timeout_ms}
    with vram_budget(vram_need(data.visual_dim, p.batch_size), device=choice):
        off = serving.offline(fn, lists, n_requests=p.n_requests, device=choice.device, **kw)
        srv = serving.server(
            fn,
            lists,
            n_requests=p.n_requests,
            rate_qps=p.server_rate_qps,
            device=choice.device,
            seed=p.seed,
            **kw,
        )
    gain = serving.compliance_gain(
        model, RERANKERS["text-only"](enc), lists, n_boot=p.n_bootstrap, seed=p.seed
    )
    checks = serving.slo_checks(
        srv,
        gain,
        p95_ms_max=p.p95_ms_max,
        error_rate_max=p.error_rate_max,
        gain_min=p.compliance_gain_min,
    )
    return {
        "offline": off.model_dump(),
        "server": srv.model_dump(),
        "gain": gain.model_dump(),
        "checks": [c.model_dump() for c in checks],
    }


@task(cache_policy=NO_CACHE)
def cotrr_lite(
    data: BatchEvalData, head: dict, query_ids: list[str], p: BatchEvalParams, choice: DeviceChoice
) -> dict[str, Any]:
    """CoTRR-Lite: the lighter configuration served, p95 <= 150 ms and peak <= 512 MB checked."""
    model, enc = _model(head, data.visual_dim, choice.device)
    lists = scoring.build_lists(data, enc, query_ids)
    with vram_budget(vram_need(data.visual_dim, p.batch_size), device=choice):
        res = lite.run_lite(
            model,
            lists,
            n_requests=p.n_requests,
            rate_qps=p.server_rate_qps,
            batch_size=p.batch_size,
            warmup=p.warmup,
            timeout_ms=p.request_timeout_ms,
            device=choice.device,
            seed=p.seed,
        )
    return res.model_dump()


@task(cache_policy=NO_CACHE)
def compare_and_store(
    baseline: dict[str, Any], device: str, promote: bool, store: str
) -> dict[str, Any]:
    """Compare with the stored baseline (raw samples), emit events, promote when allowed.

    Events: ``gpuflows.slo.breached`` when an SLO check failed, ``gpuflows.slo.regressed``
    when latency regressed beyond noise against the stored baseline of this device. A run
    becomes the baseline only when ``promote`` (T2 or better and every SLO check passed).
    """
    path = Path(store) / f"{SERVICE}--{device.split(':')[0]}.json"
    resource = {"prefect.resource.id": f"gpuflows.service.{SERVICE}", "gpuflows.device": device}
    events, regression = [], None
    failed = [c for c in baseline["checks"] if not c["passed"]]
    if failed:
        emit_event(event="gpuflows.slo.breached", resource=resource, payload={"failed": failed})
        events.append("gpuflows.slo.breached")
    cur = baseline["server"]["latencies_ms"]
    if path.exists() and cur:
        old = read_json(path)
        regressed, nums = serving.latency_regressed(cur, old["server"]["latencies_ms"])
        regression = {"regressed": regressed, **nums, "baseline": str(path)}
        if regressed:
            emit_event(event="gpuflows.slo.regressed", resource=resource, payload=regression)
            events.append("gpuflows.slo.regressed")
    if promote:
        atomic_write_json(path, baseline)
    return {"events": events, "regression": regression, "promoted": promote, "path": str(path)}
