"""Tiny random-weight ("synthetic") models for the two-stage-eval demo and tests.

Both builders make real library objects from configs (no hub, no downloads), save them with
``save_pretrained(..., safe_serialization=True)`` and are loaded back by the same code paths that
load real weights (:mod:`gpuflows.models.diffusers_edit`, :mod:`gpuflows.models.vlm_reward`):

* :func:`build_tiny_edit_pipeline` — a ``StableDiffusionInstructPix2PixPipeline`` (UNet with 8 input
  channels, 2-block VAE, 1-layer CLIP text encoder, character-level CLIP BPE tokenizer,
  Euler-ancestral scheduler), ~107k parameters.
* :func:`build_tiny_reward_model` — a ``LlavaForConditionalGeneration`` (2-layer CLIP vision tower
  on 32 px images with 8 px patches, 2-layer Llama text model) with a ``LlavaProcessor`` (PIL CLIP
  image processor, byte-level BPE tokenizer whose 256 byte tokens include ``"0"``..``"9"``, and a
  ChatML chat template), ~45k parameters. LLaVA rather than Qwen2-VL because ``Qwen2VLProcessor``
  requires a video processor, which transformers 5 only provides with torchvision.

A finished build folder holds a marker file (:data:`MARKER_NAME`) with the recipe version and the
seed, written last, and the digests of its weight files are registered as generated
(:mod:`gpuflows.core.evidence.provenance`), so :func:`is_synthetic` does not depend on the marker; a folder whose marker matches is reused as is (idempotent), anything else is
rebuilt in a temporary sibling folder and renamed into place, so concurrent builders never see a
half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpuflows.core.evidence.weights_check import (
    check_weights_dir,
    looks_untrained,
    register_weight_files,
)
from gpuflows.core.store.io import atomic_write_json, results_root

MARKER_NAME = "gpuflows_tiny_model.json"
EDIT_RECIPE = "tiny-instruct-pix2pix"
EDIT_RECIPE_VERSION = 2
REWARD_RECIPE = "tiny-llava"
REWARD_RECIPE_VERSION = 1

#: Side of the (square) images the tiny reward model's processor resizes to.
REWARD_IMAGE_SIZE = 32
_REWARD_PATCH = 8
_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def default_model_dir(name: str) -> Path:
    """Cache folder for a built model: ``results_root() / "models" / name``."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"model name must be a plain folder name, got {name!r}")
    return results_root() / "models" / name


def read_marker(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The tiny-model marker of a model folder, or ``None`` when it has none (a real model)."""
    marker = Path(path) / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_synthetic(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` holds random weights, not a trained model.

    Not the marker alone (deleting it would make a random model "real"): also true when a weight
    file's digest is registered by these builders, or when every normalisation layer still has
    its initial values (:func:`gpuflows.core.evidence.weights_check.check_weights_dir`: a
    ``save_pretrained`` of a random init, a "tiny-random" hub repo). The check's limits are
    documented there.
    """
    if read_marker(path) is not None:
        return True
    p = Path(path)
    if not p.exists():
        return False  # a hub id or a missing folder: nothing on disk to judge here
    return looks_untrained(check_weights_dir(p))


def _complete(path: Path, recipe: str, version: int, seed: int) -> bool:
    marker = read_marker(path)
    if marker is None:
        return False
    if (marker.get("recipe"), marker.get("recipe_version"), marker.get("seed")) != (
        recipe,
        version,
        seed,
    ):
        return False
    return all((path / f).is_file() for f in marker.get("files", []))


def build_atomically(
    target: Path, recipe: str, version: int, seed: int, build: Callable[[Path], dict[str, Any]]
) -> Path:
    """Run ``build(tmp)`` in a temporary sibling of ``target``, mark it complete, move it in place."""
    target = Path(target).resolve()
    if _complete(target, recipe, version, seed):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.build-"))
    try:
        import torch

        with torch.random.fork_rng(devices=[]):  # never disturb the caller's RNG
            torch.manual_seed(seed)
            info = build(tmp)
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        # fingerprints: these weights stay known as generated with the marker gone or renamed
        register_weight_files(tmp, f"gpuflows.models.tiny:{recipe}-v{version}-seed{seed}")
        marker = {"recipe": recipe, "recipe_version": version, "seed": seed, "files": files}
        atomic_write_json(tmp / MARKER_NAME, {**marker, **info})
        if _complete(target, recipe, version, seed):  # another process won the race
            return target
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _param_count(*modules: Any) -> int:
    return int(sum(p.numel() for m in modules for p in m.parameters()))


def byte_alphabet() -> list[str]:
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet())


