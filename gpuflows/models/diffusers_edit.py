"""Stage 1 of two-stage-eval: an adapter around any diffusers pipeline that edits (image, prompt).

:func:`load_edit_model` loads a pipeline folder with ``DiffusionPipeline.from_pretrained`` (safetensors
only, never remote code) — InstructPix2Pix, Qwen-Image-Edit, or the tiny synthetic pipeline of
:mod:`gpuflows.models.tiny` — and :meth:`EditModel.edit` runs a batch through it.

Determinism: every item gets its own CPU ``torch.Generator`` seeded from ``(seed, index)`` (see
:func:`item_seed`), where ``index`` is the item's position in the whole data set when the caller
passes ``indices`` (else its position in this call). Initial latents and the noise of ancestral
schedulers are drawn per item from these generators, so an item's random draws do not depend on
the batch it is in, nor on the device (CPU generators are used even for CUDA pipelines). The
batched network passes themselves may still differ from an unbatched run in the last bits (other
kernels, reduction orders), so results are bit-identical for the same seed *and* batch layout, and
equal up to float rounding across batch sizes.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from gpuflows.models.tiny import is_synthetic


def item_seed(seed: int, index: int) -> int:
    """A 63-bit seed for item ``index`` under run seed ``seed`` (stable across Python versions)."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)


def module_nbytes(modules: Iterable[Any]) -> int:
    """Bytes of parameters + buffers over ``torch.nn.Module`` objects, shared tensors counted once."""
    import torch

    seen: set[int] = set()
    total = 0
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            continue
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def resolve_dtype(dtype: Any) -> Any:
    """``"float32"``/``"fp16"``/``"bfloat16"``/a ``torch.dtype`` -> ``torch.dtype``."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
    name = aliases.get(str(dtype), str(dtype)).removeprefix("torch.")
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"unknown floating dtype {dtype!r}")
    return value


def _diffusers_dtype_kwarg() -> str:
    """diffusers >= 0.36 renamed ``torch_dtype`` to ``dtype`` (the old name warns)."""
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"
    except ImportError:
        return "torch_dtype"


@dataclass
class EditModel:
    """A loaded diffusers image-edit pipeline plus what a scheduler of GPU memory needs to know."""

    pipeline: Any
    path: Path
    synthetic: bool = False
    _call_params: frozenset[str] = field(default_factory=frozenset, repr=False)

    def __post_init__(self) -> None:
        self._call_params = frozenset(inspect.signature(self.pipeline.__call__).parameters)

    def nbytes(self) -> int:
        """Parameter + buffer bytes over the pipeline's ``nn.Module`` components."""
        return module_nbytes(self.pipeline.components.values())

    def edit(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        *,
        seed: int,
        steps: int = 20,
        guidance: float | None = 7.5,
        image_guidance: float | None = 1.5,
        indices: Sequence[int] | None = None,
        negative_prompt: str | None = None,
        call_kwargs: dict[str, Any] | None = None,
    ) -> list[Image.Image]:
        """Edit ``images[i]`` by ``prompts[i]``; returns one RGB PIL image per input, in order.

        One pipeline call per distinct input size (normally one for the whole batch). ``guidance``
        goes to ``guidance_scale`` and ``image_guidance`` to ``image_guidance_scale`` when the
        pipeline takes them (``None``: the pipeline's default); ``call_kwargs`` are passed through
        (e.g. ``true_cfg_scale`` for Qwen-Image-Edit). Output sizes are what the pipeline makes:
        the input size snapped to a multiple of the VAE scale factor.
        """
        images, prompts, indices = _validate(images, prompts, indices)
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        if not images:
            return []
        import torch

        kwargs: dict[str, Any] = {"num_inference_steps": int(steps), "output_type": "pil"}
        for name, value in (
            ("guidance_scale", guidance),
            ("image_guidance_scale", image_guidance),
            ("negative_prompt", negative_prompt),
        ):
            if value is not None and name in self._call_params:
                kwargs[name] = value
        reserved = {"image", "prompt", "generator"} & set(call_kwargs or {})
        if reserved:
            raise ValueError(f"call_kwargs may not set {sorted(reserved)}: edit() sets them")
        kwargs.update(call_kwargs or {})

        groups: dict[tuple[int, int], list[int]] = {}
        for pos, image in enumerate(images):
            groups.setdefault(image.size, []).append(pos)
        results: list[Image.Image | None] = [None] * len(images)
        for positions in groups.values():
            generators = [
                torch.Generator(device="cpu").manual_seed(item_seed(seed, indices[p]))
                for p in positions
            ]
            group_kwargs = dict(kwargs)
            if negative_prompt is not None and "negative_prompt" in group_kwargs:
                group_kwargs["negative_prompt"] = [negative_prompt] * len(positions)
            with torch.inference_mode():
                output = self.pipeline(
                    image=[images[p] for p in positions],
                    prompt=[prompts[p] for p in positions],
                    generator=generators,
                    **group_kwargs,
                )
            edited = output.images if hasattr(output, "images") else output[0]
            if len(edited) != len(positions):
                raise RuntimeError(
                    f"pipeline returned {len(edited)} images for a batch of {len(positions)}"
                )
            for p, image in zip(positions, edited, strict=True):
                results[p] = _to_pil(image)
        return [r for r in results if r is not None]


