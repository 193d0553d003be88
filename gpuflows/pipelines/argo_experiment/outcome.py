"""From the units' records to the run's outputs: episodes JSONL, rows JSONL, the aggregate
table, Graphs 1.A/1.B, the Trust assessment and the report body (no Prefect)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from gpuflows.core.evidence.envlock import EnvironmentLock, build_lock
from gpuflows.core.evidence.trust import TrustAssessment
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.store.io import atomic_write_bytes, atomic_write_parquet
from gpuflows.pipelines.argo_experiment.evidence import assess_run
from gpuflows.pipelines.argo_experiment.experiment import Inputs, totals
from gpuflows.pipelines.argo_experiment.params import ArgoParams
from gpuflows.pipelines.argo_experiment.plots import plot_graphs
from gpuflows.pipelines.argo_experiment.report import report_body
from gpuflows.pipelines.argo_experiment.scoring import aggregate, expand_rows, majority_baseline


def experiment_lock(p: ArgoParams, inputs: Inputs, choice: DeviceChoice) -> EnvironmentLock:
    """Seeds applied, environment captured, parameters and data identity recorded."""
    return build_lock(
        seed=p.seeds[0], dataset=inputs.dataset, device=choice, parameters=p.model_dump(mode="json")
    )


def units_of(planned: dict[str, Any], inputs: Inputs) -> list[dict[str, Any]]:
    """The (group, chunk) units to run, with their questions."""
    return [
        {"group": g, "chunk_no": i, "questions": [inputs.questions[j] for j in idx]}
        for g in planned["groups"]
        for i, idx in enumerate(planned["chunks"])
    ]


@dataclass
class Outcome:
    assessment: TrustAssessment
    body: str
    payload: dict[str, Any]
    files: dict[str, str]
    totals: dict[str, Any]

    def result(self, published: dict[str, Any]) -> dict[str, Any]:
        return {
            "tier": self.assessment.tier.value,
            "report": published,
            **self.files,
            "totals": self.totals,
        }


def conclude(
    p: ArgoParams,
    inputs: Inputs,
    planned: dict[str, Any],
    units: list[dict[str, Any]],
    lock: EnvironmentLock,
    choice: DeviceChoice,
    out_dir: str | Path,
) -> Outcome:
    out = Path(out_dir)
    model = next((u["model"] for u in units if u.get("model")), {})
    episodes = [e for u in units for e in u["episodes"]]
    rows = expand_rows(episodes, planned["thresholds"], p.c_p)
    tot = totals(units, rows, episodes)
    agg = aggregate(rows)
    majority = majority_baseline(inputs.questions)
    files = {
        "episodes": str(atomic_write_bytes(out / "episodes.jsonl", _jsonl(episodes))),
        "rows": str(atomic_write_bytes(out / "rows.jsonl", _jsonl(rows))),
        "table": str(atomic_write_parquet(out / "aggregate.parquet", pd.DataFrame(agg))),
    }
    plots = plot_graphs(
        agg,
        difficulties=list(p.difficulties),
        strategies=list(p.strategies),
        out_dir=out,
        majority=majority,
    )
    files["graph_1a"], files["graph_1b"] = plots["paths"]["1a"], plots["paths"]["1b"]
    expected = len(inputs.questions) * len(p.seeds) * len(p.strategies) * len(p.c_r)
    assessment = assess_run(
        synthetic_data=inputs.qset.synthetic,
        data_note=inputs.qset.source,
        model=model,
        lock=lock,
        n_questions=len(inputs.questions),
        expected_rows=expected,
        rows=rows,
        totals=tot,
        device_kind=choice.kind,
        params=p,  # the model and the data's provenance, checked from what p loads
    )
    qinfo = {
        "questions": inputs.questions,
        "difficulties": ", ".join(p.difficulties),
        "prompts_version": inputs.prompts.version,
        "source": inputs.qset.source,
        "rows_read": inputs.qset.rows_read,
        "kept": len(inputs.qset.questions),
        "excluded": inputs.qset.excluded,
        "corpus": (
            f"{inputs.corpus.folder} ({len(inputs.corpus.chunks)} chunks, "
            f"{inputs.corpus.files} files)"
        )
        if inputs.corpus
        else f"chroma {p.chroma_path}",
        "index": "chroma" if p.chroma_path else "flat NumPy (exact)",
    }
    groups = [
        {"name": g.name, "strategies": [x.strategy for x in g.policies], "c_r": g.c_r}
        for g in planned["groups"]
    ]
    wall = time.perf_counter() - planned["started"]
    body = report_body(
        params=p.model_dump(mode="json"),
        inputs=qinfo,
        thresholds=planned["thresholds"],
        groups=groups,
        agg=agg,
        majority=majority,
        totals=tot,
        model=model,
        plots=plots,
        files=files,
        wall_s=wall,
    )
    payload = {
        "totals": tot,
        "aggregate": agg,
        "thresholds": planned["thresholds"],
        "groups": groups,
        "majority": majority,
        "model": model,
        "plots": plots,
        "data": inputs.qset.counts(),
        "wall_s": wall,
        "vram": [u.get("vram") for u in units],
    }
    return Outcome(assessment, body, payload, files, tot)


def _jsonl(items: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(x, default=str) + "\n" for x in items).encode()