def char_qwen2_tokenizer(specials: list[str]) -> Any:
    """A Qwen2 tokenizer over :func:`byte_alphabet` (one token per character, no merges) with
    ``specials`` added as special tokens; pads on the left and ends answers with ``<|im_end|>``.
    ``specials`` must hold ``<|endoftext|>`` and ``<|im_end|>``."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    vocab = {c: i for i, c in enumerate(byte_alphabet())}
    for special in specials:
        vocab[special] = len(vocab)
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in specials], True)
    return tok


def build_tiny_edit_pipeline(dir: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Build (or reuse) a tiny random-weight InstructPix2Pix pipeline in ``dir``; returns ``dir``.

    Images keep their size (multiples of 2, the VAE's scale factor); 4 latent channels plus 4 image
    latent channels make the UNet's 8 input channels, as in the real InstructPix2Pix.
    """

    def build(out: Path) -> dict[str, Any]:
        from diffusers import (
            AutoencoderKL,
            EulerAncestralDiscreteScheduler,
            StableDiffusionInstructPix2PixPipeline,
            UNet2DConditionModel,
        )
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

        alphabet = byte_alphabet()
        vocab: dict[str, int] = {}
        for token in [*alphabet, *(c + "</w>" for c in alphabet)]:
            vocab[token] = len(vocab)
        for special in ("<|startoftext|>", "<|endoftext|>"):
            vocab[special] = len(vocab)
        tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                max_position_embeddings=77,
                projection_dim=16,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        unet = UNet2DConditionModel(
            sample_size=16,
            in_channels=8,
            out_channels=4,
            block_out_channels=(8, 16),
            layers_per_block=1,
            norm_num_groups=4,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=16,
            attention_head_dim=4,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(8, 16),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=4,
            sample_size=32,
        )
        scheduler = EulerAncestralDiscreteScheduler(
            num_train_timesteps=1000,
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
        )
        pipe = StableDiffusionInstructPix2PixPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(out, safe_serialization=True)
        return {
            "kind": "edit",
            "pipeline_class": type(pipe).__name__,
            "param_count": _param_count(vae, text_encoder, unet),
        }

    return build_atomically(Path(dir), EDIT_RECIPE, EDIT_RECIPE_VERSION, seed, build)


def build_tiny_reward_model(dir: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Build (or reuse) a tiny random-weight LLaVA model + processor in ``dir``; returns ``dir``.

    Loadable with ``AutoModelForImageTextToText.from_pretrained(dir, use_safetensors=True,
    trust_remote_code=False)`` and ``AutoProcessor.from_pretrained(dir)``. The tokenizer pads on
    the left, ends answers with ``<|im_end|>`` and encodes every digit as its own token.
    """

    def build(out: Path) -> dict[str, Any]:
        from transformers import (
            CLIPVisionConfig,
            LlamaConfig,
            LlavaConfig,
            LlavaForConditionalGeneration,
            LlavaProcessor,
        )
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
        tokenizer = char_qwen2_tokenizer(specials)
        ids = {s: tokenizer.convert_tokens_to_ids(s) for s in specials}
        size = REWARD_IMAGE_SIZE
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}
        )
        processor = LlavaProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            patch_size=_REWARD_PATCH,
            vision_feature_select_strategy="default",
            chat_template=_CHAT_TEMPLATE,
            image_token="<image>",
            num_additional_image_tokens=1,  # the CLS token, dropped by the "default" strategy
        )
        config = LlavaConfig(
            vision_config=CLIPVisionConfig(
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                image_size=size,
                patch_size=_REWARD_PATCH,
                projection_dim=16,
            ),
            text_config=LlamaConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=1,
                max_position_embeddings=512,
                # 10x the usual init: the random answers then vary with the image and prompt
                initializer_range=0.2,
                bos_token_id=None,
                eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"],
            ),
            image_token_id=ids["<image>"],
            image_seq_length=(size // _REWARD_PATCH) ** 2,
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
        )
        model = LlavaForConditionalGeneration(config).eval()
        model.generation_config.eos_token_id = ids["<|im_end|>"]
        model.generation_config.pad_token_id = ids["<|endoftext|>"]
        model.save_pretrained(out, safe_serialization=True)
        processor.save_pretrained(out)
        return {
            "kind": "reward",
            "architecture": type(model).__name__,
            "param_count": _param_count(model),
        }

    return build_atomically(Path(dir), REWARD_RECIPE, REWARD_RECIPE_VERSION, seed, build)
