"""Prefect tasks of ``factor-pipeline``: the three steps, their progress artifacts and the report.

The work itself is in :mod:`gpuflows.pipelines.factor_pipeline`; these tasks choose devices,
load models (after the input checks), publish progress and the tiered report.

* Step 1: :func:`prepare_shards` (generate or find, then validate: bad input fails here, before
  any model loads), :func:`plan_groups`; the flow maps :func:`probe_shard_group` over the
  shard groups -- one per process worker (``task_runner.kind='dask'``: one worker per GPU,
  each task holding one Dask GPU; this replaces ``torchrun --nproc_per_node``).
* Step 2: :func:`sample_step`.
* Step 3: :func:`qa_records`, with a progress artifact (done / failed / total, rate, ETA)
  refreshed by a thread once a second.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact

from gpuflows.pipelines.factor_pipeline import (
    FactorParams,
    QAStats,
    ShardInfo,
    build_body,
    check_vlm,
    error_kinds,
    generate_shards,
    list_shards,
    preflight,
    probe_group,
    qa_step,
    sample_failures,
    sampling_inputs,
    scan_input,
    shard_groups,
    shard_set_digest,
    validate_shards,
    write_manifest,
)
from tasks.artifacts import validate_key
from tasks.progress import RunProgress
from tasks.reports import publish_tiered_report, run_dir

PROGRESS_KEY = "factor-pipeline-progress"
SUMMARY_KEY = "factor-pipeline-summary"


@task(name="factor-out-dir")
def resolve_out_dir(out_dir: str | None) -> str:
    """``out_dir``, or this run's folder under results/factor-pipeline/."""
    out = Path(out_dir) if out_dir else run_dir("factor-pipeline")
    out.mkdir(parents=True, exist_ok=True)
    return str(out.resolve())


