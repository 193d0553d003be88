"""The VRAM slot plan equals the meta-device placement (tiny Qwen2 config, no GPU needed)."""

from __future__ import annotations

import pytest
import torch
from accelerate import infer_auto_device_map
from transformers import Qwen2Config

from gpuflows.core.faults import InputError
from gpuflows.core.memory.budget import GIB
from gpuflows.models.llm.placement import kv_bytes_per_token, meta_model, plan_placement

CFG = Qwen2Config(
    vocab_size=1000,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=2,
)


def test_kv_bytes_per_token_by_hand():
    # 2 (K and V) x 8 layers x 2 KV heads x 32 head dim x bytes
    assert kv_bytes_per_token(CFG, "float32") == 2 * 8 * 2 * 32 * 4 == 4096
    assert kv_bytes_per_token(CFG, "bfloat16") == 2048


@pytest.mark.parametrize(
    "split", [(4_000_000, 40_000_000), (12_000_000, 30_000_000), (14_000_000, 14_000_000)]
)
def test_plan_is_accelerates_meta_device_map_and_slots_add_the_kv_cache(split):
    max_memory = {0: split[0], 1: split[1]}
    plan = plan_placement(CFG, dtype="float32", max_memory=max_memory)
    model = meta_model(CFG, "float32")
    assert all(p.device.type == "meta" for p in model.parameters())
    want = infer_auto_device_map(
        model,
        max_memory=max_memory,
        no_split_module_classes=model._no_split_modules,
        dtype=torch.float32,
    )
    assert plan.device_map == want
    tensors = [*model.named_parameters(), *model.named_buffers()]
    params = {n: p.numel() * p.element_size() for n, p in tensors}
    for gpu in (0, 1):
        mods = [m for m, d in want.items() if d == gpu]
        placed = sum(b for n, b in params.items() if any(n.startswith(m + ".") for m in mods))
        assert plan.weight_bytes[gpu] == placed  # the plan's bytes are the modules placed there
    assert sum(plan.layers.values()) == 8
    tokens = 4 * 3000  # 4 rows of 3000 tokens
    for gpu in (0, 1):
        kv = 4096 * plan.layers.get(gpu, 0) / 8 * tokens
        assert plan.vram_bytes(tokens)[gpu] == plan.weight_bytes[gpu] + round(kv)
    assert plan.vram_slots(tokens) == {0: 1, 1: 1}
    big = plan.vram_slots(200_000)  # 0.82 GB of KV cache in all
    assert big == {g: -(-(plan.vram_bytes(200_000)[g]) // GIB) or 1 for g in (0, 1)}


def test_too_small_for_the_gpus_names_the_fix():
    with pytest.raises(InputError, match="Raise max_memory_gib"):
        plan_placement(CFG, dtype="float32", max_memory={0: 1_000_000})
    with pytest.raises(InputError, match="gpus"):
        plan_placement(CFG, dtype="float32", max_memory={})
