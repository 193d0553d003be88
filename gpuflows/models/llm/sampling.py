"""Choosing the next token per row of a batch: argmax for greedy rows, top-p sampling from the
row's own seeded generator otherwise (so a row's sample never depends on its neighbours). No
Prefect."""

from __future__ import annotations

from typing import Any

from gpuflows.models.llm.config import LLMRequest


def choose_tokens(logits: Any, reqs: list[LLMRequest], gens: list[Any]) -> Any:
    """Next token per row of ``logits`` (rows x vocab, float32)."""
    import torch

    tokens = logits.argmax(-1)
    for r, (req, gen) in enumerate(zip(reqs, gens, strict=True)):
        if req.greedy:
            continue
        row = logits[r] / req.temperature
        probs = torch.softmax(row, -1)
        if req.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            drop = (sorted_p.cumsum(-1) - sorted_p) > req.top_p
            sorted_p[drop] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        tokens[r] = torch.multinomial(probs, 1, generator=gen)[0]
    return tokens
