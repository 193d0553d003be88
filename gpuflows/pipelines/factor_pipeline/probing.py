"""Step 1, probing-factor generation: predict -> complete template -> verify, batch by batch.

One worker per GPU (:func:`probe_group`) loads its vision-language model once and runs its group
of shards (:func:`shard_groups`: round-robin). Per batch of FAILURE_BATCH_SIZE images, three
batched VLM calls (:meth:`gpuflows.models.vlm_reward.RewardModel.answer`, greedy):

1. **predict** -- "What is in the image? Answer with a colour and a shape.";
2. **complete template** -- "Complete: The object in the image is ___";
3. **verify** -- "Does the image show a {label}? Answer yes or no.".

A record fails when the prediction misses the label's colour or shape, or the verify answer is
not "yes"; its ``failure_key`` names what failed (``color``, ``shape``, ``verify``, joined by
``+``). With the tiny random-weight VLM (``vlm='tiny-vlm'``) nearly every record fails: that is
synthetic output, for shape and speed, not a finding.

Output per shard: ``<out>/<shard>.jsonl`` (one record per image: id, shard, row, label,
prediction, completion, verify, verified, failure, failure_key, image_path, meta), written to a
temporary file and renamed, then ``<shard>.done.json`` (rows, failures, seconds, the shard's
digest); a shard with a matching done file is skipped on a re-run. :func:`write_manifest` joins
the done files into ``manifest.json``. Images stored as bytes are written once to
``<out>/images/<id>.png`` so later steps can point at them (``image_path``, relative to
``<out>``). Up to ``read_parallel`` shards are read ahead by threads (pyarrow), one shard's
batches at a time each, never the whole set.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from gpuflows.core.evidence.digest import file_digest
from gpuflows.core.store.io import atomic_write_bytes, atomic_write_json
from gpuflows.pipelines.factor_pipeline.schema import ShardInfo, iter_batches

TINY_VLM = "tiny-vlm"
PREDICT = "What is in the image? Answer with a colour and a shape."
COMPLETE = "Complete the sentence: The object in the image is"
VERIFY = "Does the image show a {label}? Answer yes or no."


def shard_groups(infos: list[ShardInfo], n: int) -> list[list[ShardInfo]]:
    """``n`` groups of shards, round-robin (empty groups dropped)."""
    groups: list[list[ShardInfo]] = [[] for _ in range(max(1, n))]
    for i, info in enumerate(infos):
        groups[i % len(groups)].append(info)
    return [g for g in groups if g]


def load_vlm(spec: str, *, device: str = "cpu", dtype: str = "float32") -> Any:
    """The VLM of ``spec``: the tiny random-weight LLaVA (built once), or a model folder."""
    from gpuflows.models.registry import get_model

    if spec == TINY_VLM:
        from gpuflows.models.tiny import default_model_dir

        path = get_model("tiny-reward")(default_model_dir("tiny-reward"))
    else:
        path = Path(spec)
    return get_model("vlm-reward", field="vlm")(path, device=device, dtype=dtype)


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


def probe_batch(model: Any, batch: list[dict[str, Any]], max_new_tokens: int) -> list[dict]:
    """The three VLM calls over one batch; one result dict per record."""
    images = [r["image"] for r in batch]
    none = [""] * len(batch)
    pred = model.answer(images, none, [PREDICT] * len(batch), max_new_tokens=max_new_tokens)
    comp = model.answer(images, none, [COMPLETE] * len(batch), max_new_tokens=max_new_tokens)
    ver = model.answer(
        images, none, [VERIFY.format(label=r["label"]) for r in batch], max_new_tokens=4
    )
    out = []
    for r, p, c, v in zip(batch, pred, comp, ver, strict=True):
        failure, key = judge(r, p, v)
        out.append(
            {"prediction": p, "completion": c, "verify": v, "verified": v.lower().startswith("yes")}
            | {"failure": failure, "failure_key": key}
        )
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
    rel = Path("images") / f"{rec['id']}.png"
    target = out_dir / rel
    if not target.exists():
        rec["image"].save(target.with_suffix(".tmp.png"))
        os.replace(target.with_suffix(".tmp.png"), target)
    return str(rel)


def _read_shard(info: ShardInfo, batch_size: int) -> list[list[dict[str, Any]]]:
    return list(iter_batches(info, batch_size))


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
) -> dict[str, Any]:
    """One worker's shards: load the VLM once, probe every unfinished shard, write its files."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    todo = [i for i in infos if not shard_finished(out, i)]
    t_load = time.perf_counter()
    if model is None and todo:
        model = load_vlm(vlm, device=device)
    load_s = time.perf_counter() - t_load
    shards, images, t0 = [], 0, time.perf_counter()
    for info, batches in _ahead(todo, batch_size, read_parallel):
        ts, lines, failures = time.perf_counter(), [], 0
        for batch in batches:
            for rec, res in zip(batch, probe_batch(model, batch, max_new_tokens), strict=True):
                failures += res["failure"]
                row = {"id": rec["id"], "shard": info.path.name, "row": rec["row"]}
                row |= {"label": rec["label"], **res, "image_path": _image_path(out, info, rec)}
                lines.append(
                    orjson.dumps(row | {"meta": rec["meta"]}, option=orjson.OPT_APPEND_NEWLINE)
                )
        atomic_write_bytes(out / f"{info.path.stem}.jsonl", b"".join(lines))
        done = {
            "shard": info.path.name,
            "rows": len(lines),
            "failures": failures,
            "seconds": time.perf_counter() - ts,
            "source_digest": file_digest(info.path),
            "jsonl": f"{info.path.stem}.jsonl",
        }
        atomic_write_json(_done_path(out, info), done)
        shards.append(done)
        images += len(lines)
    seconds = time.perf_counter() - t0
    return {
        "shards": shards,
        "skipped": [i.path.name for i in infos if i not in todo],
        "images": images,
        "seconds": seconds,
        "load_s": load_s,
        "images_per_s": images / seconds if seconds > 0 and images else None,
        "device": device,
        "pid": os.getpid(),
        "synthetic_model": bool(getattr(model, "synthetic", vlm == TINY_VLM)),
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
            "failures": sum(s["failures"] for s in shards),
        }
        | extra,
    )
