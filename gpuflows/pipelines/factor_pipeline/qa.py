"""Step 3, QA generation: one question/answer pair per failure record, async, exactly once.

Input: JSONL, one JSON object a line with a unique ``id`` (step 2's output, or any such file).
A record's prompt is its own ``prompt`` field when it has one, else a request built from its
fields (:func:`prompt_for`). The answer must read as ``Q: ... A: ...`` (or a JSON object with
``question`` and ``answer``); one that does not is that record's error (kind ``unparsable``).

Backends: ``endpoint`` -- :class:`~gpuflows.models.llm.endpoint.EndpointClient` per server
(NUM_GPUS servers, or one URL used NUM_GPUS times), each with CONCURRENCY requests in flight,
REQUEST_DELAY between starts, retries with backoff, ``Retry-After`` honoured, a failed request
isolated as its own record; or ``local`` -- the transformers engine in this process.

Before any request (:func:`preflight`): every input line is JSON with a unique id (else
:class:`InputError` naming the line), and each endpoint answers ``GET /models`` listing the
served model (unreachable, or serving another name: :class:`InputError` naming the URL and the
names it serves). Then batches of BATCH_SIZE records with no outcome yet are sent; each
outcome is appended as it arrives (:mod:`.outcomes`: exactly once, also after a SIGKILL and a
re-run). Output order is completion order; every line carries its ``id``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gpuflows.core.faults import InputError
from gpuflows.models.llm import aio
from gpuflows.models.llm.config import EndpointConfig, LLMRequest, LLMResult
from gpuflows.pipelines.factor_pipeline.outcomes import OutcomeStore

_QA_RE = re.compile(r"Q(?:uestion)?\s*[:：]\s*(.+?)\s*\bA(?:nswer)?\s*[:：]\s*(.+)", re.S | re.I)
_PROMPT_FIELDS = ("label", "prediction", "failure_key")


def scan_input(path: str | Path, *, field: str = "input_path") -> list[str]:
    """Every line's id, in order; raises on a non-JSON line, a missing or duplicate id."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{field}={str(p)!r} is not a file: give a JSONL file")
    ids: list[str] = []
    first: dict[str, int] = {}
    with open(p, "rb") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"{p.name} line {no}: not JSON ({exc})") from None
            if not isinstance(rec, dict) or rec.get("id") in (None, ""):
                raise InputError(f"{p.name} line {no}: needs a JSON object with an 'id'")
            rid = str(rec["id"])
            if rid in first:
                raise InputError(
                    f"{p.name} line {no}: duplicate id {rid!r} (first on line {first[rid]})"
                )
            first[rid] = no
            ids.append(rid)
    if not ids:
        raise InputError(f"{field}={str(p)!r} holds no records")
    return ids


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def prompt_for(rec: dict[str, Any]) -> str:
    """The user message for one record."""
    if isinstance(rec.get("prompt"), str) and rec["prompt"].strip():
        return rec["prompt"]
    facts = "\n".join(f"- {k}: {str(rec[k])[:80]}" for k in _PROMPT_FIELDS if k in rec)
    return (
        "A vision model failed on an image. Facts about the case:\n"
        f"{facts}\n"
        "Write one question a tester could ask about this image, and its correct answer.\n"
        "Reply exactly as:\nQ: <question>\nA: <answer>"
    )


def parse_qa(text: str | None) -> tuple[str, str]:
    """(question, answer) from ``Q: ... A: ...`` or a JSON object; ValueError otherwise."""
    text = (text or "").strip()
    if text.startswith("{"):
        try:
            obj = orjson.loads(text)
            q, a = str(obj["question"]).strip(), str(obj["answer"]).strip()
            if q and a:
                return q, a
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
    m = _QA_RE.search(text)
    if m and m.group(1).strip() and m.group(2).strip():
        return m.group(1).strip(), m.group(2).strip()
    raise ValueError(f"no 'Q: ... A: ...' in the answer: {text[:160]!r}")


