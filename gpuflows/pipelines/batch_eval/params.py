"""Parameters of ``batch-eval`` (the form in the Prefect UI) and its presets.

The seed's priority queue becomes presets: ``smoke`` (this CPU, well under a minute), ``seed``
(base 120 -> 500 queries, 30 % hard, 400 production requests: the seed's sizes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

PRESETS: dict[str, dict] = {
    "smoke": {
        "n_train": 48,
        "n_test": 32,
        "n_candidates": 20,
        "target_size": 60,
        "n_requests": 24,
        "n_bootstrap": 300,
        "n_permutations": 300,
        "server_rate_qps": 4.0,
        "head_epochs": 80,
    },
    "seed": {
        "n_train": 200,
        "n_test": 120,
        "n_candidates": 20,
        "target_size": 500,
        "n_requests": 400,
        "n_bootstrap": 2000,
        "n_permutations": 2000,
        "server_rate_qps": 4.0,
        "head_epochs": 300,
    },
}


class BatchEvalParams(BaseModel):
    """Parameters of ``batch-eval``. Unknown names are errors; ``None`` takes the preset's value."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["smoke", "seed"] = Field("smoke", description="Sizes unless overridden.")
    data_path: str | None = Field(
        None,
        description="Dataset folder (gpuflows.pipelines.batch_eval.schema); empty: generated.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the model runs.")
    seed: int = Field(0, ge=0, description="Seed of the generator, the head's training, stats.")
    n_train: int | None = Field(None, ge=4, description="Generated training queries.")
    n_test: int | None = Field(None, ge=4, description="Generated base evaluation queries.")
    n_candidates: int | None = Field(None, ge=11, description="Candidates per generated query.")
    target_size: int | None = Field(None, ge=1, description="Evaluation set size after expansion.")
    hard_share: float = Field(0.30, ge=0, le=1, description="Target share of hard queries.")
    hard_ndcg_below: float = Field(
        0.85, gt=0, le=1, description="A query is hard when the model's nDCG@10 is below this."
    )
    ablation_threshold: float = Field(
        0.01, ge=0, description="Each drop's lower 95 % CI bound must exceed this."
    )
    n_bootstrap: int | None = Field(None, ge=100, description="Bootstrap resamples.")
    n_permutations: int | None = Field(None, ge=99, description="Randomization test sign flips.")
    batch_size: int = Field(32, ge=1, description="Queries per forward pass (production).")
    n_requests: int | None = Field(None, ge=1, description="Timed production requests.")
    warmup: int = Field(3, ge=0, description="Untimed warm-up requests.")
    server_rate_qps: float | None = Field(None, gt=0, description="Poisson arrival rate.")
    request_timeout_ms: float = Field(
        2000.0, gt=0, description="A request slower than this counts as failed."
    )
    p95_ms_max: float = Field(300.0, gt=0, description="SLO: p95 latency upper bound, ms.")
    error_rate_max: float = Field(0.008, gt=0, le=1, description="SLO: error-rate upper bound.")
    compliance_gain_min: float = Field(
        0.10, description="SLO: compliance@10 gain over the text-only ranker (absolute)."
    )
    head_epochs: int | None = Field(None, ge=1, description="Fusion-head training epochs.")
    max_wall_s: float = Field(3600.0, gt=0, description="Safety gate: wall-time limit.")
    vram_ceiling_gb: float = Field(12.0, gt=0, description="Safety gate: VRAM ceiling (GPU).")

    @model_validator(mode="after")
    def _fill(self) -> BatchEvalParams:
        for k, v in PRESETS[self.preset].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        return self
