"""Step 1, probing-factor generation: predict -> complete template -> verify, batch by batch.

One worker per shard group (:func:`shard_groups`: round-robin) runs its shards through one
vision-language backend, made once per worker:

* ``backend='local'``: the VLM loaded in this process (:func:`load_vlm`: the image-text-to-text
  engine of :mod:`gpuflows.models.llm.vlm_engine`; one process worker per GPU);
* ``backend='endpoint'``: an OpenAI-compatible server (``python -m gpuflows.serve --model
  tiny-vlm``, vLLM, SGLang, a hosted API) through :class:`~gpuflows.models.llm.endpoint.EndpointClient`,
  images sent as base64 data-URL parts, ``concurrency`` requests in flight per endpoint (default:
  the batch size), retries with backoff and ``Retry-After``; worker ``g`` uses endpoint
  ``g % len(endpoint_url)``.

Per batch of FAILURE_BATCH_SIZE images, three calls per record, one stage after the other, each
stage's calls of the batch sent together (one engine batch, or concurrently to the endpoint):

1. **predict** -- "What is in the image? Answer with a colour and a shape.";
2. **complete template** -- "Complete the sentence: The object in the image is";
3. **verify** -- "Does the image show a {label}? Answer yes or no.".

A record fails when the prediction misses the label's colour or shape, or the verify answer is
not "yes"; its ``failure_key`` names what failed (``color``, ``shape``, ``verify``, joined by
``+``). With the tiny random-weight VLM (``vlm='tiny-vlm'``) nearly every record fails: that is
synthetic output, for shape and speed, not a finding. Error isolation as in step 3: a record
whose call fails (after the client's retries; a 4xx is not retried) goes to the shard's errors
file with its stage, kind, status, reason and attempts, and takes no further calls; it never
fails its shard.

Output per shard: ``<out>/<shard>.jsonl`` (one record per image answered: id, shard, row, label,
prediction, completion, verify, verified, failure, failure_key, attempts, image_path, meta) and
``<out>/errors/<shard>.jsonl`` (the records whose calls failed), each written to a temporary file
and renamed, then ``<shard>.done.json`` (rows, errors, failures, seconds, the shard's digest); a
shard with a matching done file is skipped on a re-run. :func:`write_manifest` joins the done
files into ``manifest.json``. Images stored as bytes are written once to ``<out>/images/<id>.<ext>``
so later steps can point at them (``image_path``, relative to ``<out>``). Up to ``read_parallel``
shards are read ahead by threads (pyarrow), one shard's batches at a time each, never the whole
set.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import orjson

from gpuflows.core.evidence.digest import file_digest
from gpuflows.core.store.io import atomic_write_bytes, atomic_write_json
from gpuflows.models.llm.config import LLMRequest
from gpuflows.pipelines.factor_pipeline.schema import ShardInfo, iter_batches

TINY_VLM = "tiny-vlm"
PREDICT = "What is in the image? Answer with a colour and a shape."
COMPLETE = "Complete the sentence: The object in the image is"
VERIFY = "Does the image show a {label}? Answer yes or no."
Backend = Literal["local", "endpoint"]
_EXT = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp"}


def shard_groups(infos: list[ShardInfo], n: int) -> list[list[ShardInfo]]:
    """``n`` groups of shards, round-robin (empty groups dropped)."""
    groups: list[list[ShardInfo]] = [[] for _ in range(max(1, n))]
    for i, info in enumerate(infos):
        groups[i % len(groups)].append(info)
    return [g for g in groups if g]


def check_vlm(spec: str) -> bool:
    """Check the local VLM spec before any model time (builds the tiny VLM once); synthetic?"""
    from gpuflows.models.llm.vlm_load import resolve_vlm_spec

    return resolve_vlm_spec(spec, field="vlm").synthetic


def load_vlm(spec: str, *, device: str = "cpu", dtype: str = "float32", cache: Any = None) -> Any:
    """The local VLM engine of ``spec``: the tiny random-weight LLaVA (built once), or a folder."""
    from gpuflows.models.llm.config import LocalModelConfig
    from gpuflows.models.registry import get_model

    check_vlm(spec)
    config = LocalModelConfig(spec=spec, device=device, dtype=dtype)
    return get_model("image-text-to-text", field="vlm")(config, cache)


def endpoint_vlm(
    url: str,
    served_model: str,
    *,
    concurrency: int,
    max_attempts: int = 4,
    timeout_s: float = 120.0,
    cache: Any = None,
) -> Any:
    """An endpoint client for one VLM server (retries with backoff, ``Retry-After`` honoured)."""
    from gpuflows.models.llm.config import EndpointConfig
    from gpuflows.models.llm.endpoint import EndpointClient

    config = EndpointConfig(
        base_url=url,
        model=served_model,
        concurrency=concurrency,
        max_attempts=max_attempts,
        timeout_s=timeout_s,
        backoff_base_s=0.2,
        backoff_max_s=5.0,
    )
    return EndpointClient(config, cache)


def judge(rec: dict[str, Any], prediction: str, verify: str) -> tuple[bool, str]:
    """(failure, failure_key) of one record from the model's answers."""
    words = set(prediction.lower().replace(",", " ").split())
    meta = rec.get("meta") or {}
    label = str(rec["label"]).lower().split()
    color = str(meta.get("color", label[0] if label else ""))
    shape = str(meta.get("shape", label[-1] if label else ""))
    failed = [k for k, v in (("color", color), ("shape", shape)) if v and v not in words]
    if not verify.lower().strip().startswith("yes"):
        failed.append("verify")
    return bool(failed), "+".join(failed)


