"""SLO policy block: the service-level objectives a measured baseline is checked against.

The fields are copied from the core model :class:`gpuflows.core.slo.measure.SloPolicy` (annotations, defaults,
constraints and descriptions), so the block and the checks cannot drift apart and every bound is
validated once, by the core definition. A bound left empty (None) is not checked.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from blocks._mirror import mirrored_fields_base, to_core
from gpuflows.core.slo.measure import SloPolicy

_SloPolicyFields: Any = mirrored_fields_base(SloPolicy, "_SloPolicyFields", __name__)


class SloPolicyBlock(_SloPolicyFields):
    """Service-level objectives for a measured service: latency, errors, throughput, memory.

    Seed 000's production baseline is the default (p95 < 300 ms, error rate < 0.8 %); CoTRR-Lite
    would set ``p95_ms_max=150`` and ``peak_memory_mb_max=512``. ``regression_tolerance`` is how
    far a metric may worsen against the stored baseline before a regression event is emitted.

    Example:
        Load a stored policy and check a measurement with it:
        ```python
        from blocks import SloPolicyBlock

        slo_policy_block = SloPolicyBlock.load("BLOCK_NAME")
        policy = slo_policy_block.to_policy()
        ```
    """

    _block_type_name = "gpuflows SLO Policy"
    _block_type_slug = "gpuflows-slo-policy"
    _logo_url = "https://raw.githubusercontent.com/gpuflows/gpuflows/main/docs/img/slo-policy.png"
    _documentation_url = "https://github.com/gpuflows/gpuflows#blocks"

    @model_validator(mode="after")
    def _core_rules(self) -> SloPolicyBlock:
        # Cross-field rules of the core model (now or later) fail at construction too.
        self.to_policy()
        return self

    def to_policy(self) -> SloPolicy:
        """The core :class:`~gpuflows.core.slo.measure.SloPolicy` with this block's values."""
        return to_core(self, SloPolicy)
