"""A vision-language model spec to a loaded :class:`~gpuflows.models.llm.vlm_engine.VLMEngine`.

Specs (``LocalModelConfig.spec``):

* ``"tiny-vlm"`` -- the tiny random-weight LLaVA of :func:`gpuflows.models.tiny.build_tiny_reward_model`
  (CLIP vision tower on 32 px images, 2-layer Llama, character-level tokenizer), built once in
  the results folder; synthetic.
* a folder with ``config.json`` holding a ``vision_config`` (LLaVA, Qwen2-VL, ...), a processor
  config and safetensors weights.

:func:`resolve_vlm_spec` checks the spec before anything loads (an :class:`InputError` naming
the field and the fix). Loading uses ``AutoModelForImageTextToText`` + ``AutoProcessor``,
safetensors only, no remote code unless the config says so, and with ``device='auto'`` the
meta-device placement plan of :mod:`gpuflows.models.llm.placement`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpuflows.core.faults import InputError
from gpuflows.core.memory.weight_files import model_fingerprint
from gpuflows.models.llm.cache import CallCache
from gpuflows.models.llm.config import LocalModelConfig
from gpuflows.models.llm.load import ResolvedSpec, load_placed, require_cuda_if_asked

TINY_VLM = "tiny-vlm"
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def _has_vision_config(folder: Path) -> bool:
    try:
        return "vision_config" in json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False


def is_vlm_spec(spec: str) -> bool:
    """True for ``tiny-vlm`` and for a model folder whose config has a vision tower."""
    spec = spec.strip()
    if spec == TINY_VLM:
        return True
    p = Path(spec).expanduser()
    return p.is_dir() and _has_vision_config(p)


def resolve_vlm_spec(spec: str, *, field: str = "spec") -> ResolvedSpec:
    """Check ``spec`` and find its weights, loading nothing (builds the tiny VLM if needed)."""
    from gpuflows.models.tiny import build_tiny_reward_model, default_model_dir, is_synthetic

    spec = spec.strip()
    if spec == TINY_VLM:
        return ResolvedSpec("tiny", build_tiny_reward_model(default_model_dir("tiny-reward")), True)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise InputError(
            f"{field}={spec!r} is not {TINY_VLM!r} or an image-text-to-text model folder on this "
            "host: fix the name or copy the model (config.json, processor files, safetensors) here"
        )
    if not (path / "config.json").is_file():
        raise InputError(
            f"{field}={spec!r}: the folder has no config.json (not a transformers model)"
        )
    if not _has_vision_config(path):
        raise InputError(
            f"{field}={spec!r}: config.json has no vision_config, so this is not a vision-language "
            "model; give an image-text-to-text model (LLaVA, Qwen2-VL, ...)"
        )
    if not any((path / f).is_file() for f in _PROCESSOR_FILES):
        raise InputError(
            f"{field}={spec!r}: no processor config ({' or '.join(_PROCESSOR_FILES)}): save the "
            "model's processor in the folder (processor.save_pretrained)"
        )
    if not any(path.rglob("*.safetensors")):
        raise InputError(
            f"{field}={spec!r}: no safetensors weights in the folder (pickle checkpoints are not "
            "loaded); convert them with save_pretrained(..., safe_serialization=True)"
        )
    return ResolvedSpec("folder", path.resolve(), is_synthetic(path))


def load_vlm_engine(config: LocalModelConfig, cache: CallCache | None = None) -> Any:
    """Resolve, place and load ``config``'s VLM; returns a ready ``VLMEngine``."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from gpuflows.models.llm.vlm_engine import VLMEngine

    resolved = resolve_vlm_spec(config.spec)
    require_cuda_if_asked(config)
    folder = resolved.path
    # the fingerprint covers the weights and every other file (processor and template included)
    identity = f"weights:{model_fingerprint(folder)}|{config.dtype}"
    model, placement, device = load_placed(AutoModelForImageTextToText, folder, config)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=config.trust_remote_code)
    budget = config.vram_budget_gib or config.max_memory_gib or 0
    capacity = int(budget * 2**30)
    if not capacity and device.startswith("cuda"):  # no budget given: what the GPU holds now
        capacity = torch.cuda.memory_allocated(device) + torch.cuda.mem_get_info(device)[0]
    engine = VLMEngine(
        model,
        processor,
        identity=identity,
        device=device,
        cache=cache,
        batch_size=config.batch_size,
        capacity_bytes=capacity,
        synthetic=resolved.synthetic,
        source=config.spec,
    )
    engine.placement = placement
    return engine