def _validate(
    images: Sequence[Image.Image], prompts: Sequence[str], indices: Sequence[int] | None
) -> tuple[list[Image.Image], list[str], list[int]]:
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    if len(images) != len(prompts):
        raise ValueError(f"got {len(images)} images but {len(prompts)} prompts")
    idx = list(range(len(images))) if indices is None else [int(i) for i in indices]
    if len(idx) != len(images):
        raise ValueError(f"got {len(idx)} indices for {len(images)} images")
    if len(set(idx)) != len(idx):
        raise ValueError("indices must be distinct (each item needs its own random stream)")
    clean_images: list[Image.Image] = []
    clean_prompts: list[str] = []
    for i, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
        if not isinstance(image, Image.Image):
            raise TypeError(f"images[{i}] is a {type(image).__name__}, not a PIL image")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompts[{i}] is empty: every edit needs an instruction")
        clean_images.append(image if image.mode == "RGB" else image.convert("RGB"))
        clean_prompts.append(prompt.strip())
    return clean_images, clean_prompts, idx


def _to_pil(image: Any) -> Image.Image:
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    raise TypeError(f"pipeline returned a {type(image).__name__}, expected PIL images")


def load_edit_model(
    path: str | os.PathLike[str],
    *,
    dtype: Any = "float32",
    device: str = "cpu",
    pipeline_class: str | None = None,
    trust_remote_code: bool = False,
    use_safetensors: bool = True,
) -> EditModel:
    """Load a diffusers pipeline folder onto ``device``: safetensors only and no remote code
    unless the caller (a ModelSource block) says otherwise.

    ``pipeline_class`` names a ``diffusers`` class (e.g. ``"QwenImageEditPipeline"``) to use
    instead of the ``_class_name`` in ``model_index.json``.
    """
    import diffusers

    path = Path(path)
    if not (path / "model_index.json").is_file():
        raise FileNotFoundError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
    cls: Any = diffusers.DiffusionPipeline
    if pipeline_class is not None:
        cls = getattr(diffusers, pipeline_class, None)
        if not (isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline)):
            raise ValueError(f"{pipeline_class!r} is not a diffusers pipeline class")
    kwargs = {_diffusers_dtype_kwarg(): resolve_dtype(dtype), "use_safetensors": use_safetensors}
    pipeline = cls.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    pipeline = pipeline.to(device)
    pipeline.set_progress_bar_config(disable=True)
    return EditModel(pipeline=pipeline, path=path, synthetic=is_synthetic(path))
