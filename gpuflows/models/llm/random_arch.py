"""Random-weight models of a real architecture, for speed benches on a GPU host (synthetic, T1).

``random-qwen2.5-7b``: Qwen2.5-7B's shapes (28 layers, hidden 3584, 28 heads / 4 KV heads, MLP
18944, vocabulary 152,064, untied head), so a forward pass costs what the real one costs;
``random-qwen2.5-tiny``: the same vocabulary and code path with 2 small layers, the CPU smoke of
the same bench. Both use the tiny byte-level tokenizer of ``tiny-qwen2`` (its ids fit the
vocabulary; one token per character). The weights are built on the device in the target dtype
from seed 0, never loaded, so nothing has to be downloaded. Their texts are noise: only speed
and batched-vs-unbatched equality mean anything.

No Prefect.
"""

from __future__ import annotations

from typing import Any

from gpuflows.core.faults import InputError

ARCHS: dict[str, dict[str, Any]] = {
    "random-qwen2.5-7b": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
    },
    "random-qwen2.5-tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
    },
}


def is_random_arch(spec: str) -> bool:
    return spec in ARCHS


def random_arch_engine(
    spec: str,
    *,
    device: str = "cpu",
    dtype: str = "bfloat16",
    cache: Any = None,
    batch_size: int | None = None,
    batching: str = "auto",
    capacity_bytes: int = 0,
) -> Any:
    """A :class:`~gpuflows.models.llm.engine.LocalEngine` over a random-weight ``spec`` model."""
    if spec not in ARCHS:
        raise InputError(f"model={spec!r}: random architectures are {sorted(ARCHS)}")
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from gpuflows.models.llm.engine import LocalEngine
    from gpuflows.models.llm.load import resolve_spec

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device={device!r} but this host has no CUDA GPU: use 'cpu'")
    tok = AutoTokenizer.from_pretrained(resolve_spec("tiny-qwen2").path)
    cfg = Qwen2Config(
        vocab_size=152064,
        max_position_embeddings=32768,
        rope_theta=1e6,
        tie_word_embeddings=False,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **ARCHS[spec],
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2ForCausalLM._from_config(cfg, dtype=getattr(torch, dtype)).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    return LocalEngine(
        model,
        tok,
        identity=f"{spec}-arch|seed0|{dtype}",
        device=device,
        cache=cache,
        batch_size=batch_size,
        capacity_bytes=capacity_bytes,
        synthetic=True,
        source=spec,
        batching=batching,  # type: ignore[arg-type]
    )
