"""From the sections' results to tiers, decisions, plots, the archive and the report body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.envlock import EnvironmentLock
from gpuflows.core.evidence.trust import Tier
from gpuflows.core.store.io import atomic_write_json
from gpuflows.pipelines.batch_eval import evidence, report
from gpuflows.pipelines.batch_eval.ablation import AblationResult
from gpuflows.pipelines.batch_eval.params import BatchEvalParams
from gpuflows.pipelines.batch_eval.schema import BatchEvalData


def summarise(
    p: BatchEvalParams,
    *,
    data: BatchEvalData,
    lock: EnvironmentLock,
    head: dict[str, Any],
    expanded: dict[str, Any],
    ablation: dict[str, Any],
    baseline: dict[str, Any],
    lite: dict[str, Any] | None,
    device_used: str,
    out: Path,
) -> dict[str, Any]:
    """Everything the flow publishes: ``body_md``, ``assessment`` (overall), ``sections``
    (name -> assessment), ``decisions``, ``plots``, ``archive``, ``promote`` and ``payload``."""
    exp = expanded["result"]
    model = evidence.model_ref(
        head["encoder_digest"],
        head["weights_digest"],
        head["n_queries"],
        data.synthetic,
        head_path=head["weights_path"],
    )
    prov = evidence.data_provenance(p.data_path)
    abl_check = AblationResult.model_validate(
        {k: ablation[k] for k in AblationResult.model_fields}
    ).check()
    exp_check = evidence.check_expansion(
        exp["achieved_size"],
        exp["target_size"],
        exp["achieved_hard_share"],
        exp["target_hard_share"],
    )
    trec_check = CheckResult(
        name="trec_rescored",
        passed=abs(ablation["library_ndcg10"] - ablation["baseline_ndcg10"]) < 1e-9,
        numbers={"ours": ablation["baseline_ndcg10"], "ir_measures": ablation["library_ndcg10"]},
        reason="nDCG@10 re-scored from the TREC run/qrels by ir-measures equals the report's",
    )
    slo = [CheckResult.model_validate(c) for c in baseline["checks"]]
    n_eval = exp["achieved_size"]
    sections = {
        "expanded set": evidence.section_assessment(
            data=data,
            lock=lock,
            model=model,
            sample_size=n_eval,
            checks=[exp_check],
            provenance=prov,
        ),
        "modality ablation": evidence.section_assessment(
            data=data,
            lock=lock,
            model=model,
            sample_size=n_eval,
            checks=[abl_check, trec_check],
            provenance=prov,
        ),
        "SLO baseline": evidence.section_assessment(
            data=data,
            lock=lock,
            model=model,
            sample_size=baseline["server"]["requests"],
            checks=slo,
            measured_device=device_used,
            provenance=prov,
        ),
    }
    overall = min(sections.values(), key=lambda a: a.tier.rank)
    decisions = report.decide([abl_check, exp_check, trec_check], slo, sections)
    srv = baseline["server"]
    plots = {
        "latency": report.plot_latency(
            srv["latencies_ms"], srv["failed"], p.p95_ms_max, out / "latency.png"
        ),
        "ablation": report.plot_ablation(
            ablation["drops"], ablation["threshold"], out / "ablation.png"
        ),
        "hard_easy": report.plot_hard_easy(
            exp["ndcg10"], exp["hard"], p.hard_ndcg_below, out / "ndcg_hard_easy.png"
        ),
    }
    atomic_write_json(out / "ablation.json", ablation)
    atomic_write_json(out / "slo_baseline.json", baseline)
    atomic_write_json(out / "expansion.json", {**exp, "digest": expanded["digest"]})
    if lite is not None:
        atomic_write_json(out / "cotrr_lite.json", lite)
    archive = report.write_archive(out)
    files = {
        "expanded set": f"{Path(expanded['files']['queries']).parent} ({expanded['digest']})",
        "TREC run / qrels": f"{ablation['trec']['run']}, {ablation['trec']['qrels']}",
        "fusion head": f"{head['weights_path']} ({head['weights_digest']})",
        "archive": f"{archive['path']} ({archive['digest']}; MANIFEST.json inside)",
        **{f"plot: {k}": v for k, v in plots.items()},
    }
    body = report.render(
        decisions=decisions,
        tiers=sections,
        expansion={**exp},
        ablation=ablation,
        serving={"offline": baseline["offline"], "server": srv},
        slo=slo,
        lite=None
        if lite is None
        else {
            "checks": [CheckResult.model_validate(c) for c in lite["checks"]],
            "note": lite["note"],
        },
        files=files,
    )
    if data.synthetic:
        body = (
            "Data: **synthetic** (`gpuflows.pipelines.batch_eval.generate`): a test of the "
            "pipeline, not of a production re-ranker.\n\n" + body
        )
    promote = overall.tier.rank >= Tier.T2.rank and all(c.passed for c in slo)
    return {
        "body_md": body,
        "assessment": overall,
        "sections": {k: v.tier.value for k, v in sections.items()},
        "decisions": decisions.model_dump(),
        "plots": plots,
        "archive": {k: v for k, v in archive.items() if k != "files"},
        "promote": promote,
        "payload": {
            "decisions": decisions.model_dump(),
            "sections": {k: v.model_dump(mode="json") for k, v in sections.items()},
            "expansion": exp,
            "ablation": {k: v for k, v in ablation.items() if k != "query_ids"},
            "baseline": {k: baseline[k] for k in ("gain", "checks")},
            "head": head,
            "cotrr_lite": None
            if lite is None
            else {k: lite[k] for k in ("config", "peak_memory_mb", "memory_basis", "checks")},
            "files": files,
        },
    }
