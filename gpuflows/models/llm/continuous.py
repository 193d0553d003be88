"""Continuous batching for :class:`~gpuflows.models.llm.engine.LocalEngine`: transformers'
``ContinuousBatchingManager`` (paged KV cache, a request that finishes frees its slot for the next
one at the next step, full cache blocks shared between prompts with the same prefix).

Only greedy requests go this way: the manager samples from one generator for the whole batch,
so a sampled request's text would depend on its neighbours; sampled requests stay on the
bucketed path, where each has its own seeded generator. Stop strings: the request streams its
tokens, and the first stop string found cancels it (the text is cut there, as on the bucketed
path). The end-of-sequence token is not part of the text (as the bucketed path and
``model.generate`` + decode with ``skip_special_tokens``).

Sizing: left to itself the manager takes 60% of RAM (CPU) or 90% of the free VRAM (GPU) for its
cache; we give it the blocks the workload needs: ``batch size`` rows of the longest prompt +
output, plus one spare block per row. Each ``generate`` call is one session (manager built,
warmed up -- CUDA graphs captured on a GPU -- and stopped), so that cost is in its time.

No Prefect.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

from gpuflows.models.llm.config import LLMResult

PAGE_SIZE = 32  # tokens per cache page: small pages share more of a short common prefix


def cb_config(model: Any, items: Sequence[Any], max_requests: int) -> Any:
    """The ``ContinuousBatchingConfig`` for these requests (see the module docstring)."""
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    longest = max(len(it.ids) + it.req.max_new_tokens for it in items)
    rows = min(max_requests, len(items))
    cuda = model.device.type == "cuda"
    prompt_tokens = sum(len(it.ids) for it in items)
    return ContinuousBatchingConfig(
        page_size=PAGE_SIZE,
        num_blocks=rows * (math.ceil(longest / PAGE_SIZE) + 1),
        max_batch_tokens=max(256, min(8192 if cuda else 2048, prompt_tokens)),
        max_requests_per_batch=rows,
        allow_block_sharing=True,
        auto_switch_to_flash=cuda,
        seed=0,
    )


def run_continuous(engine: Any, items: Sequence[Any]) -> Iterator[tuple[Any, LLMResult]]:
    """Each greedy item's result through one continuous-batching session, as each finishes.

    ``items`` carry ``index``, ``req`` and ``ids`` (the engine's rendered requests).
    """
    import torch
    from transformers import GenerationConfig

    model, tok = engine.model, engine.tokenizer
    eos = sorted(engine.eos_ids) or [-1]
    gen = GenerationConfig(
        max_new_tokens=max(it.req.max_new_tokens for it in items),
        do_sample=False,
        eos_token_id=eos,
        pad_token_id=engine.pad_id,
    )
    cfg = cb_config(model, items, max(1, engine.sizer.size))
    t0 = time.perf_counter()
    by_id = {f"r{it.index}": it for it in items}
    matched = [0]
    manager = model.init_continuous_batching(generation_config=gen, continuous_batching_config=cfg)
    try:
        manager.warmup()  # builds the batch processor (and captures CUDA graphs on a GPU)
        cache = manager.batch_processor.cache
        search = cache.search_prefix_match

        def counted(request_id: str, prompt_ids: list[int]) -> int:
            n = search(request_id, prompt_ids)
            matched[0] += n
            return n

        cache.search_prefix_match = counted  # count the prefill tokens the shared blocks saved
        manager.start()
        # longest prompts first: the shared prefix's blocks are written before the rest arrive
        for rid, it in sorted(by_id.items(), key=lambda kv: -len(kv[1].ids)):
            manager.add_request(
                it.ids,
                request_id=rid,
                max_new_tokens=it.req.max_new_tokens,
                streaming=bool(it.req.stop),
                eos_token_id=eos,
            )
        left = set(by_id)
        while left:
            out = manager.get_result(timeout=1.0)
            if out is None:
                if not manager.is_running():
                    raise RuntimeError("continuous batching stopped before every request finished")
                continue
            rid = out.request_id
            if rid not in left:
                continue  # a streamed step of a request we already cut at its stop string
            it = by_id[rid]
            if out.error is not None:
                raise RuntimeError(f"continuous batching failed request {it.req.id!r}: {out.error}")
            toks = [t for t in out.generated_tokens if t not in engine.eos_ids]
            text = tok.decode(toks, skip_special_tokens=True)
            cut = min((text.find(x) for x in it.req.stop if x in text), default=-1)
            if cut < 0 and not out.is_finished():
                continue
            if cut >= 0 and not out.is_finished():
                manager.cancel_request(rid)
            left.discard(rid)
            if cut >= 0:
                reason, text = "stop", text[:cut]
            else:
                ended = len(toks) < len(out.generated_tokens)
                reason = "stop" if ended or len(toks) < it.req.max_new_tokens else "length"
            engine.counts["output_tokens"] += len(toks)
            yield (
                it,
                LLMResult(
                    id=it.req.id,
                    text=text,
                    finish_reason=reason,
                    prompt_tokens=len(it.ids),
                    completion_tokens=len(toks),
                    attempts=1,
                    batch={"batching": "continuous", "max_rows": cfg.max_requests_per_batch},
                ),
            )
    finally:
        with torch.inference_mode():
            manager.stop(block=True, timeout=30)
        manager.destroy()
        engine.seconds += time.perf_counter() - t0
    c = engine.counts
    c["calls"] += len(items)
    c["continuous_sessions"] = c.get("continuous_sessions", 0) + 1
    requested = sum(len(it.ids) for it in items)
    c["prefill_tokens_requested"] += requested
    c["prefill_tokens_computed"] += requested - matched[0]
