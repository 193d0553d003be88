"""Language-model backends for flows: the Prefect part.

The backends (:mod:`gpuflows.models.llm`) know nothing of Prefect; this module resolves what
only Prefect knows -- the API key in a Prefect ``Secret`` block -- and builds the backend a
flow's ``backend`` parameter names, both answering ``generate(requests) -> results``.

Example:
    ```python
    from tasks.llm import make_backend

    llm = make_backend(
        "endpoint", endpoint={"base_url": "http://127.0.0.1:8000/v1", "model": "smollm2"},
        api_key_block="vllm-key", cache_path="results/llm-calls.sqlite",
    )
    results = llm.generate(requests)
    ```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from gpuflows.core.faults import InputError
from gpuflows.models.llm.cache import CallCache
from gpuflows.models.llm.config import EndpointConfig, LocalModelConfig
from gpuflows.models.registry import get_model

Backend = Literal["causal-lm", "endpoint"]


def api_key_from_block(name: str, *, field: str = "api_key_block") -> str:
    """The value of the Prefect ``Secret`` block ``name``.

    Raises:
        InputError: naming ``field``, when no such block is saved.
    """
    from prefect.blocks.system import Secret

    try:
        secret = Secret.load(name)
    except ValueError as exc:
        raise InputError(
            f"{field}={name!r}: no such Secret block ({exc}); create it with "
            f"Secret(value='...').save({name!r}) or leave {field} empty for no key"
        ) from None
    return str(secret.get())


def make_backend(
    backend: Backend,
    *,
    local: LocalModelConfig | dict[str, Any] | None = None,
    endpoint: EndpointConfig | dict[str, Any] | None = None,
    api_key_block: str | None = None,
    cache_path: str | Path | None = None,
) -> Any:
    """The backend ``backend`` names (``LocalEngine`` or ``EndpointClient``), checked before any
    model loads or request is sent; ``cache_path`` opens the shared call cache."""
    cache = CallCache(cache_path) if cache_path else None
    if backend == "causal-lm":
        if local is None:
            raise InputError("backend='causal-lm' needs local (a LocalModelConfig: spec, dtype...)")
        cfg = local if isinstance(local, LocalModelConfig) else LocalModelConfig(**local)
        return get_model("causal-lm")(cfg, cache)
    if backend == "endpoint":
        if endpoint is None:
            raise InputError("backend='endpoint' needs endpoint (base_url and model at least)")
        ecfg = endpoint if isinstance(endpoint, EndpointConfig) else EndpointConfig(**endpoint)
        if api_key_block:
            key = SecretStr(api_key_from_block(api_key_block))
            ecfg = ecfg.model_copy(update={"api_key": key})
        return get_model("endpoint")(ecfg, cache)
    raise InputError(f"backend={backend!r}: use 'causal-lm' (local) or 'endpoint' (HTTP)")
