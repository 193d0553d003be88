"""Evidence: what a result rests on, and the Trust Tier computed from it.

- :mod:`~gpuflows.core.evidence.checks`: the one shape of a named check (verdict, numbers, reason).
- :mod:`~gpuflows.core.evidence.digest`: content digests of data, files and values.
- :mod:`~gpuflows.core.evidence.envlock`: the environment lock (seed, git, packages, device).
- :mod:`~gpuflows.core.evidence.history`: earlier runs of the same work, for reproduction
  (hash-chained: an edited history is detected).
- :mod:`~gpuflows.core.evidence.provenance`: declared data provenance and the register of the
  digests the project's generators produced (such data is synthetic whatever its file name).
- :mod:`~gpuflows.core.evidence.weights_check`: a check a freshly initialised model fails.
- :mod:`~gpuflows.core.evidence.signing`: Ed25519-signed reviews.
- :mod:`~gpuflows.core.evidence.trust`: :func:`assess` turns evidence into a tier; tiers are
  never written by hand.
"""

from gpuflows.core.evidence.checks import CheckResult, checks_table
from gpuflows.core.evidence.digest import (
    bytes_digest,
    digest_any,
    file_digest,
    frame_digest,
    is_array_like,
    value_digest,
)
from gpuflows.core.evidence.envlock import (
    DatasetRef,
    EnvironmentLock,
    build_lock,
    git_info,
    render_lock_markdown,
)
from gpuflows.core.evidence.history import HistoryTampered, RunHistory, RunRecord
from gpuflows.core.evidence.provenance import DataProvenance, generated_by, register_generated
from gpuflows.core.evidence.trust import (
    Evidence,
    ModelRef,
    Reproduction,
    Review,
    Tier,
    TrustAssessment,
    TrustPolicy,
    assess,
    render_trust_markdown,
    reproduce_within_tolerance,
)
from gpuflows.core.evidence.weights_check import check_state_dict, check_weights_dir

__all__ = [
    "CheckResult",
    "DataProvenance",
    "DatasetRef",
    "EnvironmentLock",
    "Evidence",
    "HistoryTampered",
    "ModelRef",
    "Reproduction",
    "Review",
    "RunHistory",
    "RunRecord",
    "Tier",
    "TrustAssessment",
    "TrustPolicy",
    "assess",
    "build_lock",
    "check_state_dict",
    "check_weights_dir",
    "bytes_digest",
    "checks_table",
    "digest_any",
    "file_digest",
    "frame_digest",
    "generated_by",
    "git_info",
    "is_array_like",
    "register_generated",
    "render_lock_markdown",
    "render_trust_markdown",
    "reproduce_within_tolerance",
    "value_digest",
]