@task(name="factor-prepare-shards")
def prepare_shards(params: FactorParams, out_dir: str) -> dict[str, Any]:
    """The shard set (generated when no input is given), validated before any model time."""
    synthetic = params.input_path is None
    if synthetic:
        paths = generate_shards(
            Path(out_dir) / "data",
            n_images=params.n_images,
            n_shards=params.n_shards,
            seed=params.seed,
        )
    else:
        paths = list_shards(params.input_path)
    infos = validate_shards(paths)
    return {
        "infos": infos,
        "images": sum(i.rows for i in infos),
        "synthetic": synthetic,
        "digest": shard_set_digest(paths),
        "name": "generated-shapes" if synthetic else str(params.input_path),
    }


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@task(name="factor-probe-group")
def probe_shard_group(
    group: list[ShardInfo], index: int, out_dir: str, params: FactorParams
) -> dict:
    """One worker's shard group: its VLM loaded once (or its endpoint client made once: group
    ``index`` uses endpoint ``index % len(probe_endpoint_url)``), every unfinished shard probed."""
    per_worker = max(1, params.parquet_sample_size // max(1, params.nproc_per_node))
    endpoint = params.probe_backend == "endpoint"
    urls = params.probe_endpoint_url or []
    return probe_group(
        group,
        Path(out_dir) / "probe",
        vlm=params.vlm,
        device="cpu" if endpoint else _device(),
        batch_size=params.failure_batch_size,
        read_parallel=per_worker,
        max_new_tokens=params.vlm_max_new_tokens,
        backend=params.probe_backend,
        endpoint_url=urls[index % len(urls)] if endpoint else None,
        served_model=params.probe_served_model,
        concurrency=params.probe_concurrency,
        max_attempts=params.max_attempts,
        timeout_s=params.timeout_s,
    )


@task(name="factor-plan-groups")
def plan_groups(prepared: dict[str, Any], params: FactorParams) -> list[list[ShardInfo]]:
    """NPROC_PER_NODE shard groups, round-robin; the VLM spec, or every step-1 endpoint and its
    served model name, checked first (before any worker spends model time)."""
    if params.probe_backend == "endpoint":
        for note in preflight(params.probe_endpoint_url or [], str(params.probe_served_model)):
            get_run_logger().warning("factor probe: %s", note)
    else:
        check_vlm(params.vlm)
    return shard_groups(prepared["infos"], params.nproc_per_node)


def gather_groups(futures: Any, total: int) -> list[dict[str, Any]]:
    """Wait for every shard group's future, advancing the progress artifact as each ends."""
    prog = RunProgress(PROGRESS_KEY, total=max(1, total), what="step-1 shard groups")
    results = []
    for fut in futures:
        results.append(fut.result())
        prog.advance()
    return results


@task(name="factor-finish-probe")
def finish_probe(
    prepared: dict[str, Any], results: list[dict], params: FactorParams, out_dir: str
) -> dict[str, Any]:
    """The manifest of step 1 and its summary."""
    probe_dir = Path(out_dir) / "probe"
    endpoint = params.probe_backend == "endpoint"
    model = params.probe_served_model if endpoint else params.vlm
    extra = {"vlm": model, "backend": params.probe_backend, "groups": len(results)}
    manifest = write_manifest(probe_dir, prepared["infos"], extra)
    out = summarize_probe(prepared, results, manifest, len(results))
    return out | {"errors_by_kind": error_kinds(probe_dir, prepared["infos"]), "model": model}


def summarize_probe(prepared: dict, results: list[dict], manifest: Path, groups: int) -> dict:
    import json

    m = json.loads(manifest.read_text())
    images = sum(r["images"] for r in results)
    seconds = max((r["seconds"] for r in results), default=0.0)
    return {
        "images_in": prepared["images"],
        "records": m["rows"] + m.get("errors", 0),  # every image's outcome: a record or an error
        "answered": m["rows"],
        "errors": m.get("errors", 0),
        "failures": m["failures"],
        "backend": ",".join(sorted({r.get("backend", "local") for r in results})),
        "images_now": images,
        "seconds": seconds,
        "images_per_s": images / seconds if seconds > 0 and images else None,
        "load_s": max((r["load_s"] for r in results), default=0.0),
        "device": ",".join(sorted({r["device"] for r in results})),
        "groups": groups,
        "worker_pids": sorted({r["pid"] for r in results}),
        "synthetic_model": any(r["synthetic_model"] for r in results),
        "manifest": str(manifest),
        "folder": str(manifest.parent),
    }


@task(name="factor-sample")
def sample_step(params: FactorParams, input_path: str, out_path: str) -> dict[str, Any]:
    """Step 2: failure records -> JSONL (seeded sample, base64 images only on request)."""
    files = sampling_inputs(input_path)
    src = Path(input_path)
    return sample_failures(
        files,
        out_path,
        sample_size=params.sample_size,
        seed=params.seed,
        embed_images=params.embed_images,
        processes=params.sample_processes,
        base_dir=src if src.is_dir() else None,
    )


class _QAProgress:
    """A progress artifact refreshed by a thread from the step's live counters."""

    def __init__(self, key: str, total: int) -> None:
        self.total, self.stats = total, None
        self.id = create_progress_artifact(0.0, key=validate_key(key), description="QA starting")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def see(self, stats: QAStats) -> None:
        self.stats = stats

    def _push(self) -> None:
        s = self.stats
        if s is None:
            return
        done = s.done + s.failed + s.skipped
        eta = "unknown" if s.eta_s is None else f"{s.eta_s:.0f} s"
        desc = (
            f"{s.done} done / {s.failed} failed / {s.total} total ({s.skipped} had an outcome), "
            f"{s.rate:.2f} records/s, ETA {eta}"
        )
        update_progress_artifact(self.id, 100.0 * done / max(1, s.total), description=desc)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self._push()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._push()


@task(name="factor-qa")
def qa_records(params: FactorParams, input_path: str, out_dir: str) -> dict[str, Any]:
    """Step 3: input checked, then the endpoint(s) checked or the local engine loaded, then QA."""
    log = get_run_logger()
    ids = scan_input(input_path)  # bad input fails here, before any model time
    backends = None
    if params.qa_backend == "local":
        from gpuflows.models.llm.config import LocalModelConfig
        from gpuflows.models.llm.load import load_engine, resolve_spec
        from gpuflows.pipelines.factor_pipeline import LocalBackend

        resolve_spec(params.qa_model, field="qa_model")
        backends = [LocalBackend(load_engine(LocalModelConfig(spec=params.qa_model)))]
    prog = _QAProgress(PROGRESS_KEY, len(ids))
    try:
        out = qa_step(
            input_path,
            out_dir,
            backends,
            urls=params.endpoint_url,
            served_model=params.served_model if params.qa_backend == "endpoint" else None,
            num_gpus=params.num_gpus,
            concurrency=params.concurrency,
            request_delay=params.request_delay,
            batch_size=params.batch_size,
            max_attempts=params.max_attempts,
            timeout_s=params.timeout_s,
            max_new_tokens=params.qa_max_new_tokens,
            on_progress=prog.see,
            model_name=params.qa_model if params.qa_backend == "local" else None,
        )
    finally:
        prog.close()
    log.info("factor qa: %d qa, %d errors -> %s", out["qa"], out["errors"], out_dir)
    out["model"] = params.qa_model if params.qa_backend == "local" else params.served_model
    return out


@task(name="factor-report")
def publish_report(
    params: FactorParams, steps: dict[str, dict], out_dir: str, data: dict[str, Any] | None
) -> dict[str, Any]:
    """The tiered summary artifact + report.json/report.md under ``out_dir``."""
    from gpuflows.pipelines.factor_pipeline import assess_factor_run

    assessment, lock, notes = assess_factor_run(params, steps, data)
    return publish_tiered_report(
        key=SUMMARY_KEY,
        title="factor-pipeline",
        body_md=build_body(steps, notes),
        assessment=assessment,
        lock=lock,
        payload={"steps": steps},
        out_dir=Path(out_dir),
    )