def preflight(urls: list[str], served_model: str, *, timeout_s: float = 5.0) -> list[str]:
    """Check every endpoint serves ``served_model`` before any record is sent; notes returned."""
    import httpx

    notes = []
    for url in dict.fromkeys(urls):
        EndpointConfig(base_url=url, model=served_model)  # URL shape, named by the field
        try:
            resp = httpx.get(url.rstrip("/") + "/models", timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise InputError(
                f"endpoint_url={url!r} is unreachable ({type(exc).__name__}: {exc}): start the "
                "server or fix the URL"
            ) from None
        if resp.status_code == 404:
            notes.append(f"{url}: no /models listing; served_model not checked")
            continue
        try:
            names = [m["id"] for m in resp.json()["data"]]
        except (ValueError, KeyError, TypeError):
            notes.append(f"{url}: /models answered HTTP {resp.status_code}; name not checked")
            continue
        if served_model not in names:
            raise InputError(
                f"served_model={served_model!r} is not served at {url}: it serves {names}"
            )
    return notes


@dataclass
class QAStats:
    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    started: float = field(default_factory=time.monotonic)
    errors_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        dt = time.monotonic() - self.started
        return (self.done + self.failed) / dt if dt > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        left = self.total - self.skipped - self.done - self.failed
        return left / self.rate if self.rate > 0 else None


class LocalBackend:
    """The transformers engine behind the same ``astream`` shape as the endpoint client."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def astream(self, requests: list[LLMRequest]):  # noqa: ANN201 - async generator
        for res in await asyncio.to_thread(self.engine.generate, requests):
            yield res

    def record(self) -> dict[str, Any]:
        return self.engine.record()


def endpoint_backends(
    urls: list[str],
    served_model: str,
    *,
    num_gpus: int,
    concurrency: int,
    request_delay: float,
    max_attempts: int = 4,
    timeout_s: float = 120.0,
    cache: Any = None,
) -> list[Any]:
    """One client per GPU server: the URLs given, or one URL used ``num_gpus`` times."""
    from gpuflows.models.llm.endpoint import EndpointClient

    targets = urls if len(urls) > 1 else urls * num_gpus
    return [
        EndpointClient(
            EndpointConfig(
                base_url=u,
                model=served_model,
                concurrency=concurrency,
                request_delay_s=request_delay,
                max_attempts=max_attempts,
                timeout_s=timeout_s,
                backoff_base_s=0.2,
                backoff_max_s=5.0,
            ),
            cache,
        )
        for u in targets
    ]


def _outcome(res: LLMResult, rec: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
    base = {"id": rec["id"], "attempts": res.attempts}
    if res.error is not None:
        e = res.error
        return "error", base | {"kind": e.kind, "status": e.status, "reason": e.message}
    try:
        q, a = parse_qa(res.text)
    except ValueError as exc:
        return "error", base | {"kind": "unparsable", "status": None, "reason": str(exc)}
    src = {k: rec[k] for k in ("failure_key", "label", "prediction", "image_path") if k in rec}
    return "qa", base | {"question": q, "answer": a, "model": model, "source": src}


async def run_qa(
    input_path: str | Path,
    store: OutcomeStore,
    backends: list[Any],
    *,
    batch_size: int,
    max_new_tokens: int = 48,
    model_name: str = "",
    total: int | None = None,
    on_progress: Callable[[QAStats], None] | None = None,
) -> QAStats:
    """Send every record of ``input_path`` without an outcome in ``store``; see the module doc."""
    path = Path(input_path)
    stats = QAStats(total=total if total is not None else len(scan_input(path)))

    async def drain(backend: Any, reqs: list[LLMRequest], by_id: dict[str, dict]) -> None:
        async for res in backend.astream(reqs):
            kind, rec = _outcome(res, by_id[res.id], model_name)
            store.record(kind, rec)  # type: ignore[arg-type]
            if kind == "qa":
                stats.done += 1
            else:
                stats.failed += 1
                stats.errors_by_kind[rec["kind"]] = stats.errors_by_kind.get(rec["kind"], 0) + 1
            if on_progress is not None:
                on_progress(stats)

    async def run_batch(batch: list[dict[str, Any]]) -> None:
        by_id = {str(r["id"]): r | {"id": str(r["id"])} for r in batch}
        shares: list[list[LLMRequest]] = [[] for _ in backends]
        for i, (rid, rec) in enumerate(by_id.items()):
            shares[i % len(backends)].append(
                LLMRequest(
                    id=rid,
                    messages=({"role": "user", "content": prompt_for(rec)},),
                    max_new_tokens=max_new_tokens,
                )
            )
        await asyncio.gather(
            *(drain(b, s, by_id) for b, s in zip(backends, shares, strict=True) if s)
        )
        store.sync()

    batch: list[dict[str, Any]] = []
    for rec in iter_records(path):
        if store.has(rec["id"]):
            stats.skipped += 1
            continue
        batch.append(rec)
        if len(batch) >= batch_size:
            await run_batch(batch)
            batch = []
    if batch:
        await run_batch(batch)
    return stats


def qa_step(
    input_path: str | Path,
    out_dir: str | Path,
    backends: list[Any] | None = None,
    *,
    urls: list[str] | None = None,
    served_model: str | None = None,
    num_gpus: int = 1,
    concurrency: int = 4,
    request_delay: float = 0.0,
    batch_size: int = 16,
    max_attempts: int = 4,
    timeout_s: float = 120.0,
    max_new_tokens: int = 48,
    on_progress: Callable[[QAStats], None] | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Checks first (input, endpoints), then :func:`run_qa` into ``out_dir``; the step's record."""
    ids = scan_input(input_path)
    notes: list[str] = []
    if backends is None:
        if not urls or not served_model:
            raise InputError("endpoint_url and served_model: the endpoint backend needs both")
        notes = preflight(urls, served_model)
        backends = endpoint_backends(
            urls,
            served_model,
            num_gpus=num_gpus,
            concurrency=concurrency,
            request_delay=request_delay,
            max_attempts=max_attempts,
            timeout_s=timeout_s,
        )
    with OutcomeStore(out_dir) as store:
        stats = aio.run(
            run_qa(
                input_path,
                store,
                backends,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                model_name=model_name or served_model or "local",
                total=len(ids),
                on_progress=on_progress,
            )
        )
        summary = store.summary()
    seconds = time.monotonic() - stats.started
    return {
        "input": str(input_path),
        "out_dir": str(out_dir),
        "records": len(ids),
        "qa": summary["qa"],
        "errors": summary["errors"],
        "sent_now": stats.done + stats.failed,
        "skipped_with_outcome": stats.skipped,
        "torn_lines_repaired": summary["torn_lines_repaired"],
        "errors_by_kind": stats.errors_by_kind,
        "seconds": seconds,
        "records_per_s": (stats.done + stats.failed) / seconds if seconds > 0 else None,
        "backends": [b.record() for b in backends],
        "notes": notes,
    }
