"""The local generation engine: many requests through one transformers causal LM, batched.

``LocalEngine.generate(requests)`` (results in request order) and ``stream(requests)`` (results
as their batch finishes):

* Each request is rendered to token ids: a raw ``prompt`` as the tokenizer encodes it, chat
  ``messages`` through the tokenizer's chat template with the generation prompt.
* The call cache answers what it has (no model call); the rest run in one of three batching
  modes (``batching=``; ``"auto"`` is :func:`default_batching`, ``refill``):

  - ``refill`` (:mod:`gpuflows.models.llm.refill`): continuous batching over a dense
    ``DynamicCache``; at most ``BatchSizer.size`` rows decode together and the slots of rows
    that finish are taken by the next requests. Falls back to ``bucketed`` for a model whose
    cache layers cannot be merged row-wise, and for what is left after an OOM (halved batch).
  - ``bucketed``: requests sorted by output cap, then prompt length, in static batches of
    ``BatchSizer.size`` (from the VRAM budget on a GPU, an OOM halves it; :data:`CPU_BATCH`
    on the CPU); a row that finishes leaves the batch (its KV rows dropped), and is not
    replaced, so the rest decode at a smaller batch.
  - ``continuous`` (:mod:`gpuflows.models.llm.continuous`): greedy requests through
    transformers' ``ContinuousBatchingManager`` (paged cache); sampled ones in bucketed batches.

* Our decoding loops (refill, bucketed) call ``model(...)`` with a ``DynamicCache`` so every
  row keeps its own settings: greedy or sampled (temperature, top_p, a torch generator per
  request seeded by ``(seed, sample_index)``), ``max_new_tokens``, stop strings and
  end-of-sequence. Prefills compute the last position's logits only.
* Shared prefixes: when a batch's prompts share at least ``shared_prefix_min_tokens`` leading
  tokens, the prefix is prefilled once at batch size 1 and its cache copied to every row; the last
  prefix is kept, so consecutive batches that share it (a system prompt, a few-shot block) do not
  compute it again. ``record()`` reports prefill tokens requested vs computed.
* Padding sits between the shared prefix and each row's suffix (left of the suffix), masked, with
  position ids that skip it: in float32 on the CPU a batched greedy result equals the unbatched
  one (tested). In bf16/fp16 on a GPU they can differ (padding changes the kernels' reduction
  shapes); each result's ``batch`` field records the batch it ran in.

No Prefect.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gpuflows.core.faults import InputError
from gpuflows.core.memory.batch_sizer import BatchSizer, ItemOOM
from gpuflows.models.llm.bucketed import common_prefix
from gpuflows.models.llm.cache import CallCache, call_key
from gpuflows.models.llm.config import CallError, LLMRequest, LLMResult
from gpuflows.models.llm.results import ResultStream

Batching = Literal["auto", "bucketed", "refill", "continuous"]
CPU_BATCH = 16
"""Rows per batch on the CPU when none is given (decode is weight-bandwidth bound: a step of 16
rows costs about twice a step of one)."""


def default_batching(device: str) -> str:
    """What ``batching="auto"`` picks on ``device``: ``refill``, the fastest of the three on the
    CPU (``bench/llm_calls.py``, SmolLM2 float32, 48 requests of mixed prompt lengths and
    output caps, batch 16, one thread on a loaded host: refill 4.3x one-at-a-time, bucketed
    3.0x; an earlier run with all three: refill 2.9x, bucketed 2.4x, transformers' continuous
    batching 2.1x). On a GPU the same until the GPU bench, which measures all three, says
    otherwise."""
    return "refill"


_BATCHING_NOTE = {
    "bucketed": "length-bucketed static batches; finished rows leave the batch",
    "refill": "continuous batching over a dense KV cache: a finished row's slot takes the next "
    "request at the next step",
    "continuous": "transformers continuous batching (paged cache; a finished request's slot "
    "takes the next one) for greedy requests; sampled ones in bucketed batches",
}


@dataclass
class _Item:
    index: int
    req: LLMRequest
    ids: list[int]
    key: str


class LocalEngine(ResultStream):
    """A loaded causal LM and tokenizer; see the module docstring.

    Args:
        model, tokenizer: a transformers causal LM (eval mode, on ``device``) and its tokenizer.
        identity: the model's identity for the call cache (weights fingerprint + dtype).
        cache: the call cache, or None for none.
        batch_size: fixed rows per batch; None sizes it from ``capacity_bytes`` (GPU) or uses the
            CPU default.
        batching: ``"refill"``, ``"bucketed"``, ``"continuous"`` or ``"auto"`` (see the module
            docstring; recorded in ``record()`` and each result's ``batch``).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        identity: str,
        device: str = "cpu",
        cache: CallCache | None = None,
        batch_size: int | None = None,
        capacity_bytes: int = 0,
        shared_prefix_min_tokens: int = 16,
        synthetic: bool = False,
        source: str = "",
        batching: Batching = "auto",
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.identity, self.device, self.cache = identity, device, cache
        self.synthetic, self.source = synthetic, source
        if batching not in ("auto", "bucketed", "refill", "continuous"):
            raise InputError(
                f"batching={batching!r}: use 'auto', 'bucketed', 'refill' or 'continuous'"
            )
        self.batching: str = default_batching(device) if batching == "auto" else batching
        if batch_size is None and not device.startswith("cuda"):
            batch_size = CPU_BATCH
        self.capacity_bytes = capacity_bytes
        self.sizer = BatchSizer(batch_size, device, capacity_bytes)
        self.min_prefix = shared_prefix_min_tokens
        self.pad_id = self._pad_id()
        self.eos_ids = self._eos_ids()
        self._memo: tuple[tuple[int, ...], Any] | None = None  # last prefix and its KV cache
        self.counts = {
            "calls": 0,  # requests the model ran
            "batches": 0,
            "prefill_tokens_requested": 0,
            "prefill_tokens_computed": 0,
            "prefill_pad_positions": 0,
            "prefix_reuses": 0,
            "output_tokens": 0,
            "decode_steps": 0,
            "decode_row_steps": 0,  # rows decoded, summed over steps (/ steps: mean batch)
        }
        self.seconds = 0.0
        #: bucketed path, seconds in: prefills (shared prefix + batch), decode forwards, and the
        #: host work between them (choosing tokens, stop checks, dropping finished rows); on a
        #: GPU a forward's time shows where the next step waits for it
        self.timings = dict.fromkeys(("prefill_s", "decode_forward_s", "decode_host_s"), 0.0)

    # -- rendering ----------------------------------------------------------------------------

    def _pad_id(self) -> int:
        tok = self.tokenizer
        for cand in (tok.pad_token_id, tok.eos_token_id, self.model.generation_config.pad_token_id):
            if cand is not None:
                return int(cand)
        return 0

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for cand in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            if cand is None:
                continue
            ids.update(int(c) for c in (cand if isinstance(cand, list | tuple) else [cand]))
        return ids

    def render(self, req: LLMRequest) -> list[int]:
        """The token ids the model sees for ``req`` (what the cache key holds)."""
        if req.images:
            raise InputError(
                f"request {req.id!r} has images and this is a text-only model: use a "
                "vision-language model (gpuflows.models.llm.vlm_load)"
            )
        if req.prompt is not None:
            ids = self.tokenizer(req.prompt)["input_ids"]
        else:
            if not getattr(self.tokenizer, "chat_template", None):
                raise InputError(
                    f"request {req.id!r}: messages need a chat template, and this model's "
                    "tokenizer has none: send a raw prompt instead"
                )
            text = self.tokenizer.apply_chat_template(
                [dict(m) for m in req.messages or ()], tokenize=False, add_generation_prompt=True
            )
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise InputError(f"request {req.id!r}: the prompt renders to no tokens; give some text")
        return list(ids)

    # -- public ---------------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """For a run's record: counts, prefill saved, batch sizing, cache hits/misses."""
        c = dict(self.counts)
        c["prefill_tokens_saved"] = c["prefill_tokens_requested"] - c["prefill_tokens_computed"]
        return {
            "backend": "causal-lm",
            "model": self.identity,
            "source": self.source,
            "synthetic": self.synthetic,
            "device": self.device,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "counts": c,
            "model_seconds": round(self.seconds, 3),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "batch_sizer": self.sizer.record(),
            "cache": self.cache.stats() if self.cache is not None else None,
            "batching": self.batching,
            "batching_note": _BATCHING_NOTE[self.batching],
        }

    # -- work -----------------------------------------------------------------------------------

    def _stream(self, requests: Sequence[LLMRequest]) -> Iterator[tuple[int, LLMResult]]:
        pending: list[_Item] = []
        for i, req in enumerate(requests):
            ids = self.render(req)
            key = call_key(self.identity, ids, req.gen_params())
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                yield i, hit.model_copy(update={"id": req.id})
            else:
                pending.append(_Item(i, req, ids, key))
        if self.batching == "continuous" and any(it.req.greedy for it in pending):
            from gpuflows.models.llm.continuous import run_continuous

            greedy = [it for it in pending if it.req.greedy]
            pending = [it for it in pending if not it.req.greedy]  # own seeded generators
            for item, res in run_continuous(self, greedy):
                if self.cache is not None:
                    self.cache.put(item.key, self.identity, res)
                yield item.index, res
        if self.batching == "refill" and pending:
            pending = yield from self._refill(pending)
        # by output cap, then prompt length: a batch's rows tend to end together (a row that
        # ends early leaves a smaller batch whose steps cost nearly as much), then little padding
        pending.sort(key=lambda it: (it.req.max_new_tokens, len(it.ids), it.ids))
        pos = 0
        while pos < len(pending):
            chunk = pending[pos : pos + max(1, self.sizer.size)]
            pos += len(chunk)
            for item, res in zip(chunk, self.sizer.run(chunk, self._run_batch), strict=True):
                if isinstance(res, ItemOOM):
                    cap = self.sizer.capacity
                    err = CallError(kind="oom", message=res.message(cap), attempts=1)
                    res = LLMResult(id=item.req.id, finish_reason="error", error=err)
                elif self.cache is not None:
                    self.cache.put(item.key, self.identity, res)
                yield item.index, res

    def _refill(self, pending: list[_Item]) -> Iterator[tuple[int, LLMResult]]:
        """Results through :mod:`~gpuflows.models.llm.refill`; returns what is left to run in
        bucketed batches (all when the model's cache cannot be merged row-wise, the unfinished
        ones with a halved batch after an OOM)."""
        from gpuflows.core.faults import is_oom, release_memory
        from gpuflows.models.llm.refill import run_refill, supports_refill

        if not supports_refill(self.model):
            return pending
        seqs = [it.ids for it in pending]
        shared = min(common_prefix(seqs), min(len(s) for s in seqs) - 1)
        done: set[int] = set()
        t0 = time.perf_counter()
        try:
            for item, res in run_refill(self, pending, shared if shared >= self.min_prefix else 0):
                done.add(item.index)
                if self.cache is not None:
                    self.cache.put(item.key, self.identity, res)
                yield item.index, res
        except Exception as exc:
            if not is_oom(exc):
                raise
            release_memory()
            self.sizer.size = max(1, self.sizer.size // 2)
        finally:
            self.seconds += time.perf_counter() - t0
        return [it for it in pending if it.index not in done]

    def _prefix_cache(self, prefix: tuple[int, ...]) -> tuple[Any, int]:
        """A batch-1 KV cache of ``prefix`` and the tokens computed for it (reuses the memo)."""
        import torch
        from transformers import DynamicCache

        memo = self._memo
        if memo is not None and memo[0] == prefix:
            self.counts["prefix_reuses"] += 1
            return copy.deepcopy(memo[1]), 0
        start, cache = 0, DynamicCache(config=self.model.config)
        if (
            memo is not None
            and len(memo[0]) >= self.min_prefix
            and prefix[: len(memo[0])] == memo[0]
        ):
            start, cache = len(memo[0]), copy.deepcopy(memo[1])
            self.counts["prefix_reuses"] += 1
        ids = torch.tensor([prefix[start:]], device=self._input_device())
        n = len(prefix)
        self.model(
            input_ids=ids,
            attention_mask=torch.ones((1, n), dtype=torch.long, device=ids.device),
            position_ids=torch.arange(start, n, device=ids.device)[None],
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self._memo = (prefix, copy.deepcopy(cache))
        return cache, n - start

    def _input_device(self) -> Any:
        return self.model.get_input_embeddings().weight.device

    def _run_batch(self, items: list[_Item]) -> list[LLMResult]:
        import torch
        from transformers import DynamicCache

        t0 = time.perf_counter()
        with torch.inference_mode():
            results = self._decode(items, torch, DynamicCache)
        self.seconds += time.perf_counter() - t0
        return results

    def _decode(self, items: list[_Item], torch: Any, dynamic_cache: Any) -> list[LLMResult]:
        from gpuflows.models.llm.bucketed import decode_batch

        return decode_batch(self, items, torch, dynamic_cache)
