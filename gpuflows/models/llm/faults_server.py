"""A deterministic fault-injecting OpenAI-compatible responder, for load and fault tests.

It answers ``/v1/chat/completions`` and ``/v1/completions`` after ``latency_s`` with a text
derived from the prompt, and misbehaves where the prompt says so, by directives in the prompt
text (the last message's content, or the prompt):

* ``[[500x2]]`` -- the first 2 attempts of this prompt get HTTP 500, then it answers;
* ``[[429x1 ra=0.3]]`` -- 429 with ``Retry-After: 0.3`` (``ram=300`` sends ``retry-after-ms``);
* ``[[timeoutx1]]`` -- the first attempt sleeps ``hang_s`` (longer than the client's timeout);
* ``[[malformed]]`` -- 200 with a body that is not JSON; ``[[400]]`` -- always 400;
* ``[[slow=0.5]]`` -- 0.5 s more latency.

Attempts are counted per prompt, so a retried request sees its next outcome; ``GET /stats``
returns the requests seen, the in-flight count now and its maximum (counted at the server),
and each prompt's attempt times. ``running(app)`` serves an app in a thread on a free port of
127.0.0.1; ``python -m gpuflows.models.llm.faults_server --port N --latency 0.5`` serves it in a
process of its own (the bench does, so the client and server do not share one event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

_DIRECTIVE = re.compile(r"\[\[(\w+?)(?:x(\d+))?(?:\s+(ra|ram)=([\d.]+))?(?:=([\d.]+))?\]\]")


def _prompt_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        content = body["messages"][-1].get("content", "")
        return content if isinstance(content, str) else str(content)
    return str(body.get("prompt", ""))


def fault_app(latency_s: float = 0.0, *, hang_s: float = 30.0) -> Any:
    """The responder as a Starlette app (state on ``app.state.stats``); plain Starlette rather
    than FastAPI, so the responder spends little CPU of its own in the load bench."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    app = Starlette()
    stats: dict[str, Any] = {"requests": 0, "in_flight": 0, "in_flight_max": 0, "attempts": {}}
    app.state.stats = stats

    async def answer(request: Request, chat: bool) -> Any:
        body = await request.json()
        text = _prompt_text(body)
        times = stats["attempts"].setdefault(text, [])
        times.append(time.monotonic())
        n = len(times)
        stats["requests"] += 1
        stats["in_flight"] += 1
        stats["in_flight_max"] = max(stats["in_flight_max"], stats["in_flight"])
        try:
            delay = latency_s
            for name, count, ra_kind, ra, value in _DIRECTIVE.findall(text):
                within = not count or n <= int(count)
                if name == "slow" and value:
                    delay += float(value)
                elif name == "timeout" and within:
                    delay += hang_s
                elif name == "malformed":
                    await asyncio.sleep(delay)
                    return PlainTextResponse('{"choices": [', media_type="application/json")
                elif name.isdigit() and within:
                    await asyncio.sleep(delay)
                    headers = {}
                    if ra_kind == "ra":
                        headers["Retry-After"] = ra
                    elif ra_kind == "ram":
                        headers["retry-after-ms"] = ra
                    return JSONResponse({"error": f"injected {name}"}, int(name), headers=headers)
            await asyncio.sleep(delay)
            out = f"echo {len(text)}: {text[-24:]}"
            words = len(out.split())
            choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
            if chat:
                choice["message"] = {"role": "assistant", "content": out}
            else:
                choice["text"] = out
            return JSONResponse(
                {
                    "object": "chat.completion" if chat else "text_completion",
                    "model": body.get("model"),
                    "choices": [choice],
                    "usage": {"prompt_tokens": len(text.split()), "completion_tokens": words},
                }
            )
        finally:
            stats["in_flight"] -= 1

    async def chat(request: Request) -> Any:
        return await answer(request, True)

    async def completions(request: Request) -> Any:
        return await answer(request, False)

    async def get_stats(request: Request) -> Any:
        view = {k: v for k, v in stats.items() if k != "attempts"}
        return JSONResponse(view | {"prompts": len(stats["attempts"])})

    async def reset(request: Request) -> Any:
        stats.update(requests=0, in_flight_max=stats["in_flight"], attempts={})
        return JSONResponse({"ok": True})

    app.router.routes.extend(
        [
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/stats", get_stats, methods=["GET"]),
            Route("/reset", reset, methods=["POST"]),
        ]
    )
    return app


@contextlib.contextmanager
def running(app: Any, *, port: int = 0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 in a thread; yields its base URL (``http://127.0.0.1:N/v1``)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, log_level="warning", lifespan="on", backlog=4096)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start within 30 s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    args = ap.parse_args(argv)
    app = fault_app(args.latency)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", backlog=4096)


if __name__ == "__main__":
    main()
