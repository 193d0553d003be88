"""Parameters of two-stage-eval: one pydantic model, so the UI shows one form and every bad value
is refused before any model loads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TwoStageEvalParams(BaseModel):
    """Parameters of two-stage-eval (one model, so the UI shows one form)."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["smoke", "full"] = Field(
        "smoke",
        description="Synthetic data size when no data_path: smoke 10 pairs, full 270 "
        "(the seed's 50/50/70/50/50).",
    )
    data_path: str | None = Field(
        None,
        description="Benchmark .jsonl file or folder "
        "(gpuflows.pipelines.two_stage_eval.bench format); empty: synthetic.",
    )
    edit_model: str = Field(
        "tiny",
        description="'tiny' (synthetic), 'block:<ModelSource name>', or a diffusers pipeline "
        "folder.",
    )
    reward_model: str = Field(
        "tiny",
        description="'tiny' (synthetic), 'block:<ModelSource name>', or a transformers "
        "image-text-to-text folder.",
    )
    prompts_path: str | None = Field(
        None, description="Prompt YAML; empty: the packaged, versioned file."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' (GPU if any, else CPU, recorded), 'cpu' or 'cuda'."
    )
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="Weight dtype of both models."
    )
    vram_budget_gib: float | None = Field(
        None,
        gt=0,
        description="Memory the models may hold on the device; default: the GPU's memory "
        "(CPU: unlimited).",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Pairs per model call; empty: sized from the VRAM budget after a one-pair "
        "batch (GPU), 4 on the CPU.",
    )
    steps: int = Field(4, ge=1, le=200, description="Diffusion steps per edit.")
    guidance: float = Field(7.5, ge=0, description="Text guidance scale.")
    image_guidance: float = Field(1.5, ge=0, description="Image guidance scale (InstructPix2Pix).")
    max_new_tokens: int = Field(32, ge=1, le=1024, description="Longest reward answer.")
    seed: int = Field(0, ge=0, description="Seed of the data generator, the edits and the lock.")
    monitor_interval_s: float = Field(1.0, gt=0, description="GPU monitor sampling interval (s).")
