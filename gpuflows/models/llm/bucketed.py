"""One static batch of the engine's ``bucketed`` mode (see
:mod:`gpuflows.models.llm.engine`): the shared prefix from the engine's memo, the suffixes
left-padded into one prefill (last position's logits only), then one decoding loop in which a
row that finishes leaves the batch (its KV rows dropped) and is not replaced. No Prefect."""

from __future__ import annotations

import time
from typing import Any

from gpuflows.models.llm.config import LLMResult
from gpuflows.models.llm.sampling import choose_tokens


def common_prefix(seqs: Any) -> int:
    """Length of the longest prefix every sequence shares."""
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return n


def decode_batch(engine: Any, items: list[Any], torch: Any, dynamic_cache: Any) -> list[LLMResult]:
    """Results for ``items`` (rendered requests with ``req`` and ``ids``), in their order."""

    t_start = time.perf_counter()
    dev = engine._input_device()
    b = len(items)
    seqs = [it.ids for it in items]
    lens = [len(s) for s in seqs]
    shared = min(common_prefix(seqs), min(lens) - 1)
    memo = engine._memo
    memo_len = 0
    if memo is not None and len(memo[0]) <= min(lens) - 1:
        if all(tuple(s[: len(memo[0])]) == memo[0] for s in seqs):
            memo_len = len(memo[0])
    p = shared if (b > 1 and shared >= engine.min_prefix) else 0
    p = max(p, memo_len if memo_len >= engine.min_prefix else 0)
    if p:
        cache, computed = engine._prefix_cache(tuple(seqs[0][:p]))
        if b > 1:
            cache.batch_repeat_interleave(b)
    else:
        cache, computed = dynamic_cache(config=engine.model.config), 0
    s = max(lens) - p
    input_ids = torch.full((b, s), engine.pad_id, dtype=torch.long)
    mask = torch.zeros((b, p + s), dtype=torch.long)
    mask[:, :p] = 1
    for r, seq in enumerate(seqs):
        suffix = seq[p:]
        input_ids[r, s - len(suffix) :] = torch.tensor(suffix)
        mask[r, p + s - len(suffix) :] = 1
    position = (mask.cumsum(-1) - 1).clamp(min=0)
    input_ids, mask, position = input_ids.to(dev), mask.to(dev), position.to(dev)
    out = engine.model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position[:, p:],
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    engine.counts["batches"] += 1
    engine.counts["calls"] += b
    engine.counts["prefill_tokens_requested"] += sum(lens)
    engine.counts["prefill_tokens_computed"] += computed + sum(lens) - b * p
    engine.counts["prefill_pad_positions"] += b * s - (sum(lens) - b * p)
    logits = out.logits[:, -1, :].float()
    del out
    t_loop = time.perf_counter()
    engine.timings["prefill_s"] += t_loop - t_start
    t_fwd = 0.0
    gens = [torch.Generator(device=logits.device) for _ in items]
    for g, it in zip(gens, items, strict=True):
        g.manual_seed(it.req.sample_seed())
    generated: list[list[int]] = [[] for _ in items]
    finish: list[str | None] = [None] * b
    texts: list[str | None] = [None] * b
    rows = list(range(b))  # batch row -> item index, for the rows still decoding
    last_pos = position[:, -1]
    batch_no = engine.counts["batches"]
    for _step in range(max(it.req.max_new_tokens for it in items)):
        tokens = choose_tokens(logits, [items[i].req for i in rows], [gens[i] for i in rows])
        keep: list[int] = []
        chosen = tokens.tolist()  # one device-to-host copy per step, not one per row
        for r, i in enumerate(rows):
            tok = chosen[r]
            req = items[i].req
            if tok in engine.eos_ids:
                finish[i] = "stop"
            else:
                generated[i].append(tok)
                if req.stop:
                    text = engine.tokenizer.decode(generated[i], skip_special_tokens=True)
                    cut = min((text.find(x) for x in req.stop if x in text), default=-1)
                    if cut >= 0:
                        finish[i], texts[i] = "stop", text[:cut]
                if finish[i] is None and len(generated[i]) >= req.max_new_tokens:
                    finish[i] = "length"
            if finish[i] is None:
                keep.append(r)
        engine.counts["decode_steps"] += 1
        engine.counts["decode_row_steps"] += len(rows)
        if not keep:
            break
        if len(keep) < len(rows):
            sel = torch.tensor(keep, device=logits.device)
            cache.batch_select_indices(sel.to(dev))
            mask, last_pos, tokens = mask[keep], last_pos[keep], tokens[keep]
            rows = [rows[r] for r in keep]
        mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=dev)], 1)
        last_pos = last_pos + 1
        t0 = time.perf_counter()
        out = engine.model(
            input_ids=tokens.to(dev)[:, None],
            attention_mask=mask,
            position_ids=last_pos[:, None],
            past_key_values=cache,
            use_cache=True,
        )
        logits = out.logits[:, -1, :].float()
        del out
        t_fwd += time.perf_counter() - t0
    engine.timings["decode_forward_s"] += t_fwd
    engine.timings["decode_host_s"] += time.perf_counter() - t_loop - t_fwd
    results = []
    for i, it in enumerate(items):
        text = texts[i]
        if text is None:
            text = engine.tokenizer.decode(generated[i], skip_special_tokens=True)
        engine.counts["output_tokens"] += len(generated[i])
        results.append(
            LLMResult(
                id=it.req.id,
                text=text,
                finish_reason=finish[i] or "length",
                prompt_tokens=len(it.ids),
                completion_tokens=len(generated[i]),
                attempts=1,
                batch={
                    "batching": "bucketed",
                    "batch": batch_no,
                    "size": b,
                    "shared_prefix_tokens": p,
                },
            )
        )
    return results
