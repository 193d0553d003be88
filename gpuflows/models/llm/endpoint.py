"""The async OpenAI-compatible client: ``/v1/chat/completions`` or ``/v1/completions``.

``EndpointClient(config).generate(requests)`` has the local engine's interface (one
:class:`LLMResult` per request, in order); ``agenerate`` is the same coroutine, ``astream``
yields results as they finish.

* At most ``concurrency`` requests in flight (a semaphore), over that many connections (split
  over several httpx clients of :data:`POOL_SHARD` each);
  ``request_delay_s`` spaces request starts; per-attempt timeouts.
* Retries: connection errors, timeouts, 408/409/429 and 5xx, up to ``max_attempts`` per request,
  waiting ``Retry-After`` (seconds or an HTTP date) or ``retry-after-ms`` when the server sends
  one, of any length up to ``retry_after_cap_s`` (openai-python ignores values over 60 s and
  retries early); longer than the cap fails that request (kind ``retry_after_over_cap``). With no
  header: full-jitter exponential backoff, ``uniform(0, min(backoff_max_s, base * 2**n))``.
  A wait is spent outside the semaphore, so it holds no slot. Other 4xx are never retried.
* Error isolation: a failed request is its own record (kind, status, message, attempts); it never
  raises into, or cancels, the others.
* The call cache (when given) answers repeated work: key = endpoint + served model + declared
  revision, the exact messages or prompt sent, and every generation parameter.

The API key comes in ``config.api_key``; a Prefect Secret block is resolved by the caller
(``tasks/llm.py``), so this module imports no Prefect.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson

from gpuflows.core.faults import InputError
from gpuflows.models.llm import aio
from gpuflows.models.llm.cache import CallCache, call_key
from gpuflows.models.llm.config import CallError, EndpointConfig, LLMRequest, LLMResult

RETRY_STATUS = frozenset({408, 409, 429})
#: Connections per httpx client: httpcore's pool scans all its connections on every request and
#: response (quadratic at high concurrency: at C=160 in one pool the client spent ~30 ms of CPU
#: per request here), so the C connections are split over ceil(C / 16) clients.
POOL_SHARD = 16


class _Pool:
    """Clients of at most :data:`POOL_SHARD` connections; a request takes the least busy one.
    Under the semaphore at most C requests are in flight, so the chosen client always has a free
    connection (no request waits in a pool)."""

    def __init__(self, make: Any, concurrency: int) -> None:
        n = -(-concurrency // POOL_SHARD)
        per = -(-concurrency // n)
        self.clients = [make(per) for _ in range(n)]
        self.busy = [0] * n

    def take(self) -> int:
        i = min(range(len(self.busy)), key=self.busy.__getitem__)
        self.busy[i] += 1
        return i

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()


def retry_after_s(headers: httpx.Headers) -> float | None:
    """Seconds the server asks us to wait: ``retry-after-ms``, else ``Retry-After`` (seconds or
    an HTTP date); None when absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class EndpointClient:
    """See the module docstring. ``rng`` draws the backoff jitter (seeded in tests)."""

    def __init__(
        self,
        config: EndpointConfig,
        cache: CallCache | None = None,
        *,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config, self.cache = config, cache
        self.identity = config.identity()
        self._rng = rng or random.Random()
        self._transport = transport
        self._next_start = 0.0
        self.counts = {
            "calls": 0,  # requests sent (not answered by the cache)
            "attempts": 0,
            "retries": 0,
            "errors": 0,
            "in_flight_max": 0,
            "output_tokens": 0,
        }
        self.errors_by_kind: dict[str, int] = {}
        self._in_flight = 0
        self._ssl: Any = None

    # -- requests -----------------------------------------------------------------------------

    def _body(self, req: LLMRequest) -> dict[str, Any]:
        cfg = self.config
        body: dict[str, Any] = {"model": cfg.model, "max_tokens": req.max_new_tokens}
        if cfg.api == "chat":
            if req.messages is None:
                raise InputError(
                    f"request {req.id!r}: api='chat' sends messages, and this request has a raw "
                    "prompt: give messages, or use api='completions'"
                )
            body["messages"] = [dict(m) for m in req.messages]
            if req.images:  # OpenAI content parts with base64 data URLs
                from gpuflows.models.llm.images import openai_messages

                body["messages"] = openai_messages(req.messages, req.images)
        else:
            if req.prompt is None:
                raise InputError(
                    f"request {req.id!r}: api='completions' sends a prompt, and this request has "
                    "messages: give a prompt, or use api='chat'"
                )
            body["prompt"] = req.prompt
        body["temperature"] = req.temperature
        if not req.greedy:
            body["top_p"] = req.top_p
            body["seed"] = req.sample_seed() % 2**31
        if req.stop:
            body["stop"] = list(req.stop)
        return body

    def _parse(self, req: LLMRequest, data: Any, attempts: int) -> LLMResult:
        choice = data["choices"][0]
        text = choice["message"]["content"] if self.config.api == "chat" else choice["text"]
        if not isinstance(text, str):
            raise TypeError("choices[0] text is not a string")
        usage = data.get("usage") or {}
        reason = choice.get("finish_reason") or "stop"
        return LLMResult(
            id=req.id,
            text=text,
            finish_reason="length" if reason == "length" else "stop",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            attempts=attempts,
        )

    def _error(self, req: LLMRequest, kind: str, msg: str, status: int | None, n: int) -> LLMResult:
        self.counts["errors"] += 1
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        err = CallError(kind=kind, status=status, message=msg[:500], attempts=n)  # type: ignore[arg-type]
        return LLMResult(id=req.id, finish_reason="error", attempts=n, error=err)

    def _backoff(self, retry_number: int) -> float:
        cfg = self.config
        return self._rng.uniform(0.0, min(cfg.backoff_max_s, cfg.backoff_base_s * 2**retry_number))

    async def _pace(self, lock: asyncio.Lock) -> None:
        if self.config.request_delay_s <= 0:
            return
        async with lock:
            now = time.monotonic()
            wait = self._next_start - now
            self._next_start = max(now, self._next_start) + self.config.request_delay_s
        if wait > 0:
            await asyncio.sleep(wait)

    async def _one(
        self, pool: _Pool, sem: asyncio.Semaphore, lock: asyncio.Lock, req: LLMRequest
    ) -> LLMResult:
        cfg = self.config
        url = "/chat/completions" if cfg.api == "chat" else "/completions"
        payload = orjson.dumps(self._body(req))
        self.counts["calls"] += 1
        attempts = 0
        while True:
            attempts += 1
            self.counts["attempts"] += 1
            await self._pace(lock)
            wait: float | None = None
            status: int | None = None
            try:
                async with sem:
                    self._in_flight += 1
                    self.counts["in_flight_max"] = max(
                        self.counts["in_flight_max"], self._in_flight
                    )
                    shard = pool.take()
                    try:
                        resp = await pool.clients[shard].post(url, content=payload)
                    finally:
                        self._in_flight -= 1
                        pool.busy[shard] -= 1
            except httpx.TimeoutException as exc:
                kind, msg = "timeout", f"{type(exc).__name__}: {exc}"
            except httpx.TransportError as exc:
                kind, msg = "connection", f"{type(exc).__name__}: {exc}"
            else:
                status = resp.status_code
                if status == 200:
                    try:
                        result = self._parse(req, orjson.loads(resp.content), attempts)
                    except (
                        ValueError,
                        KeyError,
                        IndexError,
                        TypeError,
                    ) as exc:  # orjson errors too
                        msg = f"{type(exc).__name__}: {exc}; body {resp.text[:120]!r}"
                        return self._error(req, "bad_response", msg, status, attempts)
                    self.counts["output_tokens"] += result.completion_tokens or 0
                    return result
                kind, msg = "http_status", f"HTTP {status}: {resp.text[:200]}"
                if not (status in RETRY_STATUS or status >= 500):
                    return self._error(req, kind, msg + " (not retried)", status, attempts)
                wait = retry_after_s(resp.headers)
            if attempts >= cfg.max_attempts:
                msg += f" (gave up after {attempts} attempts: max_attempts={cfg.max_attempts})"
                return self._error(req, kind, msg, status, attempts)
            if wait is not None and wait > cfg.retry_after_cap_s:
                msg = (
                    f"the server asked to wait {wait:.1f} s (Retry-After), over "
                    f"retry_after_cap_s={cfg.retry_after_cap_s}: raise the cap to wait that long"
                )
                return self._error(req, "retry_after_over_cap", msg, status, attempts)
            self.counts["retries"] += 1
            await asyncio.sleep(wait if wait is not None else self._backoff(attempts - 1))

    async def _guarded(
        self,
        pool: _Pool,
        sem: asyncio.Semaphore,
        lock: asyncio.Lock,
        req: LLMRequest,
        key: str,
    ) -> tuple[str, LLMResult]:
        try:
            return key, await self._one(pool, sem, lock, req)
        except Exception as exc:  # noqa: BLE001 - one request's fault never cancels the others
            return key, self._error(req, "connection", f"{type(exc).__name__}: {exc}", None, 1)

    def _client(self, connections: int) -> httpx.AsyncClient:
        cfg = self.config
        headers = {"content-type": "application/json"}
        if cfg.api_key is not None:
            headers["Authorization"] = f"Bearer {cfg.api_key.get_secret_value()}"
        if self._ssl is None:  # one context for all shards (each costs ~80 ms to build)
            import ssl

            import certifi

            self._ssl = ssl.create_default_context(cafile=certifi.where())
        return httpx.AsyncClient(
            base_url=cfg.base_url,
            verify=self._ssl,
            headers=headers,
            timeout=httpx.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            transport=self._transport,
        )

    # -- public ---------------------------------------------------------------------------------

    async def astream(self, requests: Sequence[LLMRequest]) -> AsyncIterator[LLMResult]:
        """Results as they finish (cache hits first)."""
        for req in requests:  # every request checked before any is sent
            self._body(req)
        keys = [call_key(self.identity, self._rendered(r), r.gen_params()) for r in requests]
        todo: list[tuple[LLMRequest, str]] = []
        for req, key in zip(requests, keys, strict=True):
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                yield hit.model_copy(update={"id": req.id})
            else:
                todo.append((req, key))
        if not todo:
            return
        sem, lock = asyncio.Semaphore(self.config.concurrency), asyncio.Lock()
        pool = _Pool(self._client, self.config.concurrency)
        try:
            tasks = [self._guarded(pool, sem, lock, req, key) for req, key in todo]
            for fut in asyncio.as_completed(tasks):
                key, result = await fut
                if self.cache is not None and result.ok:
                    self.cache.put(key, self.identity, result)
                yield result
        finally:
            await pool.aclose()

    async def agenerate(self, requests: Sequence[LLMRequest]) -> list[LLMResult]:
        """One result per request, in request order."""
        results: list[LLMResult | None] = [None] * len(requests)
        slots: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            slots.setdefault(r.id, []).append(i)
        async for res in self.astream(requests):
            results[slots[res.id].pop(0)] = res
        return [r for r in results if r is not None]

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResult]:
        """:meth:`agenerate` from synchronous code (uvloop when installed; in a thread of its own
        when a loop already runs): see :mod:`gpuflows.models.llm.aio`."""
        return aio.run(self.agenerate(requests))

    def _rendered(self, req: LLMRequest) -> Any:
        if req.images:  # the images by their bytes' digests (the data URLs are not hashed again)
            msgs = [dict(m) for m in req.messages or ()]
            return {"api": self.config.api, "input": msgs, "images": req.image_digests()}
        body = self._body(req)
        return {"api": self.config.api, "input": body.get("messages", body.get("prompt"))}

    def record(self) -> dict[str, Any]:
        """For a run's record: calls, attempts, retries, errors by kind, cache hits/misses."""
        return {
            "backend": "endpoint",
            "model": self.identity,
            "counts": dict(self.counts),
            "errors_by_kind": dict(self.errors_by_kind),
            "concurrency": self.config.concurrency,
            "cache": self.cache.stats() if self.cache is not None else None,
        }
