"""Where a causal LM's weights go, planned on the meta device before anything loads.

:func:`plan_placement` builds the model from its config under accelerate's
``init_empty_weights`` (no memory, no weights read) and asks ``infer_auto_device_map`` for a
device map within ``max_memory`` per chosen GPU; the same map is then handed to
``from_pretrained(device_map=...)``, so what loads is what was planned. The VRAM slots a run
takes on each GPU are that plan's weight bytes plus the KV cache its batch needs on the layers
placed there:

    KV bytes per token = 2 (keys and values) x layers x kv_heads x head_dim x dtype bytes

(:func:`kv_bytes_per_token`; a GPU holding k of the L layers holds k/L of it). Slots are whole
GiB (:func:`gpuflows.core.memory.budget.gib_slots`), the unit of the pool's VRAM limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuflows.core.faults import InputError
from gpuflows.core.memory.budget import gib_slots

_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)(?:\.|$)")
#: A vision-language model's vision tower: its layers hold no KV cache, so they are not counted.
_VISION_RE = re.compile(r"(?:^|\.)(?:vision_tower|vision_model|visual|vision)(?:\.|$)")


def _dtype_bytes(dtype: str) -> int:
    import torch

    return torch.empty((), dtype=getattr(torch, dtype)).element_size()


def kv_shape(config: Any) -> tuple[int, int, int]:
    """(layers, kv_heads, head_dim) of a decoder config (GQA's KV heads when it has them); of a
    vision-language config, its text model's."""
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    layers = int(config.num_hidden_layers)
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return layers, kv_heads, head_dim


def kv_bytes_per_token(config: Any, dtype: str) -> int:
    """2 x layers x kv_heads x head_dim x dtype bytes: the KV cache one token takes."""
    layers, kv_heads, head_dim = kv_shape(config)
    return 2 * layers * kv_heads * head_dim * _dtype_bytes(dtype)


@dataclass
class PlacementPlan:
    """A device map and what it puts on each device (bytes), with the KV cache per token."""

    device_map: dict[str, int | str]
    weight_bytes: dict[int | str, int]
    layers: dict[int | str, int]
    num_layers: int
    kv_bytes_per_token: int
    dtype: str
    notes: list[str] = field(default_factory=list)

    def kv_bytes(self, device: int | str, tokens: int) -> int:
        """KV cache bytes on ``device`` for ``tokens`` (batch rows x sequence length)."""
        share = self.layers.get(device, 0) / self.num_layers if self.num_layers else 0.0
        return int(round(self.kv_bytes_per_token * share * tokens))

    def vram_bytes(self, tokens: int) -> dict[int | str, int]:
        """Bytes per device: weights placed there + the KV cache of its layers."""
        return {d: b + self.kv_bytes(d, tokens) for d, b in self.weight_bytes.items()}

    def vram_slots(self, tokens: int) -> dict[int, int]:
        """Whole-GiB slots per GPU index for a batch of ``tokens`` cached tokens."""
        return {d: gib_slots(b) for d, b in self.vram_bytes(tokens).items() if isinstance(d, int)}

    def record(self) -> dict[str, Any]:
        return {
            "device_map_devices": sorted({str(v) for v in self.device_map.values()}),
            "weight_bytes": {str(k): v for k, v in self.weight_bytes.items()},
            "layers": {str(k): v for k, v in self.layers.items()},
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "dtype": self.dtype,
        }


def _layers_under(name: str, sizes: dict[str, int]) -> set[int]:
    """Decoder layer indices inside module ``name`` ("" is the whole model)."""
    prefix = name + "." if name else ""
    found: set[int] = set()
    for key in sizes:
        if (key == name or key.startswith(prefix)) and not _VISION_RE.search(key):
            found.update(int(m) for m in _LAYER_RE.findall(key))
    return found


def meta_model(config: Any, dtype: str) -> Any:
    """The model of ``config`` on the meta device (no memory, no weights): a causal LM, or an
    image-text-to-text model when the config has a ``vision_config``."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    auto = AutoModelForCausalLM
    if getattr(config, "vision_config", None) is not None:
        auto = AutoModelForImageTextToText
    with init_empty_weights():
        return auto.from_config(config, dtype=getattr(torch, dtype))


def plan_placement(
    config_or_folder: Any, *, dtype: str, max_memory: dict[int, int], allow_cpu: bool = False
) -> PlacementPlan:
    """Plan ``infer_auto_device_map`` within ``max_memory`` (GPU index -> bytes) on meta weights.

    Raises:
        InputError: the model does not fit on the chosen GPUs (unless ``allow_cpu``), naming
            ``max_memory_gib`` / ``gpus`` / ``dtype`` as the fix.
    """
    from accelerate import infer_auto_device_map
    from accelerate.utils import compute_module_sizes
    from transformers import AutoConfig

    if not max_memory:
        raise InputError("gpus: no GPU chosen for device_map='auto'; set gpus='0' (or '0,1')")
    config = config_or_folder
    if isinstance(config_or_folder, str | Path):
        config = AutoConfig.from_pretrained(config_or_folder)
    model = meta_model(config, dtype)
    import torch

    torch_dtype = getattr(torch, dtype)
    budget: dict[int | str, int] = dict(max_memory)
    if allow_cpu:
        budget.setdefault("cpu", 2**62)
    device_map = infer_auto_device_map(
        model,
        max_memory=budget,
        no_split_module_classes=list(getattr(model, "_no_split_modules", None) or []),
        dtype=torch_dtype,
    )
    off = sorted({str(d) for d in device_map.values() if not isinstance(d, int)})
    if off and not allow_cpu:
        raise InputError(
            f"the model does not fit on gpus {sorted(max_memory)} within max_memory "
            f"({ {k: f'{v / 2**30:.2f} GiB' for k, v in max_memory.items()} }): it would spill to "
            f"{off}. Raise max_memory_gib, add gpus, or use a smaller dtype"
        )
    sizes = compute_module_sizes(model, dtype=torch_dtype)
    weight_bytes: dict[int | str, int] = {d: 0 for d in max_memory}
    layers: dict[int | str, int] = {}
    for name, dev in device_map.items():
        weight_bytes[dev] = weight_bytes.get(dev, 0) + int(sizes[name])
        layer_ids = _layers_under(name, sizes)
        if layer_ids:
            layers[dev] = layers.get(dev, 0) + len(layer_ids)
    n_layers = kv_shape(config)[0]
    return PlacementPlan(
        device_map=dict(device_map),
        weight_bytes=weight_bytes,
        layers=layers,
        num_layers=n_layers,
        kv_bytes_per_token=kv_bytes_per_token(config, dtype),
        dtype=dtype,
    )
