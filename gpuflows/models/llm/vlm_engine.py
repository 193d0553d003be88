"""The local vision-language engine: requests with images through one image-text-to-text model.

``VLMEngine.generate(requests)`` has the text engine's interface (one :class:`LLMResult` per
:class:`LLMRequest`, in request order; ``stream`` as batches finish; ``record`` for the run):

* A request's chat ``messages`` (text parts and ``{"type": "image"}`` parts, its ``images`` as
  bytes: :mod:`gpuflows.models.llm.images`) are rendered by the processor's chat template with
  the generation prompt; a raw ``prompt`` without images is used as is.
* Call cache key: model identity (weights + processor files fingerprint, dtype), the rendered
  text, the SHA-256 of every image's bytes (never a path), every generation parameter.
* The rest are sorted by (images, prompt tokens) and run in static batches of
  ``BatchSizer.size`` (from the VRAM budget on a GPU; an OOM halves it): the processor builds
  one left-padded batch (``padding_side='left'``) and ``model.generate`` decodes it, so every
  architecture's own image handling (LLaVA's image tokens, Qwen2-VL's M-RoPE) is transformers'.
* Per row, in one batch: greedy or sampled (:class:`_RowSampler`: temperature / top_p from a
  torch generator seeded by the request's ``(seed, sample_index)``, the same draw the text engine
  makes), its own ``max_new_tokens`` and stop strings (:class:`_RowStop`). A finished row keeps
  its slot until the batch ends (``generate`` has static batches); the batch ends when every
  row has finished.
* Determinism: in float32 on the CPU a batched greedy result equals the one-at-a-time result
  (tested). In bf16 on a GPU padding changes kernel shapes and they can differ; each result's
  ``batch`` field records the batch it ran in.

Placement and VRAM slots come from :mod:`gpuflows.models.llm.placement` (the meta-device plan:
weights + KV cache of the text model's layers). No Prefect.
"""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from gpuflows.core.faults import InputError
from gpuflows.core.memory.batch_sizer import BatchSizer, ItemOOM
from gpuflows.models.llm.cache import CallCache, call_key
from gpuflows.models.llm.config import CallError, LLMRequest, LLMResult
from gpuflows.models.llm.results import ResultStream

_DECODED_MAX = 256  # decoded images kept by digest (the three calls of one record share one)


@dataclass
class _Item:
    index: int
    req: LLMRequest
    text: str
    digests: list[str]
    tokens: int
    key: str


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [dict(p) for p in content]


def _row_sampler_cls() -> Any:
    from transformers import LogitsProcessor

    class _RowSampler(LogitsProcessor):
        """Sampled rows: draw the next token from the row's own generator and leave only it
        (greedy decoding then picks it); greedy rows are left as they are."""

        def __init__(self, reqs: list[LLMRequest]) -> None:
            self.reqs, self.gens = reqs, None

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            import torch

            if self.gens is None:
                self.gens = []
                for req in self.reqs:
                    g = torch.Generator(device=scores.device)
                    g.manual_seed(req.sample_seed())
                    self.gens.append(g)
            for r, req in enumerate(self.reqs):
                if req.greedy:
                    continue
                probs = torch.softmax(scores[r].float() / req.temperature, -1)
                if req.top_p < 1.0:
                    sorted_p, order = probs.sort(descending=True)
                    sorted_p[(sorted_p.cumsum(-1) - sorted_p) > req.top_p] = 0.0
                    probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
                tok = torch.multinomial(probs, 1, generator=self.gens[r])[0]
                scores[r] = float("-inf")
                scores[r, tok] = 0.0
            return scores

    return _RowSampler


