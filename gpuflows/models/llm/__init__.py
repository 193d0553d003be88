"""Language-model calls: a batched local transformers engine, an async OpenAI-compatible client,
and one persistent call cache for both.

Both backends take ``generate(requests) -> results`` (:class:`LLMRequest` in, :class:`LLMResult`
out, in request order), so a pipeline switches backend by a parameter. Heavy modules (torch,
transformers, httpx) load only when their backend is used.
"""

from gpuflows.models.llm.cache import CallCache, call_key
from gpuflows.models.llm.config import (
    CallError,
    EndpointConfig,
    LLMRequest,
    LLMResult,
    LocalModelConfig,
)

__all__ = [
    "CallCache",
    "CallError",
    "EndpointConfig",
    "LLMRequest",
    "LLMResult",
    "LocalModelConfig",
    "call_key",
]
