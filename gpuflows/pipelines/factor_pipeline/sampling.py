"""Step 2, failure-key sampling: step-1 records (JSON arrays or JSONL) -> one JSONL, streaming.

* Input: step-1 output (a folder of ``*.jsonl`` shards), or any files holding a JSON array of
  objects (read with ``ijson``, item by item) or one JSON object per line (``orjson``). The
  format is told by the first non-blank byte (``[`` = array).
* Kept: records whose ``failure`` is true (records without the field are all kept).
* Images: ``embed_images=True`` replaces ``image_path`` by ``image_base64`` (the file's bytes),
  read only for records that are written; otherwise ``image_path`` stays.
* ``sample_size=k``: a seeded uniform sample of k failures, by bottom-k priorities — each record's
  priority is a keyed hash of (seed, id), the k smallest are kept. Memory holds k records; the
  sample is the same whatever the file split or the process count (mergeable), and is written in
  priority order. Without a sample size the output keeps the input order.
* Memory is flat whatever the input size: one record at a time (plus the k kept). JSONL inputs
  larger than ``split_bytes`` are cut at line boundaries into byte ranges and converted by
  ``processes`` worker processes, whose part files are joined in order; JSON arrays are read by
  one process (an array cannot be cut without parsing it).
* The output is written to a temporary file and renamed: a failed run (a non-JSON line, a record
  without an id: :class:`InputError` naming the file, line or byte offset) leaves no output.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import ijson
import orjson

from gpuflows.core.faults import InputError

SPLIT_BYTES = 64 * 2**20
_NL = orjson.OPT_APPEND_NEWLINE


def input_files(path: str | Path, *, field: str = "input_path") -> list[Path]:
    """A file; step 1's folder (its manifest's shards); or a folder's ``*.jsonl`` / ``*.json``."""
    p = Path(path).expanduser()
    if p.is_file():
        return [p]
    if p.is_dir():
        manifest = p / "manifest.json"
        if manifest.is_file():  # step 1's output folder: its shards, in order
            return [p / s["jsonl"] for s in orjson.loads(manifest.read_bytes())["shards"]]
        files = sorted([*p.glob("*.jsonl"), *p.glob("*.json")])
        files = [f for f in files if not f.name.endswith(".done.json")]
        if files:
            return files
        raise InputError(f"{field}={str(p)!r} holds no *.jsonl or *.json files")
    raise InputError(f"{field}={str(p)!r} does not exist")


def is_json_array(path: Path) -> bool:
    with open(path, "rb") as f:
        while chunk := f.read(4096):
            s = chunk.lstrip()
            if s:
                return s[:1] == b"["
    return False


def _bad(rec: Any, where: str) -> InputError:
    if not isinstance(rec, dict):
        return InputError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
    return InputError(f"{where}: the record has no 'id' (every record needs a unique id)")


def _ok(rec: Any) -> bool:
    """An object with a non-empty string or integer id."""
    return type(rec) is dict and type(rec.get("id")) in (str, int) and rec["id"] != ""


