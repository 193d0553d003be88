"""Continuous batching over a dense KV cache, for :class:`~gpuflows.models.llm.engine.LocalEngine`
(``batching="refill"``): at most ``batch size`` rows decode together, and the slots of rows that
finish are taken by the next pending requests, so the batch stays full until the queue runs dry
(in length-bucketed batches a row that ends early leaves a smaller batch whose steps cost nearly
as much: decode is weight-bandwidth bound).

* The prompts' common prefix (a system prompt) is prefilled once (the engine's prefix memo) and
  copied to every admitted row.
* Free slots are filled once ``1 / ADMIT_SHARE`` of the batch is free (one prefill forward for
  several new rows, not one per finished row); the admitted rows are prefilled in groups of
  similar length (:data:`PAD_BUDGET`), logits of the last position only, then merged into the
  running cache: the shorter side is padded on the left, masked; each row keeps its own position
  ids, so padding never shifts a row's positions. Leading columns that are padding for every row
  are trimmed when rows leave.
* Every row keeps its own settings (greedy or its own seeded generator, cap, stop strings), so
  a row's text does not depend on its neighbours: in float32 on the CPU a refill result equals
  the one-at-a-time result (tested).

Requests are queued longest output cap first, so the short ones fill the tail. No Prefect.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from typing import Any

from gpuflows.models.llm.config import LLMResult
from gpuflows.models.llm.sampling import choose_tokens

PAD_BUDGET = {"cpu": 64, "cuda": 4096}
"""Padding positions a prefill group may add rather than run one more forward: on the CPU a
forward's weight pass costs about 25-60 prefill tokens; on a GPU launches dominate a small one."""
ADMIT_SHARE = 8
"""Rows are admitted once ``batch size / ADMIT_SHARE`` slots are free (or the queue fits, or the
batch is empty): one prefill forward for several new rows instead of one per finished row."""


