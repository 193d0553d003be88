"""Stage 2 of two-stage-eval: a vision-language reward model that answers about an edited image.

:func:`load_reward_model` loads any transformers image-text-to-text model folder through
``AutoModelForImageTextToText`` + ``AutoProcessor`` (safetensors only, never remote code): Qwen2-VL,
Qwen3-VL, LLaVA, or the tiny synthetic LLaVA of :mod:`gpuflows.models.tiny`.
:meth:`RewardModel.answer` builds one chat per item (optional system message; a user message
with the image, then the text) through the processor's chat template, pads on the left, and
decodes greedily, so answers are deterministic for a given batch layout.

``constrain_to_score=True`` restricts decoding to the strings that spell a number in
``score_range`` with at most one decimal (``"7"``, ``"10"``, ``"6.5"``) followed by end of
sequence, so even a random-weight model answers something :func:`gpuflows.pipelines.two_stage_eval.score_parse.parse_score`
reads — this is how the synthetic demo gets numbers. Real models run unconstrained and their free
text is parsed. The constraint needs the digits ``0``..``9`` as single tokens in the vocabulary.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from gpuflows.models.diffusers_edit import module_nbytes, resolve_dtype
from gpuflows.models.source import transformers_dtype_kwarg
from gpuflows.models.tiny import is_synthetic

_NUMBER_CHARS = frozenset("0123456789.")
_MAX_SCORE_STRINGS = 200_000


def score_strings(lo: float, hi: float, *, decimals: int = 1) -> frozenset[str]:
    """Every string spelling a number in ``[lo, hi]`` with at most ``decimals`` decimals."""
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
        raise ValueError(f"score_range must be finite, non-negative and increasing: ({lo}, {hi})")
    step = 10**decimals
    first, last = math.ceil(lo * step - 1e-9), math.floor(hi * step + 1e-9)
    if last - first + 1 > _MAX_SCORE_STRINGS:
        raise ValueError(f"score_range ({lo}, {hi}) is too wide to constrain decoding to")
    out: set[str] = set()
    for k in range(first, last + 1):
        whole, frac = divmod(k, step)
        if frac == 0:
            out.add(str(whole))
        out.add(f"{whole}.{frac:0{decimals}d}" if decimals else str(whole))
    return frozenset(out)


@dataclass
class _ScoreConstraint:
    """``prefix_allowed_tokens_fn`` for ``generate``: only number strings, then end of sequence."""

    prompt_len: int
    token_text: dict[int, str]  # number-ish tokens: id -> text
    stop_ids: list[int]
    valid: frozenset[str]
    prefixes: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.prefixes = frozenset(s[:i] for s in self.valid for i in range(len(s) + 1))

    def __call__(self, batch_id: int, input_ids: Any) -> list[int]:
        text = ""
        for tid in input_ids[self.prompt_len :].tolist():
            if tid not in self.token_text:  # a stop (or pad) token: this row is done
                return self.stop_ids
            text += self.token_text[tid]
        allowed = [t for t, s in self.token_text.items() if text + s in self.prefixes]
        if text in self.valid or not allowed:
            allowed += self.stop_ids
        return allowed


@dataclass
class RewardModel:
    """A loaded image-text-to-text model and its processor."""

    model: Any
    processor: Any
    path: Path
    synthetic: bool = False
    _number_tokens: dict[int, str] | None = field(default=None, repr=False)

    def nbytes(self) -> int:
        """Parameter + buffer bytes of the model."""
        return module_nbytes([self.model])

    @property
    def tokenizer(self) -> Any:
        """The processor's tokenizer."""
        return self.processor.tokenizer

    def stop_token_ids(self) -> list[int]:
        """End-of-sequence ids from the generation config (falling back to the tokenizer's)."""
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = self.tokenizer.eos_token_id
        ids = [eos] if isinstance(eos, int) else list(eos or [])
        if not ids:
            raise ValueError(f"{self.path}: neither generation config nor tokenizer names an EOS")
        return ids

    def number_tokens(self) -> dict[int, str]:
        """Vocabulary entries made only of digits and '.', without word-start markers."""
        if self._number_tokens is None:
            vocab: dict[str, int] = self.tokenizer.get_vocab()
            found = {i: t for t, i in vocab.items() if t and set(t) <= _NUMBER_CHARS}
            missing = [d for d in "0123456789" if d not in found.values()]
            if missing:
                raise ValueError(
                    f"{self.path}: the tokenizer has no single tokens for digits {missing}; "
                    "constrain_to_score needs them"
                )
            self._number_tokens = found
        return self._number_tokens

    def build_prompts(
        self, system_prompts: Sequence[str], user_prompts: Sequence[str]
    ) -> list[str]:
        """Chat-template text per item: [system], user(image, text), then the assistant turn."""
        texts = []
        for system, user in zip(system_prompts, user_prompts, strict=True):
            messages: list[dict[str, Any]] = []
            if system and system.strip():
                messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
            messages.append(
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user}]}
            )
            texts.append(
                self.processor.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=False
                )
            )
        return texts

    def answer(
        self,
        images: Sequence[Image.Image],
        system_prompts: Sequence[str],
        user_prompts: Sequence[str],
        *,
        max_new_tokens: int = 64,
        constrain_to_score: bool = False,
        score_range: tuple[float, float] = (0, 10),
    ) -> list[str]:
        """One greedy answer per (image, system prompt, user prompt), generated as one batch."""
        n = len(images)
        if len(system_prompts) != n or len(user_prompts) != n:
            raise ValueError(
                f"got {n} images, {len(system_prompts)} system and {len(user_prompts)} user prompts"
            )
        for i, (image, user) in enumerate(zip(images, user_prompts, strict=True)):
            if not isinstance(image, Image.Image):
                raise TypeError(f"images[{i}] is a {type(image).__name__}, not a PIL image")
            if not isinstance(user, str) or not user.strip():
                raise ValueError(f"user_prompts[{i}] is empty")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if n == 0:
            return []
        import torch

        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        self.tokenizer.padding_side = "left"
        inputs = self.processor(
            text=self.build_prompts(system_prompts, user_prompts),
            images=rgb,
            return_tensors="pt",
            padding=True,
        )
        device, dtype = self.model.device, self.model.dtype
        inputs = {
            k: (v.to(device, dtype) if v.is_floating_point() else v.to(device))
            if isinstance(v, torch.Tensor)
            else v
            for k, v in inputs.items()
        }
        prompt_len = int(inputs["input_ids"].shape[1])
        stop_ids = self.stop_token_ids()
        kwargs: dict[str, Any] = {
            "max_new_tokens": int(max_new_tokens),
            "do_sample": False,
            "num_beams": 1,
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }
        pad = self.model.generation_config.pad_token_id
        kwargs["pad_token_id"] = pad if pad is not None else self.tokenizer.pad_token_id
        if constrain_to_score:
            valid = score_strings(*score_range)
            constraint: Callable[[int, Any], list[int]] = _ScoreConstraint(
                prompt_len, self.number_tokens(), stop_ids, valid
            )
            kwargs["prefix_allowed_tokens_fn"] = constraint
            kwargs["max_new_tokens"] = max(kwargs["max_new_tokens"], max(map(len, valid)) + 1)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        new_tokens = out[:, prompt_len:]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [t.strip() for t in texts]


def load_reward_model(
    path: str | os.PathLike[str],
    *,
    dtype: Any = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    use_safetensors: bool = True,
) -> RewardModel:
    """Load an image-text-to-text model + processor folder: safetensors only and no remote code
    unless the caller (a ModelSource block) says otherwise."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a transformers model folder (no config.json)")
    model = AutoModelForImageTextToText.from_pretrained(
        path,
        use_safetensors=use_safetensors,
        trust_remote_code=trust_remote_code,
        **{transformers_dtype_kwarg(): resolve_dtype(dtype)},
    )
    model = model.to(device).eval()
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    processor.tokenizer.padding_side = "left"
    return RewardModel(model=model, processor=processor, path=path, synthetic=is_synthetic(path))