def _row_stop_cls() -> Any:
    from transformers import StoppingCriteria

    class _RowStop(StoppingCriteria):
        """Per row: end of sequence, its ``max_new_tokens``, or one of its stop strings. Records
        how many new tokens each row had when it ended (``done_at``)."""

        def __init__(self, reqs: list[LLMRequest], prompt_len: int, tok: Any, eos: set[int]):
            self.reqs, self.prompt_len, self.tok, self.eos = reqs, prompt_len, tok, eos
            self.done_at: list[int | None] = [None] * len(reqs)

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            n = input_ids.shape[1] - self.prompt_len
            out = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            for r, req in enumerate(self.reqs):
                if self.done_at[r] is None:
                    last = int(input_ids[r, -1])
                    if last in self.eos or n >= req.max_new_tokens:
                        self.done_at[r] = n
                    elif req.stop:
                        new = input_ids[r, self.prompt_len :].tolist()
                        text = self.tok.decode(new, skip_special_tokens=True)
                        if any(s in text for s in req.stop):
                            self.done_at[r] = n
                out[r] = self.done_at[r] is not None
            return out

    return _RowStop


class VLMEngine(ResultStream):
    """A loaded image-text-to-text model and its processor; see the module docstring."""

    accepts_images = True

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        identity: str,
        device: str = "cpu",
        cache: CallCache | None = None,
        batch_size: int | None = None,
        capacity_bytes: int = 0,
        synthetic: bool = False,
        source: str = "",
    ) -> None:
        self.model, self.processor = model, processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.tokenizer.padding_side = "left"
        self.identity, self.device, self.cache = identity, device, cache
        self.synthetic, self.source = synthetic, source
        self.sizer = BatchSizer(batch_size, device, capacity_bytes)
        gen = model.generation_config
        self.eos_ids = {
            int(c)
            for cand in (gen.eos_token_id, self.tokenizer.eos_token_id)
            if cand is not None
            for c in (cand if isinstance(cand, list | tuple) else [cand])
        }
        pad = next(
            (c for c in (gen.pad_token_id, self.tokenizer.pad_token_id) if c is not None), None
        )
        self.pad_id = int(pad) if pad is not None else min(self.eos_ids, default=0)
        self._decoded: OrderedDict[str, Any] = OrderedDict()
        self._decoded_lock = threading.Lock()  # the server checks requests beside a batch
        self.placement: Any = None
        self.counts = {
            "calls": 0,  # requests the model ran
            "batches": 0,
            "images": 0,
            "prefill_tokens": 0,  # prompt tokens (image tokens included), padding excluded
            "prefill_pad_positions": 0,
            "output_tokens": 0,
        }
        self.seconds = 0.0

    # -- rendering ----------------------------------------------------------------------------

    def render(self, req: LLMRequest) -> str:
        """The text the processor sees for ``req`` (image parts as the model's placeholders)."""
        if req.prompt is not None:
            text = req.prompt
        else:
            if not getattr(self.processor, "chat_template", None):
                raise InputError(
                    f"request {req.id!r}: messages need a chat template, and this model's "
                    "processor has none: send a raw prompt instead"
                )
            msgs = [dict(m) | {"content": _text_parts(m["content"])} for m in req.messages or ()]
            text = self.processor.apply_chat_template(
                msgs, add_generation_prompt=True, tokenize=False
            )
        if not text:
            raise InputError(f"request {req.id!r}: the prompt renders to no text; give some")
        return text

    def _image(self, digest: str, data: bytes, where: str) -> Any:
        with self._decoded_lock:
            im = self._decoded.get(digest)
            if im is not None:
                self._decoded.move_to_end(digest)
                return im
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as raw:
                im = raw.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InputError(f"{where}: the image does not decode ({exc})") from None
        with self._decoded_lock:
            self._decoded[digest] = im
            while len(self._decoded) > _DECODED_MAX:
                self._decoded.popitem(last=False)
        return im

    def check(self, req: LLMRequest) -> str:
        """Render ``req`` and decode its images: an :class:`InputError` now, not in a batch."""
        text = self.render(req)
        for k, (d, b) in enumerate(zip(req.image_digests(), req.images, strict=True)):
            self._image(d, b, f"request {req.id!r}: images[{k}]")
        return text

    # -- public ---------------------------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """For a run's record: counts, batch sizing, placement, cache hits/misses."""
        return {
            "backend": "image-text-to-text",
            "model": self.identity,
            "source": self.source,
            "synthetic": self.synthetic,
            "device": self.device,
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "counts": dict(self.counts),
            "model_seconds": round(self.seconds, 3),
            "batch_sizer": self.sizer.record(),
            "placement": self.placement.record() if self.placement is not None else None,
            "cache": self.cache.stats() if self.cache is not None else None,
            "batching": "length-bucketed static batches through model.generate (left padding); "
            "finished rows keep their slot until the batch ends",
        }

    # -- work -----------------------------------------------------------------------------------

    def _stream(self, requests: Sequence[LLMRequest]) -> Iterator[tuple[int, LLMResult]]:
        pending: list[_Item] = []
        items = []
        for i, req in enumerate(requests):  # every request checked before any model call
            text, digests = self.check(req), req.image_digests()
            key = call_key(self.identity, {"text": text, "images": digests}, req.gen_params())
            items.append((i, req, text, digests, key))
        for i, req, text, digests, key in items:
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                yield i, hit.model_copy(update={"id": req.id})
            else:
                n = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                pending.append(_Item(i, req, text, digests, n, key))
        pending.sort(key=lambda it: (len(it.digests), it.tokens, it.text))
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

    def _inputs(self, items: list[_Item]) -> Any:
        import torch

        images = [
            self._image(d, b, f"request {it.req.id!r}")
            for it in items
            for d, b in zip(it.digests, it.req.images, strict=True)
        ]
        kwargs: dict[str, Any] = {"text": [it.text for it in items], "padding": True}
        if images:
            kwargs["images"] = images
        inputs = self.processor(return_tensors="pt", **kwargs)
        dev, dtype = self.model.device, self.model.dtype
        return {
            k: (v.to(dev, dtype) if v.is_floating_point() else v.to(dev))
            if isinstance(v, torch.Tensor)
            else v
            for k, v in inputs.items()
        }

    def _run_batch(self, items: list[_Item]) -> list[LLMResult]:
        import torch
        from transformers import GenerationConfig

        t0 = time.perf_counter()
        reqs = [it.req for it in items]
        inputs = self._inputs(items)
        prompt_len = int(inputs["input_ids"].shape[1])
        stop = _row_stop_cls()(reqs, prompt_len, self.tokenizer, self.eos_ids)
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max(r.max_new_tokens for r in reqs),
            eos_token_id=sorted(self.eos_ids) or None,
            pad_token_id=self.pad_id,
        )
        extra: dict[str, Any] = {"stopping_criteria": [stop]}
        if any(not r.greedy for r in reqs):
            extra["logits_processor"] = [_row_sampler_cls()(reqs)]
        with torch.inference_mode():
            out = self.model.generate(**inputs, generation_config=config, **extra)
        new = out[:, prompt_len:].tolist()
        mask = inputs["attention_mask"]
        real = [int(x) for x in mask.sum(-1).tolist()]
        self.counts["batches"] += 1
        self.counts["calls"] += len(items)
        self.counts["images"] += sum(len(it.digests) for it in items)
        self.counts["prefill_tokens"] += sum(real)
        self.counts["prefill_pad_positions"] += len(items) * prompt_len - sum(real)
        batch = {"batch": self.counts["batches"], "size": len(items)}
        results = []
        for r, it in enumerate(items):
            results.append(self._result(it, new[r], stop.done_at[r], real[r], batch))
        self.seconds += time.perf_counter() - t0
        return results

    def _result(
        self, it: _Item, new: list[int], done_at: int | None, prompt_tokens: int, batch: dict
    ) -> LLMResult:
        req = it.req
        toks = new[: done_at if done_at is not None else len(new)][: req.max_new_tokens]
        finish = "length"
        eos_at = next((k for k, t in enumerate(toks) if t in self.eos_ids), None)
        if eos_at is not None:
            toks, finish = toks[:eos_at], "stop"
        text = self.tokenizer.decode(toks, skip_special_tokens=True)
        cut = min((text.find(s) for s in req.stop if s in text), default=-1)
        if cut >= 0:
            text, finish = text[:cut], "stop"
        self.counts["output_tokens"] += len(toks)
        return LLMResult(
            id=req.id,
            text=text,
            finish_reason=finish,  # type: ignore[arg-type]
            prompt_tokens=prompt_tokens,
            completion_tokens=len(toks),
            attempts=1,
            batch=batch,
        )