def iter_array(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        try:
            for i, rec in enumerate(ijson.items(f, "item", use_float=True)):
                if not _ok(rec):
                    raise _bad(rec, f"{path.name} item {i}")
                yield rec
        except ijson.JSONError as exc:
            raise InputError(f"{path.name}: not a valid JSON array ({exc})") from None


def iter_lines(path: Path, start: int = 0, end: int | None = None) -> Iterator[dict[str, Any]]:
    """JSONL records whose line starts in ``[start, end)`` (the whole file by default)."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            f.readline()  # the line holding byte start-1 belongs to the range before
        pos = f.tell()
        line_no = None if start > 0 else 0
        while end is None or pos < end:
            line = f.readline()
            if not line:
                break
            here, pos = pos, pos + len(line)
            line_no = None if line_no is None else line_no + 1
            if not line.strip():
                continue

            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                where = f"{path.name} line {line_no}" if line_no else f"{path.name} byte {here}"
                raise InputError(f"{where}: not JSON ({exc}); fix or drop that line") from None
            if not _ok(rec):
                raise _bad(rec, f"{path.name} line {line_no}" if line_no else f"byte {here}")
            yield rec


def priority(seed: int, rid: Any) -> int:
    """The record's sampling priority: a keyed 64-bit hash of (seed, id)."""
    h = hashlib.blake2b(str(rid).encode(), digest_size=8, key=str(seed).encode() or b"0")
    return int.from_bytes(h.digest(), "big")


def embed(rec: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """``image_path`` -> ``image_base64`` (the file's bytes)."""
    path = rec.get("image_path")
    if not path:
        raise InputError(f"record {rec['id']!r}: embed_images needs an image_path")
    p = Path(path)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(f"record {rec['id']!r}: image_path {str(p)!r} unreadable: {exc}") from None
    out = {k: v for k, v in rec.items() if k != "image_path"}
    out["image_base64"] = base64.b64encode(data).decode()
    return out


def _records(path: Path, start: int, end: int | None) -> Iterator[dict[str, Any]]:
    return iter_array(path) if is_json_array(path) else iter_lines(path, start, end)


def _convert_range(job: tuple[str, int, int | None, str, dict[str, Any]]) -> dict[str, Any]:
    """One worker: a file's byte range -> a part file (or the range's bottom-k)."""
    src, start, end, part, opts = job
    path, k = Path(src), opts["sample_size"]
    base = Path(opts["base_dir"]) if opts["base_dir"] else path.parent
    n_in = kept = 0
    heap: list[tuple[int, bytes]] = []  # (-priority, record) : the k smallest priorities
    with open(part, "wb", buffering=2**20) as out:
        for rec in _records(path, start, end):
            n_in += 1
            if opts["failures_only"] and rec.get("failure") is False:
                continue
            kept += 1
            if k is None:
                out.write(orjson.dumps(embed(rec, base) if opts["embed"] else rec, option=_NL))
                continue
            pr = priority(opts["seed"], rec["id"])
            if len(heap) < k:
                heapq.heappush(heap, (-pr, orjson.dumps(rec)))
            elif -heap[0][0] > pr:
                heapq.heapreplace(heap, (-pr, orjson.dumps(rec)))
    return {"records": n_in, "failures": kept, "heap": [(-p, r) for p, r in heap], "base": base}


def plan_ranges(
    files: list[Path], processes: int, split_bytes: int
) -> list[tuple[Path, int, int | None]]:
    """Byte ranges to convert: whole files, and JSONL files over ``split_bytes`` cut in pieces."""
    jobs: list[tuple[Path, int, int | None]] = []
    for f in files:
        size = f.stat().st_size
        if processes > 1 and size > split_bytes and not is_json_array(f):
            n = min(processes * 2, max(2, size // split_bytes))
            step = -(-size // n)
            jobs += [(f, a, min(size, a + step)) for a in range(0, size, step)]
        else:
            jobs.append((f, 0, None))
    return jobs


def sample_failures(
    inputs: list[Path],
    out_path: str | Path,
    *,
    sample_size: int | None = None,
    seed: int = 0,
    embed_images: bool = False,
    failures_only: bool = True,
    processes: int = 1,
    split_bytes: int = SPLIT_BYTES,
    base_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Convert/sample ``inputs`` into ``out_path`` (JSONL, atomic). Returns counts and timing."""
    t0 = time.perf_counter()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    opts = {
        "sample_size": sample_size,
        "seed": seed,
        "embed": embed_images,
        "failures_only": failures_only,
        "base_dir": str(base_dir) if base_dir else None,
    }
    ranges = plan_ranges(inputs, processes, split_bytes)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    parts = [str(tmp) + f".part{i}" for i in range(len(ranges))]
    jobs = [(str(f), a, b, p, opts) for (f, a, b), p in zip(ranges, parts, strict=True)]
    try:
        if processes > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(min(processes, len(jobs))) as pool:
                results = list(pool.map(_convert_range, jobs))
        else:
            results = [_convert_range(j) for j in jobs]
        written = _join(results, parts, tmp, sample_size, embed_images)
        os.replace(tmp, out)
    finally:
        for p in [*parts, str(tmp)]:
            Path(p).unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    n_in = sum(r["records"] for r in results)
    return {
        "output": str(out),
        "records_in": n_in,
        "failures": sum(r["failures"] for r in results),
        "written": written,
        "seconds": seconds,
        "records_per_s": n_in / seconds if seconds > 0 else None,
        "processes": processes,
        "ranges": len(jobs),
        "sampled": sample_size is not None,
    }


def _join(results: list[dict], parts: list[str], tmp: Path, k: int | None, emb: bool) -> int:
    written = 0
    if k is None and len(parts) == 1:  # one range: its part file is the output, no copy
        os.replace(parts[0], tmp)
        return results[0]["failures"]
    with open(tmp, "wb", buffering=2**20) as out:
        if k is None:
            for p in parts:
                with open(p, "rb") as f:
                    while chunk := f.read(2**20):
                        out.write(chunk)
            return sum(r["failures"] for r in results)
        chosen = heapq.nsmallest(
            k, ((pr, rec, r["base"]) for r in results for pr, rec in r["heap"]), key=lambda t: t[0]
        )
        for _, raw, base in chosen:
            rec = orjson.loads(raw)
            out.write(orjson.dumps(embed(rec, base) if emb else rec, option=_NL))
            written += 1
    return written
