"""The models the two-stage moves bench moves: tiny synthetic ones, or random weights in the
shapes of the real ones (InstructPix2Pix fp16, Qwen2-VL-2B bf16), built from configs offline.

Every bench run takes fresh model objects from a factory, so no run reads memory another pinned.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Parameter counts of the real models whose shapes ``--size realistic`` builds.
REALISTIC_PARAMS = {
    "unet": 859_532_484,  # timbrooks/instruct-pix2pix unet (SD 1.5, 8 input channels)
    "vae": 83_653_863,  # its AutoencoderKL
    "text_encoder": 123_060_480,  # CLIP ViT-L/14 text model
    "score": 2_208_985_600,  # Qwen/Qwen2-VL-2B-Instruct
}


def build_realistic(*, materialize: bool = True, seed: int = 0) -> dict[str, Any]:
    """Random-weight modules in the shapes of the real models, from configs (no downloads).

    Returns {"edit": ModuleDict(unet, vae, text_encoder) in float16, "score": a
    ``Qwen2VLForConditionalGeneration`` in bfloat16}: the dtypes the checkpoints ship in.
    ``materialize=False`` leaves them on the meta device (shapes only, no memory).
    """
    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )

    with init_empty_weights(include_buffers=True):
        unet = UNet2DConditionModel(
            sample_size=64, in_channels=8, out_channels=4, cross_attention_dim=768
        )  # the SD 1.x defaults: (320, 640, 1280, 1280) channels, 2 layers per block
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(128, 256, 512, 512),
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                projection_dim=768,
                hidden_act="quick_gelu",
            )
        )
        vlm = Qwen2VLForConditionalGeneration(
            Qwen2VLConfig(
                text_config={
                    "vocab_size": 151936,
                    "hidden_size": 1536,
                    "intermediate_size": 8960,
                    "num_hidden_layers": 28,
                    "num_attention_heads": 12,
                    "num_key_value_heads": 2,
                    "max_position_embeddings": 32768,
                    "max_window_layers": 28,
                    "rms_norm_eps": 1e-6,
                    "rope_parameters": {
                        "rope_type": "default",
                        "rope_theta": 1e6,
                        "mrope_section": [16, 24, 24],
                    },
                },
                vision_config={
                    "depth": 32,
                    "embed_dim": 1280,
                    "hidden_size": 1536,
                    "mlp_ratio": 4,
                    "num_heads": 16,
                    "patch_size": 14,
                    "spatial_merge_size": 2,
                    "temporal_patch_size": 2,
                },
                tie_word_embeddings=True,
            )
        )
    edit = torch.nn.ModuleDict({"unet": unet, "vae": vae, "text_encoder": text_encoder})
    models = {"edit": edit.to(torch.float16), "score": vlm.to(torch.bfloat16).eval()}
    if materialize:
        gen = torch.Generator().manual_seed(seed)
        for m in models.values():
            materialize_random(m, gen)
    return models


def materialize_random(module: Any, gen: Any) -> None:
    """Give a meta-device module host memory filled with N(0, 0.02) (integer tensors: 0), keeping
    tied parameters tied (``to_empty`` would give each use its own copy)."""
    import torch

    uses: dict[int, list[tuple[Any, str]]] = {}
    for mod in module.modules():
        for name, p in mod._parameters.items():
            if p is not None:
                uses.setdefault(id(p), []).append((mod, name))
    module.to_empty(device="cpu")
    for (mod0, name0), *rest in uses.values():
        for mod, name in rest:
            mod._parameters[name] = mod0._parameters[name0]
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            if t.is_floating_point():
                t.normal_(0.0, 0.02, generator=gen)
            else:
                t.zero_()


def tiny_factory(edit_dir: Path, reward_dir: Path) -> Callable[[], dict[str, Any]]:
    """A builder of fresh model objects loaded from the two folders (host, float32)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from gpuflows.models.diffusers_edit import load_edit_model
    from gpuflows.models.vlm_reward import load_reward_model

    diffusers_logging.disable_progress_bar()  # one load per run: keep the output to the figures
    transformers_logging.disable_progress_bar()

    def make() -> dict[str, Any]:
        return {
            "edit": load_edit_model(edit_dir, device="cpu"),
            "score": load_reward_model(reward_dir, device="cpu"),
        }

    return make


def copy_factory(template: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """A builder of fresh deep copies of ``template`` (which is never registered or pinned)."""
    return lambda: {k: copy.deepcopy(m) for k, m in template.items()}