def _stages(max_new_tokens: int) -> list[tuple[str, Any, int]]:
    return [
        ("prediction", lambda r: PREDICT, max_new_tokens),
        ("completion", lambda r: COMPLETE, max_new_tokens),
        ("verify", lambda r: VERIFY.format(label=r["label"]), min(4, max_new_tokens)),
    ]


def probe_batch(
    backend: Any, batch: list[dict[str, Any]], max_new_tokens: int
) -> list[tuple[str, dict[str, Any]]]:
    """The three stages over one batch: per record ``("ok", answers)`` or ``("error", why)``."""
    answers: dict[str, dict[str, Any]] = {str(r["id"]): {"attempts": 0} for r in batch}
    errors: dict[str, dict[str, Any]] = {}
    alive = list(batch)
    for stage, prompt, tokens in _stages(max_new_tokens):
        if not alive:
            break
        reqs = [
            LLMRequest(
                id=str(r["id"]),
                messages=({"role": "user", "content": prompt(r)},),
                images=(r["image_bytes"],),
                max_new_tokens=tokens,
            )
            for r in alive
        ]
        survivors = []
        for rec, res in zip(alive, backend.generate(reqs), strict=True):
            rid = str(rec["id"])
            answers[rid]["attempts"] += res.attempts
            if res.error is None:
                answers[rid][stage] = (res.text or "").strip()
                survivors.append(rec)
                continue
            e = res.error
            errors[rid] = {"stage": stage, "kind": e.kind, "status": e.status}
            errors[rid] |= {"reason": e.message, "attempts": answers[rid]["attempts"]}
        alive = survivors
    out: list[tuple[str, dict[str, Any]]] = []
    for r in batch:
        rid = str(r["id"])
        if rid in errors:
            out.append(("error", errors[rid]))
            continue
        a = answers[rid]
        failure, key = judge(r, a["prediction"], a["verify"])
        verified = a["verify"].lower().startswith("yes")
        out.append(("ok", a | {"verified": verified, "failure": failure, "failure_key": key}))
    return out


def _done_path(out_dir: Path, info: ShardInfo) -> Path:
    return out_dir / f"{info.path.stem}.done.json"


def shard_finished(out_dir: Path, info: ShardInfo) -> bool:
    done = _done_path(out_dir, info)
    if not done.is_file() or not (out_dir / f"{info.path.stem}.jsonl").is_file():
        return False
    return json.loads(done.read_text()).get("source_digest") == file_digest(info.path)


def _image_path(out_dir: Path, info: ShardInfo, rec: dict[str, Any]) -> str:
    if rec["image_path"]:
        p = Path(rec["image_path"])
        return str(p if p.is_absolute() else (info.path.parent / p).resolve())
    from gpuflows.models.llm.images import image_format

    data = rec["image_bytes"]
    rel = Path("images") / f"{rec['id']}{_EXT.get(image_format(data), '.img')}"
    target = out_dir / rel
    if not target.exists():
        atomic_write_bytes(target, data)
    return str(rel)


def _read_shard(info: ShardInfo, batch_size: int) -> list[list[dict[str, Any]]]:
    return list(iter_batches(info, batch_size, decode=False))


def _ahead(infos: list[ShardInfo], batch_size: int, n: int) -> Iterator[tuple[ShardInfo, list]]:
    """Shards in order, up to ``n`` read ahead by threads."""
    with ThreadPoolExecutor(max(1, n)) as pool:
        futs = [pool.submit(_read_shard, i, batch_size) for i in infos[:n]]
        for k, info in enumerate(infos):
            batches = futs[k].result()
            futs[k] = None  # type: ignore[call-overload]
            if k + n < len(infos):
                futs.append(pool.submit(_read_shard, infos[k + n], batch_size))
            yield info, batches


