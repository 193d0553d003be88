"""The public ``generate`` / ``stream`` pair both local engines (text, VLM) build on their own
``_stream(requests)``, which yields ``(request index, result)`` as results are ready."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from gpuflows.models.llm.config import LLMRequest, LLMResult


class ResultStream:
    """Subclasses give ``_stream``; this class gives the in-order and as-ready views of it."""

    def _stream(self, requests: Sequence[LLMRequest]) -> Iterator[tuple[int, LLMResult]]:
        raise NotImplementedError

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResult]:
        """One result per request, in request order (errors as records, never raised)."""
        out: list[LLMResult | None] = [None] * len(requests)
        for index, result in self._stream(requests):
            out[index] = result
        return [r for r in out if r is not None]

    def stream(self, requests: Sequence[LLMRequest]) -> Iterator[LLMResult]:
        """Results as they are ready: cache hits first, then each batch when it finishes."""
        for _, result in self._stream(requests):
            yield result
