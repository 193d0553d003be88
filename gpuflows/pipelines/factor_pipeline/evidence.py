"""What a factor-pipeline run shows about itself, for the Trust Tier.

Data: generated shards are synthetic; the models: the tiny random-weight VLM is synthetic,
SmolLM2 is real. Integrity: every probed image has its record, and every QA input id ended in
exactly one of ``qa.jsonl`` / ``errors.jsonl``. The tier comes from
:func:`gpuflows.core.evidence.trust.assess`, never from here.
"""

from __future__ import annotations

from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import DatasetRef, EnvironmentLock, build_lock
from gpuflows.core.evidence.trust import Evidence, ModelRef, TrustAssessment, assess


def dataset_ref(name: str, digest: str, synthetic: bool, description: str = "") -> DatasetRef:
    return DatasetRef(  # a user's images: their own path and digest, no version of ours
        name=name,
        version="1" if synthetic else "",
        digest=digest,
        synthetic=synthetic,
        description=description,
    )


def run_lock(seed: int, dataset: DatasetRef | None, parameters: dict[str, Any]) -> EnvironmentLock:
    from gpuflows.core.hardware.devices import choose_device

    device = choose_device("auto")  # the device this host offers the run (NVML, no CUDA init)
    return build_lock(seed=seed, dataset=dataset, device=device, parameters=parameters)


def exactly_once_check(check: dict[str, Any], n_ids: int) -> CheckResult:
    bad = len(check["missing"]) + len(check["extra"]) + len(check["duplicated"])
    return CheckResult(
        name="qa_exactly_once",
        passed=bad == 0,
        numbers={"ids": n_ids, "outcomes": check["outcomes"], "missing": len(check["missing"])}
        | {"duplicated": len(check["duplicated"]), "extra": len(check["extra"])},
        reason="every input id has exactly one outcome"
        if bad == 0
        else f"missing {check['missing'][:5]}, duplicated {check['duplicated'][:5]}",
    )


def probe_complete_check(images_in: int, records_out: int) -> CheckResult:
    return CheckResult(
        name="probe_every_image_recorded",
        passed=images_in == records_out,
        numbers={"images": images_in, "records": records_out},
        reason=f"{records_out} records for {images_in} images",
    )


def assess_run(
    *,
    synthetic_data: bool,
    data_note: str,
    models: list[tuple[str, str, bool]],
    lock: EnvironmentLock,
    sample_size: int,
    integrity: list[CheckResult],
    measured_device: str | None,
) -> TrustAssessment:
    """``models``: (name, source, synthetic) of each model the run used."""
    model = None
    if models:
        model = ModelRef(
            name=" + ".join(m[0] for m in models),
            source=" + ".join(m[1] for m in models),
            synthetic=any(m[2] for m in models),
        )
    return assess(
        Evidence(
            synthetic_data=synthetic_data,
            data_note=data_note,
            model=model,
            lock=lock,
            sample_size=sample_size,
            integrity=integrity,
            measured_device=measured_device,
            target_device="cuda" if measured_device else None,
        )
    )


def _qa_model(params: Any) -> tuple[str, str, bool]:
    if params.qa_backend == "endpoint":
        return (str(params.served_model), f"endpoint {params.endpoint_url}", False)
    from gpuflows.models.llm.load import resolve_spec

    spec = resolve_spec(params.qa_model, field="qa_model")
    return (params.qa_model, str(spec.path), spec.synthetic)


def assess_factor_run(
    params: Any, steps: dict[str, dict[str, Any]], data: dict[str, Any] | None
) -> tuple[TrustAssessment, EnvironmentLock, list[str]]:
    """The run's tier, its lock and notes, from the steps' records and the outcome files."""
    from gpuflows.pipelines.factor_pipeline.outcomes import check_exactly_once
    from gpuflows.pipelines.factor_pipeline.qa import scan_input

    notes: list[str] = []
    models: list[tuple[str, str, bool]] = []
    integrity: list[CheckResult] = []
    probe, qa = steps.get("probe"), steps.get("qa")
    if data is not None:
        synthetic, note = data["synthetic"], f"{data['name']} ({data['images']} images)"
        ref = dataset_ref(data["name"], data["digest"], synthetic, "factor-pipeline step-1 shards")
    else:
        src = (qa or steps.get("sample") or {}).get("input", "")
        synthetic, note, ref = False, f"user records {src}", None
        notes.append("the input file was given by the user: its provenance is not checked")
    if probe:
        models.append(
            (
                params.vlm,
                "random-init" if probe["synthetic_model"] else params.vlm,
                probe["synthetic_model"],
            )
        )
        integrity.append(probe_complete_check(probe["images_in"], probe["records"]))
    if qa:
        models.append(_qa_model(params))
        ids = set(scan_input(qa["input"]))
        integrity.append(exactly_once_check(check_exactly_once(qa["out_dir"], ids), len(ids)))
    if probe and probe["synthetic_model"]:
        notes.append("step 1 used a tiny random-weight VLM: its predictions are noise (T1)")
    lock = run_lock(params.seed, ref, params.model_dump(mode="json"))
    sample = qa["qa"] if qa else (probe["records"] if probe else 0)
    device = probe["device"].split(",")[0] if probe else None
    assessment = assess_run(
        synthetic_data=synthetic,
        data_note=note,
        models=models,
        lock=lock,
        sample_size=sample,
        integrity=integrity,
        measured_device=device,
    )
    return assessment, lock, notes
