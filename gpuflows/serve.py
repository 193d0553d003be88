"""Serve the local engine as an OpenAI-compatible endpoint on 127.0.0.1.

``python -m gpuflows.serve --model smollm2 --port 8000`` (one per GPU on a host: ``--device
cuda:N``) answers ``/v1/chat/completions``, ``/v1/completions`` and ``/v1/models``; the
pipelines' endpoint backend points at ``http://127.0.0.1:8000/v1``. A vision-language model
(``--model tiny-vlm`` or a folder whose config has a ``vision_config``) is served by the VLM
engine: chat messages may carry OpenAI ``image_url`` parts with base64 data URLs
(``data:image/png;base64,...``); a remote ``http(s)`` image URL is refused with a 400 (nothing
is fetched: offline), as is an image sent to a text-only model. Concurrent requests are
collected for up to ``--batch-wait-ms`` (or until ``--max-batch`` wait) and run through the
engine's ``generate`` together, one batch at a time, in a worker thread; the event loop keeps
accepting requests meanwhile. The model spec is checked before anything loads.

No ``from __future__ import annotations``: FastAPI reads the handlers' annotations at run time.
"""

import argparse
import asyncio
import sys
import time
import uuid
from typing import Any

from gpuflows.core.faults import InputError
from gpuflows.models.llm.config import LLMRequest, LLMResult


class Batcher:
    """Collects concurrent requests into engine batches (one batch runs at a time)."""

    def __init__(self, engine: Any, *, max_batch: int = 32, wait_s: float = 0.01) -> None:
        self.engine, self.max_batch, self.wait_s = engine, max_batch, wait_s
        self.queue: asyncio.Queue[tuple[LLMRequest, asyncio.Future[LLMResult]]] = asyncio.Queue()
        self.batch_sizes: list[int] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def submit(self, req: LLMRequest) -> LLMResult:
        fut: asyncio.Future[LLMResult] = asyncio.get_running_loop().create_future()
        await self.queue.put((req, fut))
        return await fut

    async def _loop(self) -> None:
        while True:
            batch = [await self.queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), left))
                except TimeoutError:
                    break
            self.batch_sizes.append(len(batch))
            try:
                results = await asyncio.to_thread(self.engine.generate, [r for r, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), res in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(res)


def _request(body: dict[str, Any], chat: bool) -> LLMRequest:
    if int(body.get("n", 1)) != 1:
        raise InputError("n: only n=1 is served; send n requests with sample_index via seed")
    stop = body.get("stop") or ()
    sampled = float(body.get("temperature", 1.0)) > 0
    common: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "max_new_tokens": int(body.get("max_tokens") or body.get("max_completion_tokens") or 64),
        "stop": (stop,) if isinstance(stop, str) else tuple(stop),
        "temperature": float(body.get("temperature", 1.0)),
        "top_p": float(body.get("top_p", 1.0)),
        "seed": int(body.get("seed") or 0) if sampled else 0,
    }
    if chat:
        return LLMRequest(messages=tuple(body["messages"]), **common)
    return LLMRequest(prompt=body["prompt"], **common)


def make_app(engine: Any, served_name: str, *, max_batch: int = 32, wait_s: float = 0.01) -> Any:
    """The FastAPI app over ``engine`` (``app.state.batcher`` holds the batch sizes seen)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    batcher = Batcher(engine, max_batch=max_batch, wait_s=wait_s)

    @asynccontextmanager
    async def lifespan(app: Any):  # noqa: ANN202 - FastAPI's lifespan protocol
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(lifespan=lifespan)
    app.state.batcher = batcher

    def _err(status: int, message: str) -> Any:
        return JSONResponse({"error": {"message": message, "type": "invalid_request"}}, status)

    async def answer(request: Request, chat: bool) -> Any:
        try:
            body = await request.json()
        except ValueError:
            return _err(400, "the body is not JSON")
        if body.get("model") not in (None, served_name):
            return _err(404, f"model {body.get('model')!r} is not served here: use {served_name!r}")
        try:
            req = _request(body, chat)
        except (InputError, ValueError, KeyError, TypeError) as exc:
            return _err(400, f"{type(exc).__name__}: {exc}")
        if req.images and not getattr(engine, "accepts_images", False):
            return _err(400, f"model {served_name!r} is text-only: it takes no images")
        if req.images:
            try:  # an image that does not decode fails this request alone, not its batch
                engine.check(req)
            except InputError as exc:
                return _err(400, str(exc))
        res = await batcher.submit(req)
        if res.error is not None:
            return JSONResponse(
                {"error": res.error.model_dump()}, 507 if res.error.kind == "oom" else 500
            )
        choice: dict[str, Any] = {"index": 0, "finish_reason": res.finish_reason}
        if chat:
            choice["message"] = {"role": "assistant", "content": res.text}
        else:
            choice["text"] = res.text
        return {
            "id": f"gf-{req.id}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": served_name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": res.prompt_tokens,
                "completion_tokens": res.completion_tokens,
                "total_tokens": (res.prompt_tokens or 0) + (res.completion_tokens or 0),
            },
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await answer(request, True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return await answer(request, False)

    @app.get("/v1/models")
    async def models() -> Any:
        return {"object": "list", "data": [{"id": served_name, "object": "model"}]}

    @app.get("/health")
    async def health() -> Any:
        return {"ok": True, "batches": len(batcher.batch_sizes), "engine": engine.record()}

    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gpuflows.serve", description=__doc__.splitlines()[0]
    )
    ap.add_argument(
        "--model",
        required=True,
        help="tiny-qwen2, smollm2, gguf:<file>, tiny-vlm, or a folder (a VLM when its config has "
        "a vision_config)",
    )
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument(
        "--served-name", default=None, help="model name clients send (default: --model)"
    )
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda:N")
    ap.add_argument("--batch-size", type=int, default=None, help="rows per engine batch")
    ap.add_argument("--max-batch", type=int, default=32, help="requests collected per batch")
    ap.add_argument("--batch-wait-ms", type=float, default=10.0)
    ap.add_argument("--cache", default=None, help="call cache SQLite file (none by default)")
    args = ap.parse_args(argv)

    from pydantic import ValidationError

    from gpuflows.models.llm.config import LocalModelConfig
    from gpuflows.models.llm.load import load_engine, resolve_spec
    from gpuflows.models.llm.vlm_load import is_vlm_spec, load_vlm_engine, resolve_vlm_spec

    vision = is_vlm_spec(args.model)
    try:
        config = LocalModelConfig(
            spec=args.model, dtype=args.dtype, device=args.device, batch_size=args.batch_size
        )
        (resolve_vlm_spec if vision else resolve_spec)(config.spec, field="--model")
    except (InputError, ValidationError) as exc:
        print(f"gpuflows.serve: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from gpuflows.models.llm.cache import CallCache

    cache = CallCache(args.cache) if args.cache else None
    engine = (load_vlm_engine if vision else load_engine)(config, cache)
    app = make_app(
        engine,
        args.served_name or args.model,
        max_batch=args.max_batch,
        wait_s=args.batch_wait_ms / 1000,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
