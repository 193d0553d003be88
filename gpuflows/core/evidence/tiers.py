"""The Trust Tiers and the policy that sets their thresholds; a policy may only tighten the
built-in :data:`FLOOR` (a looser value is refused when the policy is built, naming the field)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, field_validator, model_validator

from gpuflows.core.evidence.signing import (
    load_public_key,
)


class Tier(StrEnum):
    """The three tiers, ordered."""

    T1 = "T1-Indicative"
    T2 = "T2-Internal"
    T3 = "T3-Verified"

    @classmethod
    def parse(cls, name: str) -> Tier:
        """Accept 'T2', 't2-internal' or the full name; anything else is an error naming the choices."""
        text = str(name).strip().upper()
        for t in cls:
            # 'T2' or the full name; a suffix that names another tier ('T1-Verified') is an error
            if text in (t.name, t.value.upper()):
                return t
        raise ValueError(f"tier={name!r} unknown: use one of {[t.value for t in cls]}")

    @property
    def rank(self) -> int:
        return int(self.name[1])


class TrustPolicy(BaseModel):
    """How high the bar is, stated by the team (a ``TrustPolicyBlock``).

    The tier *rules* are fixed (DESIGN.md); the policy sets their thresholds: the sample size a
    result needs, extra required checks, the reproduction tolerance. Two distinct reviewers is
    DESIGN.md's floor and cannot be lowered.
    """

    min_sample_size: int = Field(
        default=30, ge=1, description="Smallest sample a T2 result may rest on."
    )
    required_checks: list[str] = Field(
        default_factory=list,
        description="Names of extra checks (e.g. 'slo_p95_latency') that must be present and pass for T2.",
    )
    reproduction_rel_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Largest relative difference a re-run may show for non-deterministic outputs.",
    )
    min_reviewers: int = Field(
        default=2, ge=2, description="Distinct approving reviewers needed for T3."
    )
    allow_dirty_tree: bool = Field(
        default=False,
        description="Kept for old stored blocks; must stay False: a dirty tree is never a "
        "complete lock.",
    )
    max_failure_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Largest share of items (pairs, units, queries) that may fail or be "
        "rejected before the run's integrity check fails.",
    )

    reviewers: dict[str, str] = Field(
        default_factory=dict,
        description="Reviewer name -> OpenSSH ssh-ed25519 public key. Only approvals signed by "
        "one of these keys count toward T3 (gpuflows.core.evidence.signing).",
    )

    @field_validator("reviewers")
    @classmethod
    def _keys_parse(cls, v: dict[str, str]) -> dict[str, str]:
        for name, key in v.items():
            if not name.strip():
                raise ValueError("reviewers: a reviewer name is empty")
            try:
                load_public_key(key)
            except ValueError as exc:
                raise ValueError(
                    f"reviewers[{name!r}]: {exc}; paste the reviewer's ~/.ssh/id_ed25519.pub line"
                ) from None
        return v

    @model_validator(mode="after")
    def _only_tighter(self) -> TrustPolicy:
        looser = []
        for name, floor in FLOOR.items():
            value = getattr(self, name)
            if name == "allow_dirty_tree":
                bad = bool(value) and not floor
            elif name in _UPPER_BOUNDED:
                bad = value > floor
            else:
                bad = value < floor
            if bad:
                looser.append(f"{name}={value!r} (floor {floor!r})")
        if looser:
            raise ValueError(
                "a trust policy may only tighten the rules; looser than the built-in floor: "
                + "; ".join(looser)
                + ". Raise (or lower) the value to the floor or stricter; a dirty tree is never a "
                "complete lock: commit the changes instead of allowing them"
            )
        return self


#: The built-in floor (DESIGN.md): a policy may be stricter on every field, never looser.
FLOOR: dict[str, float | int | bool] = {
    "min_sample_size": 30,
    "reproduction_rel_tolerance": 0.05,
    "min_reviewers": 2,
    "allow_dirty_tree": False,
    "max_failure_share": 0.05,
}
_UPPER_BOUNDED = {"reproduction_rel_tolerance", "max_failure_share"}