def supports_refill(model: Any) -> bool:
    """Only plain full-attention dynamic caches can be padded and merged row-wise."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=model.config)
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)


def _pad_left(x: Any, length: int) -> Any:
    import torch.nn.functional as F

    extra = length - x.shape[-2]
    return F.pad(x, (0, 0, extra, 0)) if extra else x


def _merge(cache: Any, mask: Any, new: Any, new_mask: Any) -> Any:
    """``cache`` += the rows of ``new`` (left-padded to a common length); returns the mask."""
    import torch
    import torch.nn.functional as F

    length = max(mask.shape[1], new_mask.shape[1])
    for layer, add in zip(cache.layers, new.layers, strict=True):
        layer.keys = torch.cat([_pad_left(layer.keys, length), _pad_left(add.keys, length)])
        layer.values = torch.cat([_pad_left(layer.values, length), _pad_left(add.values, length)])

    def pad(m: Any) -> Any:
        return F.pad(m, (length - m.shape[1], 0))

    return torch.cat([pad(mask), pad(new_mask)])


def _groups(items: list[Any], pad_budget: int) -> list[list[Any]]:
    """Admitted rows in prefill groups: sorted by length, a row joins the previous group while
    the padding it adds stays within ``pad_budget`` positions (a forward's fixed cost, in
    tokens: one pass over the weights)."""
    items = sorted(items, key=lambda it: len(it.ids))
    out: list[list[Any]] = []
    for it in items:
        if out:
            g = out[-1]
            added = len(g) * (len(it.ids) - len(g[-1].ids))  # the group's rows pad up to it
            if added <= pad_budget:
                g.append(it)
                continue
        out.append([it])
    return out


def run_refill(engine: Any, items: Sequence[Any], prefix_len: int) -> Iterator[tuple[Any, Any]]:
    """Each item's result as it finishes (see the module docstring)."""
    import torch
    from transformers import DynamicCache

    dev, c, tm = engine._input_device(), engine.counts, engine.timings
    rows_max = max(1, engine.sizer.size)
    admit = max(1, rows_max // ADMIT_SHARE)
    pad_budget = PAD_BUDGET["cuda" if str(dev).startswith("cuda") else "cpu"]
    queue = sorted(items, key=lambda it: (-it.req.max_new_tokens, len(it.ids), it.ids))
    p = prefix_len
    t_start = time.perf_counter()
    prefix = None
    if p:
        with torch.inference_mode():
            prefix, computed = engine._prefix_cache(tuple(queue[0].ids[:p]))
        c["prefill_tokens_computed"] += computed
    tm["prefill_s"] += time.perf_counter() - t_start
    active: list[dict[str, Any]] = []
    cache = mask = logits = None
    step = 0
    while queue or active:
        free = rows_max - len(active)
        if queue and free and (not active or free >= min(admit, len(queue))):
            t0 = time.perf_counter()  # admit: prefill the new rows, merge their cache
            take, queue = queue[:free], queue[free:]
            for group in _groups(take, pad_budget):
                g = len(group)
                s = max(len(it.ids) for it in group) - p
                ids = torch.full((g, s), engine.pad_id, dtype=torch.long)
                gmask = torch.zeros((g, p + s), dtype=torch.long)
                gmask[:, :p] = 1
                for r, it in enumerate(group):
                    suffix = it.ids[p:]
                    ids[r, s - len(suffix) :] = torch.tensor(suffix)
                    gmask[r, p + s - len(suffix) :] = 1
                pos = (gmask.cumsum(-1) - 1).clamp(min=0)
                gcache = copy.deepcopy(prefix) if prefix is not None else None
                if gcache is None:
                    gcache = DynamicCache(config=engine.model.config)
                elif g > 1:
                    gcache.batch_repeat_interleave(g)
                gmask = gmask.to(dev)
                with torch.inference_mode():
                    out = engine.model(
                        input_ids=ids.to(dev),
                        attention_mask=gmask,
                        position_ids=pos[:, p:].to(dev),
                        past_key_values=gcache,
                        use_cache=True,
                        logits_to_keep=1,
                    )
                glogits = out.logits[:, -1, :].float()
                del out
                real = sum(len(it.ids) for it in group) - g * p
                c["batches"] += 1
                c["calls"] += g
                c["prefill_tokens_requested"] += sum(len(it.ids) for it in group)
                c["prefill_tokens_computed"] += real
                c["prefill_pad_positions"] += g * s - real
                for it in group:
                    gen = torch.Generator(device=glogits.device)
                    gen.manual_seed(it.req.sample_seed())
                    state = {"item": it, "gen": gen, "out": [], "pos": len(it.ids) - 1}
                    active.append(state | {"step": step, "finish": None, "text": None})
                if cache is None:
                    cache, mask, logits = gcache, gmask, glogits
                else:
                    mask = _merge(cache, mask, gcache, gmask)
                    logits = torch.cat([logits, glogits])
            tm["prefill_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        tokens = choose_tokens(logits, [a["item"].req for a in active], [a["gen"] for a in active])
        keep: list[int] = []
        chosen = tokens.tolist()  # one device-to-host copy per step, not one per row
        for r, a in enumerate(active):
            tok, req = chosen[r], a["item"].req
            if tok in engine.eos_ids:
                a["finish"] = "stop"
            else:
                a["out"].append(tok)
                if req.stop:
                    text = engine.tokenizer.decode(a["out"], skip_special_tokens=True)
                    cut = min((text.find(x) for x in req.stop if x in text), default=-1)
                    if cut >= 0:
                        a["finish"], a["text"] = "stop", text[:cut]
                if a["finish"] is None and len(a["out"]) >= req.max_new_tokens:
                    a["finish"] = "length"
            if a["finish"] is None:
                keep.append(r)
            else:
                yield a["item"], _result(engine, a, rows_max)
        c["decode_steps"] += 1
        c["decode_row_steps"] += len(active)
        step += 1
        if not keep:
            active, cache = [], None
            tm["decode_host_s"] += time.perf_counter() - t0
            continue
        if len(keep) < len(active):
            sel = torch.tensor(keep, device=dev)
            cache.batch_select_indices(sel)
            mask, tokens = mask[sel], tokens[sel]
            active = [active[r] for r in keep]
            lead = int((mask.cumsum(-1) == 0).sum(-1).min())  # columns that are padding for all
            if lead:
                for layer in cache.layers:
                    layer.keys, layer.values = layer.keys[:, :, lead:], layer.values[:, :, lead:]
                mask = mask[:, lead:]
        mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=dev)], 1)
        for a in active:
            a["pos"] += 1
        position = torch.tensor([[a["pos"]] for a in active], device=dev)
        t1 = time.perf_counter()
        tm["decode_host_s"] += t1 - t0
        with torch.inference_mode():  # per call: a generator must not leave it on between yields
            out = engine.model(
                input_ids=tokens.to(dev)[:, None],
                attention_mask=mask,
                position_ids=position,
                past_key_values=cache,
                use_cache=True,
            )
        logits = out.logits[:, -1, :].float()
        del out
        tm["decode_forward_s"] += time.perf_counter() - t1


def _result(engine: Any, a: dict[str, Any], rows_max: int) -> LLMResult:
    it = a["item"]
    text = a["text"]
    if text is None:
        text = engine.tokenizer.decode(a["out"], skip_special_tokens=True)
    engine.counts["output_tokens"] += len(a["out"])
    return LLMResult(
        id=it.req.id,
        text=text,
        finish_reason=a["finish"],
        prompt_tokens=len(it.ids),
        completion_tokens=len(a["out"]),
        attempts=1,
        batch={"batching": "refill", "max_rows": rows_max, "admitted_at_step": a["step"]},
    )