def _line(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


def probe_group(
    infos: list[ShardInfo],
    out_dir: str | Path,
    *,
    vlm: str = TINY_VLM,
    device: str = "cpu",
    batch_size: int = 8,
    read_parallel: int = 1,
    max_new_tokens: int = 8,
    model: Any = None,
    backend: Backend = "local",
    endpoint_url: str | None = None,
    served_model: str | None = None,
    concurrency: int | None = None,
    max_attempts: int = 4,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """One worker's shards: its backend made once (``model`` when given), every unfinished
    shard probed, its files written."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "errors").mkdir(exist_ok=True)
    todo = [i for i in infos if not shard_finished(out, i)]
    t_load = time.perf_counter()
    if model is None and todo:
        if backend == "endpoint":
            if not endpoint_url or not served_model:
                raise ValueError("backend='endpoint' needs endpoint_url and served_model")
            model = endpoint_vlm(
                endpoint_url,
                served_model,
                concurrency=concurrency or batch_size,
                max_attempts=max_attempts,
                timeout_s=timeout_s,
            )
        else:
            model = load_vlm(vlm, device=device)
    load_s = time.perf_counter() - t_load
    shards, images, errors, t0 = [], 0, 0, time.perf_counter()
    for info, batches in _ahead(todo, batch_size, read_parallel):
        ts, lines, bad, failures = time.perf_counter(), [], [], 0
        for batch in batches:
            for rec, (kind, res) in zip(
                batch, probe_batch(model, batch, max_new_tokens), strict=True
            ):
                row = {"id": rec["id"], "shard": info.path.name, "row": rec["row"]}
                row |= {"label": rec["label"], **res, "image_path": _image_path(out, info, rec)}
                if kind == "error":
                    bad.append(_line(row))
                    continue
                failures += res["failure"]
                lines.append(_line(row | {"meta": rec["meta"]}))
        errors_rel = f"errors/{info.path.stem}.jsonl"
        atomic_write_bytes(out / errors_rel, b"".join(bad))
        atomic_write_bytes(out / f"{info.path.stem}.jsonl", b"".join(lines))
        done = {
            "shard": info.path.name,
            "rows": len(lines),
            "errors": len(bad),
            "failures": failures,
            "seconds": time.perf_counter() - ts,
            "source_digest": file_digest(info.path),
            "jsonl": f"{info.path.stem}.jsonl",
            "errors_jsonl": errors_rel,
        }
        atomic_write_json(_done_path(out, info), done)
        shards.append(done)
        images += len(lines) + len(bad)
        errors += len(bad)
    seconds = time.perf_counter() - t0
    record = model.record() if model is not None and hasattr(model, "record") else None
    return {
        "shards": shards,
        "skipped": [i.path.name for i in infos if i not in todo],
        "images": images,
        "errors": errors,
        "seconds": seconds,
        "load_s": load_s,
        "images_per_s": images / seconds if seconds > 0 and images else None,
        "device": device if backend == "local" else f"endpoint {endpoint_url}",
        "backend": backend,
        "backend_record": record,
        "pid": os.getpid(),
        # an endpoint's weights are not seen from here: not known to be synthetic
        "synthetic_model": bool(getattr(model, "synthetic", False))
        if backend == "local"
        else False,
    }


def write_manifest(out_dir: str | Path, infos: list[ShardInfo], extra: dict[str, Any]) -> Path:
    """``manifest.json``: every shard's done record, in shard order, plus ``extra``."""
    out = Path(out_dir)
    shards = [json.loads(_done_path(out, i).read_text()) for i in infos]
    return atomic_write_json(
        out / "manifest.json",
        {
            "shards": shards,
            "rows": sum(s["rows"] for s in shards),
            "errors": sum(s.get("errors", 0) for s in shards),
            "failures": sum(s["failures"] for s in shards),
        }
        | extra,
    )


def error_kinds(out_dir: str | Path, infos: list[ShardInfo]) -> dict[str, int]:
    """Step-1 error records by kind (``stage:kind``), over every shard's errors file."""
    out, kinds = Path(out_dir), {}
    for info in infos:
        path = out / "errors" / f"{info.path.stem}.jsonl"
        if path.is_file():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    rec = orjson.loads(line)
                    k = f"{rec['stage']}:{rec['kind']}"
                    kinds[k] = kinds.get(k, 0) + 1
    return kinds
