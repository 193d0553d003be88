"""What an argo-experiment run shows about itself, for the Trust Tier (computed by
:func:`gpuflows.core.evidence.trust.assess`, never written here).

Synthetic data (the generated set) or a synthetic model (random weights) caps the run at T1, as
does a CPU run (the experiment's target device is a GPU). Integrity: every (question, strategy,
c_r, seed) the run asked for has a scored row; no model call ended in an error.
"""

from __future__ import annotations

from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import EnvironmentLock
from gpuflows.core.evidence.trust import Evidence, ModelRef, TrustAssessment, assess


def every_cell_scored(expected: int, rows: list[dict[str, Any]]) -> CheckResult:
    return CheckResult(
        name="every_cell_scored",
        passed=len(rows) == expected,
        numbers={"expected": expected, "rows": len(rows)},
        reason=f"{len(rows)} scored rows for {expected} (question x strategy x c_r x seed)",
    )


def no_call_errors(totals: dict[str, Any]) -> CheckResult:
    n = int(totals.get("errors", 0))
    return CheckResult(
        name="no_call_errors",
        passed=n == 0,
        numbers={"errors": n, "requests": totals.get("requests", 0)},
        reason="every model call returned text" if n == 0 else f"{n} calls ended in an error",
    )


def assess_run(
    *,
    synthetic_data: bool,
    data_note: str,
    model: dict[str, Any],
    lock: EnvironmentLock,
    n_questions: int,
    expected_rows: int,
    rows: list[dict[str, Any]],
    totals: dict[str, Any],
    device_kind: str,
) -> TrustAssessment:
    """The run's tier from its evidence; ``model`` is the backend's record."""
    ref = ModelRef(
        name=str(model.get("source") or model.get("model") or "model"),
        source=str(model.get("model") or model.get("source") or ""),
        synthetic=bool(model.get("synthetic", False)),
        digest=str(model.get("model") or "") or None,
    )
    ev = Evidence(
        synthetic_data=synthetic_data,
        data_note=data_note,
        model=ref,
        lock=lock,
        sample_size=n_questions,
        integrity=[every_cell_scored(expected_rows, rows), no_call_errors(totals)],
        measured_device=device_kind,
        target_device="cuda",
    )
    return assess(ev)
