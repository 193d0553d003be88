"""The argo-experiment's parameters (one pydantic model: the UI form and the CLI) and presets.

Presets follow the seed's modes (small / medium / full: 10 / 100 / 1000 questions per
difficulty) plus ``smoke`` (tiny random-weight Qwen2, short generations: a few CPU minutes) and
``demo`` (the same with the real SmolLM2-135M-Instruct: slower on a CPU). Every preset sweeps the
reference's seven c_r points; deduplication makes the extra points nearly free.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STRATEGIES: tuple[str, ...] = ("argo", "always_retrieve", "always_reason", "random")
Strategy = Literal["argo", "always_retrieve", "always_reason", "random"]
REFERENCE_C_R = [0.005, 0.010, 0.015, 0.020, 0.021, 0.025, 0.050]


class ArgoParams(BaseModel):
    """One ARGO experiment: questions x strategies x c_r points x seeds."""

    model_config = ConfigDict(extra="forbid")

    questions: str | None = Field(
        default=None,
        description="Questions: a .jsonl of our schema, an ORAN-Bench-13K fin_*.json, or a "
        "folder holding fin_E/M/H.json. Empty: the generated set (synthetic).",
    )
    corpus: str | None = Field(
        default=None,
        description="Folder of .txt/.md/.jsonl documents to retrieve from. Empty: the generated "
        "corpus (only with the generated questions).",
    )
    chroma_path: str | None = Field(
        default=None, description="A persistent Chroma folder to query instead of the corpus."
    )
    chroma_collection: str = Field(default="oran_specs", description="Chroma collection name.")
    difficulties: list[Literal["easy", "medium", "hard"]] = Field(
        default_factory=lambda: ["easy", "medium", "hard"], min_length=1
    )
    n_questions: int = Field(default=10, ge=1, description="Questions per difficulty.")
    strategies: list[Strategy] = Field(default_factory=lambda: list(STRATEGIES), min_length=1)
    c_r: list[float] = Field(
        default_factory=lambda: list(REFERENCE_C_R), min_length=1, description="Retrieval costs."
    )
    c_p: float = Field(default=0.02, ge=0, description="Reasoning cost (reference 0.02).")
    delta_r: float = Field(default=0.135, gt=0, le=1, description="Progress of a good retrieval.")
    delta_p: float = Field(default=0.044, gt=0, le=1, description="Progress of a reasoning step.")
    p_s: float = Field(default=0.8, ge=0, le=1, description="Retrieval success probability.")
    mu: float = Field(default=1.0, ge=0, description="Cost weight.")
    gamma: float = Field(default=0.98, gt=0, lt=1, description="Discount.")
    grid: int = Field(default=1000, ge=2, le=100_000, description="U grid points.")
    quality: Literal["linear", "sqrt", "sigmoid", "saturating"] = "linear"
    quality_k: float = Field(default=1.0, gt=0, description="k of sigmoid / saturating.")
    max_steps: int = Field(default=10, ge=1, le=50, description="Steps before synthesis at most.")
    baseline_theta_star: float = Field(
        default=0.9, gt=0, le=1, description="Baselines stop at this U (reference 0.9)."
    )
    top_k: int = Field(default=3, ge=1, le=20, description="Chunks per retrieval.")
    success_threshold: float = Field(
        default=0.3, ge=-1, le=1, description="Best-chunk cosine that counts as a success."
    )
    chunk_words: int = Field(default=120, ge=8, description="Words per corpus chunk at most.")
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1)
    decoding: Literal["sampled", "greedy"] = Field(
        default="sampled", description="sampled: the reference's T/top_p per role; greedy: T=0."
    )
    max_new_tokens: dict[str, int] = Field(
        default_factory=dict,
        description="Per-role caps overriding the prompt file (decomposer=24 ...).",
    )
    prompts: str | None = Field(default=None, description="Prompt YAML (default: packaged v1).")
    backend: Literal["local", "endpoint"] = "local"
    model: str = Field(
        default="smollm2",
        description="Local model: 'smollm2' (real, 135M), 'tiny-qwen2' (random weights), "
        "'gguf:<file>' or a model folder.",
    )
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpus: str | None = Field(default=None, description="GPUs for device_map across cards: '0,1'.")
    max_memory_gib: float | None = Field(default=None, gt=0, description="Per chosen GPU.")
    batch_size: int | None = Field(default=None, ge=1, description="Rows per batch (None: auto).")
    endpoint_url: str | None = Field(default=None, description="OpenAI-compatible base URL /v1.")
    endpoint_model: str | None = Field(default=None, description="Served model name.")
    chunk_size: int = Field(default=64, ge=1, description="Questions per task.")
    synthetic_seed: int = Field(default=0, ge=0, description="Seed of the generated set.")
    monitor_interval_s: float = Field(default=1.0, gt=0)

    @field_validator("c_r")
    @classmethod
    def _costs(cls, v: list[float]) -> list[float]:
        if any(c < 0 for c in v):
            raise ValueError("c_r values must be >= 0")
        return sorted(set(v))

    @field_validator("max_new_tokens")
    @classmethod
    def _roles(cls, v: dict[str, int]) -> dict[str, int]:
        roles = {"decomposer", "retrieval_answer", "reasoner", "synthesizer"}
        bad = sorted(set(v) - roles)
        if bad:
            raise ValueError(f"max_new_tokens: unknown roles {bad}; use {sorted(roles)}")
        if any(n < 1 for n in v.values()):
            raise ValueError("max_new_tokens values must be >= 1")
        return v

    @model_validator(mode="after")
    def _sources(self) -> ArgoParams:
        if self.corpus is None and self.chroma_path is None and self.questions is not None:
            raise ValueError(
                "questions is set but corpus and chroma_path are empty: the generated corpus only "
                "fits the generated questions; give corpus=<folder> or chroma_path"
            )
        if self.backend == "endpoint" and not (self.endpoint_url and self.endpoint_model):
            raise ValueError("backend='endpoint' needs endpoint_url and endpoint_model")
        if self.gpus and self.device == "cpu":
            raise ValueError("gpus is set but device='cpu': drop gpus or use device='cuda'")
        return self

    @property
    def synthetic_data(self) -> bool:
        return self.questions is None

    def mdp_kwargs(self) -> dict[str, Any]:
        keys = ("delta_r", "delta_p", "p_s", "c_p", "mu", "gamma", "grid", "quality", "quality_k")
        return {k: getattr(self, k) for k in keys}


_SMOKE_TOKENS = {"decomposer": 24, "retrieval_answer": 32, "reasoner": 32, "synthesizer": 40}

PRESETS: dict[str, dict[str, Any]] = {
    # CPU minutes: the random-weight tiny Qwen2 (synthetic model), every strategy and c_r point
    "smoke": {
        "n_questions": 1,
        "max_steps": 3,
        "max_new_tokens": _SMOKE_TOKENS,
        "chunk_words": 40,
        "model": "tiny-qwen2",
        "device": "cpu",
    },
    # the real SmolLM2-135M-Instruct on the CPU: ~10+ minutes on 2 busy cores (measured), so
    # not the `make demo` default
    "demo": {
        "n_questions": 1,
        "max_steps": 3,
        "max_new_tokens": _SMOKE_TOKENS,
        "chunk_words": 40,
        "model": "smollm2",
        "device": "cpu",
    },
    "small": {"n_questions": 10},
    "medium": {"n_questions": 100},
    "full": {"n_questions": 1000},
}


def preset(name: str, **overrides: Any) -> ArgoParams:
    """``ArgoParams`` of a preset, with ``overrides`` winning."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} unknown: use one of {sorted(PRESETS)}")
    return ArgoParams(**{**PRESETS[name], **overrides})
