"""Trust policy block: the bar a result must clear for each Trust Tier, editable in the UI.

The fields are copied from the core model :class:`gpuflows.core.evidence.trust.TrustPolicy` (annotations,
defaults, constraints and descriptions), so the block and the rules cannot drift apart and every
constraint (``min_reviewers >= 2``, ...) is checked once, by the core definition.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from blocks._mirror import mirrored_fields_base, to_core
from gpuflows.core.evidence.trust import TrustPolicy

_TrustPolicyFields: Any = mirrored_fields_base(TrustPolicy, "_TrustPolicyFields", __name__)


class TrustPolicyBlock(_TrustPolicyFields):
    """How high the bar is for each Trust Tier: the thresholds the fixed tier rules use.

    T2 needs real data (declared provenance, not generated) and model (declared source, weights
    checked), a complete environment lock (clean tree), at least ``min_sample_size`` samples,
    passing integrity checks (at least one; failure share <= ``max_failure_share``) and every
    check in ``required_checks``; T3 also needs an independent re-run (same commit, clean tree,
    same data) reproduced within ``reproduction_rel_tolerance`` and approvals signed by
    ``min_reviewers`` (>= 2) distinct keys listed in ``reviewers`` (name -> ssh-ed25519 public
    key). Values may only tighten the built-in floor (30 samples, 5 % tolerance, 2 reviewers, 5 %
    failures, no dirty tree): a looser one is refused naming the field.

    Example:
        Load a stored policy and compute a tier with it:
        ```python
        from blocks import TrustPolicyBlock

        trust_policy_block = TrustPolicyBlock.load("BLOCK_NAME")
        policy = trust_policy_block.to_policy()
        ```
    """

    _block_type_name = "gpuflows Trust Policy"
    _block_type_slug = "gpuflows-trust-policy"
    _logo_url = "https://raw.githubusercontent.com/gpuflows/gpuflows/main/docs/img/trust-policy.png"
    _documentation_url = "https://github.com/gpuflows/gpuflows#blocks"

    @model_validator(mode="after")
    def _core_rules(self) -> TrustPolicyBlock:
        # Cross-field rules of the core model (now or later) fail at construction too.
        self.to_policy()
        return self

    def to_policy(self) -> TrustPolicy:
        """The core :class:`~gpuflows.core.evidence.trust.TrustPolicy` with this block's values."""
        return to_core(self, TrustPolicy)
