"""The evidence behind a Trust Tier: model identity, reproduction, reviews, and the assessment
record (:func:`gpuflows.core.evidence.trust.assess` reads and writes these)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import EnvironmentLock
from gpuflows.core.evidence.provenance import DataProvenance
from gpuflows.core.evidence.tiers import Tier


class ModelRef(BaseModel):
    """Identity of the model behind a result."""

    name: str
    source: str = Field(
        description="Where the weights came from: a path, a package, 'random-init'."
    )
    synthetic: bool = Field(description="Random or toy weights (caps the tier at T1).")
    digest: str | None = None
    weights_check: CheckResult | None = Field(
        default=None,
        description="gpuflows.core.evidence.weights_check on the loaded weights; T2 needs one "
        "that passed (a freshly initialised model fails it).",
    )


class Reproduction(BaseModel):
    """Evidence that an independent re-run gave the same result."""

    method: Literal["digest", "tolerance"] = Field(
        description="'digest' (deterministic outputs) or 'tolerance'."
    )
    reference: str = Field(description="The run or record reproduced (id, path).")
    matched: bool
    max_rel_diff: float | None = None
    tolerance: float | None = None
    details: dict[str, float] = Field(default_factory=dict)
    reference_commit: str | None = Field(
        default=None, description="Commit of the reproduced run (must equal this run's)."
    )
    reference_dirty: bool | None = Field(
        default=None, description="Whether the reproduced run's tree was dirty (must be False)."
    )
    reference_data_digest: str | None = Field(
        default=None, description="Data digest of the reproduced run (must equal this run's)."
    )


class Review(BaseModel):
    """One reviewer's decision, given through Prefect's pause-for-input."""

    reviewer: str
    approved: bool
    comment: str = ""
    at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    flow_run_id: str = Field(default="", description="The run the signature is for.")
    result_digest: str = Field(default="", description="The result the reviewer looked at.")
    signature: str = Field(
        default="",
        description="Base64 Ed25519 signature over (flow_run_id, result_digest, decision, "
        "comment): python -m tasks.review sign.",
    )

    @field_validator("reviewer")
    @classmethod
    def _named(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("reviewer must be a non-empty name")
        return v


class Evidence(BaseModel):
    """Everything a tier is computed from."""

    synthetic_data: bool
    data_note: str = ""
    data_provenance: DataProvenance | None = Field(
        default=None,
        description="Declared provenance of the data (gpuflows.core.evidence.provenance); "
        "without one the result is at most T1.",
    )
    model: ModelRef | None = Field(default=None, description="None when no model is involved.")
    lock: EnvironmentLock
    sample_size: int = Field(ge=0)
    integrity: list[CheckResult] = Field(default_factory=list)
    measured_device: str | None = None
    target_device: str | None = Field(
        default=None, description="Device kind the result is for ('cuda', 'cpu')."
    )
    reproduction: Reproduction | None = None
    reviews: list[Review] = Field(default_factory=list)
    flow_run_id: str | None = Field(
        default=None, description="The run reviewed: signed reviews must name it."
    )
    result_digest: str | None = Field(
        default=None, description="Digest of the result reviewed: signed reviews must name it."
    )


class TrustAssessment(BaseModel):
    """The computed tier, the checks behind it, and what the next tier still needs."""

    tier: Tier
    checks: list[CheckResult]
    missing_for_next: list[str]


# --- the checks -------------------------------------------------------------------------------
