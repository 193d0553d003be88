"""``two-stage-eval``: edit every pair with a diffusion model, then score every edit with a VLM.

Seed 004. The edit model and the reward model may not fit one GPU together, so the flow runs all
of stage 1 (every category), then swaps once, then all of stage 2: one swap, or none when the
budget holds both (the seed: 540 moves per pair, 9 per category). A residency manager
(:mod:`gpuflows.core.memory.residency`) places the models within the budget and times every move; the report
states the swaps of the naive, per-category and our order (:mod:`gpuflows.pipelines.two_stage_eval.move_plan`).

Per pair and stage the result is checkpointed (:mod:`tasks.two_stage`): a killed run re-run with
the same parameters redoes nothing finished; a re-edited image is re-scored. Edited images are
PNG files on disk, recorded with their digest. Bad pairs are rejected before any model loads.

Artifacts: ``two-stage-eval-report`` (tiered), ``two-stage-eval-progress`` (pair-stages done),
GPU monitor ``two-stage-eval-monitor`` (samples table and ``-summary``; inactive on the CPU).

Models: ``"tiny"`` builds small random-weight models locally through the same diffusers /
transformers code (synthetic: the result caps at T1); ``"block:<name>"`` loads a ModelSource block;
anything else is a model folder on this host (safetensors, no remote code).

    python -m flows.two_stage_eval --preset smoke
    python -m flows.two_stage_eval --data bench/ --edit-model /models/ip2p --reward-model /models/vlm
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.digest import bytes_digest
from gpuflows.core.evidence.envlock import DatasetRef, build_lock
from gpuflows.core.evidence.trust import Evidence, ModelRef, assess
from gpuflows.core.faults import InputError
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.memory.budget import GIB, VramEstimate
from gpuflows.core.memory.model_size import need_from_weights
from gpuflows.core.memory.residency import ResidencyError, ResidencyManager
from gpuflows.core.memory.weight_files import model_fingerprint
from gpuflows.core.store.io import results_root
from gpuflows.core.store.ledger import Ledger
from gpuflows.models.diffusers_edit import load_edit_model
from gpuflows.models.vlm_reward import load_reward_model
from gpuflows.pipelines.two_stage_eval import move_plan
from gpuflows.pipelines.two_stage_eval.bench import canonical_category, load_benchmark
from gpuflows.pipelines.two_stage_eval.prompt_set import load_prompts
from gpuflows.pipelines.two_stage_eval.score_stats import render_markdown, summarize
from gpuflows.pipelines.two_stage_eval.synth import generate_benchmark, is_synthetic
from tasks.hardware import pick_device
from tasks.model_specs import resolve_model
from tasks.monitoring import MonitorReport, gpu_monitor
from tasks.progress import RunProgress
from tasks.reports import publish_tiered_report, run_dir
from tasks.two_stage import edit_stage, score_stage
from tasks.vram import VramGrant, limit_capacity_gib, vram_budget

REPORT_KEY = "two-stage-eval-report"
PROGRESS_KEY = "two-stage-eval-progress"
MONITOR_KEY = "two-stage-eval-monitor"
ACTIVATION_MARGIN = 0.3
"""VRAM need = weights x 1.3: diffusion activations at the benchmark's resolutions (stated)."""


class TwoStageEvalParams(BaseModel):
    """Parameters of two-stage-eval (one model, so the UI shows one form)."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["smoke", "full"] = Field(
        "smoke",
        description="Synthetic data size when no data_path: smoke 10 pairs, full 270 (the seed's 50/50/70/50/50).",
    )
    data_path: str | None = Field(
        None,
        description="Benchmark .jsonl file or folder (gpuflows.pipelines.two_stage_eval.bench format); empty: synthetic.",
    )
    edit_model: str = Field(
        "tiny",
        description="'tiny' (synthetic), 'block:<ModelSource name>', or a diffusers pipeline folder.",
    )
    reward_model: str = Field(
        "tiny",
        description="'tiny' (synthetic), 'block:<ModelSource name>', or a transformers image-text-to-text folder.",
    )
    prompts_path: str | None = Field(
        None, description="Prompt YAML; empty: the packaged, versioned file."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' (GPU if any, else CPU, recorded), 'cpu' or 'cuda'."
    )
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="Weight dtype of both models."
    )
    vram_budget_gib: float | None = Field(
        None,
        gt=0,
        description="Memory the models may hold on the device; default: the GPU's memory (CPU: unlimited).",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Pairs per model call; empty: sized from the VRAM budget after a one-pair batch (GPU), 4 on the CPU.",
    )
    steps: int = Field(4, ge=1, le=200, description="Diffusion steps per edit.")
    guidance: float = Field(7.5, ge=0, description="Text guidance scale.")
    image_guidance: float = Field(1.5, ge=0, description="Image guidance scale (InstructPix2Pix).")
    max_new_tokens: int = Field(32, ge=1, le=1024, description="Longest reward answer.")
    seed: int = Field(0, ge=0, description="Seed of the data generator, the edits and the lock.")
    monitor_interval_s: float = Field(1.0, gt=0, description="GPU monitor sampling interval (s).")


def _capacity(p: TwoStageEvalParams, choice: DeviceChoice, needs: dict[str, VramEstimate]) -> int:
    """Bytes the models may hold on the device: on a GPU its VRAM limit (card minus the pool's
    reserve), narrowed by ``vram_budget_gib``; on the CPU ``vram_budget_gib`` or room for both."""
    limit_gib = limit_capacity_gib(choice)
    asked = None if p.vram_budget_gib is None else int(p.vram_budget_gib * GIB)
    if limit_gib is None:
        return asked if asked is not None else sum(n.nbytes for n in needs.values())
    return min(limit_gib * GIB, asked) if asked is not None else limit_gib * GIB


def _hold(p: TwoStageEvalParams, needs: dict[str, VramEstimate], capacity: int) -> VramEstimate:
    """What the run holds of the GPU's VRAM limit while its models are on it.

    With a fixed ``batch_size``: what it keeps resident (both models when they fit together,
    else the larger; each need carries the stated activation margin). With batches sized from
    the budget: the whole budget, since the batches grow into it.
    """
    resident = move_plan.resident_need(needs["edit"].nbytes, needs["reward"].nbytes, capacity)
    models = f"{needs['edit'].basis}; {needs['reward'].basis}"
    if p.batch_size is None:
        return VramEstimate(
            nbytes=capacity,
            basis=f"the run's {capacity / GIB:.2f} GiB budget: batches are sized to fill it "
            f"(models resident at peak {resident / GIB:.2f} GiB: {models})",
        )
    return VramEstimate(nbytes=resident, basis=f"resident models at peak: {models}")


@flow(name="two-stage-eval", log_prints=True)
def two_stage_eval(params: TwoStageEvalParams = TwoStageEvalParams()) -> dict:  # noqa: B008
    """Edit, swap once, score; per-category statistics, swap counts, tiered report."""
    log = get_run_logger()
    p = params
    # -- everything that can be wrong is checked before a model loads ----------------------------
    data = (
        Path(p.data_path)
        if p.data_path
        else results_root() / "two-stage-eval" / f"data-{p.preset}-seed{p.seed}"
    )
    if not p.data_path:
        generate_benchmark(data, p.preset, seed=p.seed)
    loaded = load_benchmark(data)
    for r in loaded.rejected:
        log.warning("pair %s rejected: %s: %s", r.pair_id, r.field, r.reason)
    prompts = load_prompts(p.prompts_path)
    choice = pick_device(p.device)
    models = {k: resolve_model(getattr(p, f"{k}_model"), k, p.dtype) for k in ("edit", "reward")}
    needs = {
        k: need_from_weights(
            m.path, m.dtype, activation_margin=ACTIVATION_MARGIN, name=f"{k} model"
        )
        for k, m in models.items()
    }
    capacity = _capacity(p, choice, needs)
    mgr = ResidencyManager(choice.device, capacity)
    try:
        for k in needs:
            mgr.require_fits(f"{k} model ({models[k].source})", needs[k])
    except ResidencyError as exc:
        raise InputError(str(exc)) from None
    ref = DatasetRef(
        name="two-stage-eval-bench",
        version=prompts.version,
        digest=loaded.digest(),
        synthetic=is_synthetic(data),
        description=str(data),
    )
    lock = build_lock(seed=p.seed, dataset=ref, device=choice, parameters=p.model_dump(mode="json"))

    # -- models load on the host; the manager places them --------------------------------------
    m = models["edit"]
    edit_model = load_edit_model(
        m.path,
        dtype=m.dtype,
        device="cpu",
        trust_remote_code=m.trust_remote_code,
        use_safetensors=m.use_safetensors,
    )
    m = models["reward"]
    reward = load_reward_model(
        m.path,
        dtype=m.dtype,
        device="cpu",
        trust_remote_code=m.trust_remote_code,
        use_safetensors=m.use_safetensors,
    )
    mgr.register("edit", edit_model, needs["edit"])
    mgr.register("score", reward, needs["reward"])
    fps = {k: model_fingerprint(m.path) for k, m in models.items()}
    ckpt = results_root() / "two-stage-eval" / "checkpoint"
    out = run_dir("two-stage-eval")
    pairs = loaded.pairs
    # each pair's noise seed comes from its id, not its position: reordering the data or adding
    # pairs never changes an edit, so the checkpoint key (which has no position) stays exact
    indices = {q.pair_id: int(bytes_digest(q.pair_id.encode())[-8:], 16) for q in pairs}
    progress = RunProgress(
        PROGRESS_KEY, total=2 * len(pairs), what="pair-stages", min_interval_s=0.5
    )
    edit_settings = {
        "seed": p.seed,
        "steps": p.steps,
        "guidance": p.guidance,
        "image_guidance": p.image_guidance,
        "dtype": models["edit"].dtype,
    }
    score_settings = {
        "max_new_tokens": p.max_new_tokens,
        "constrain_to_score": reward.synthetic,
        "score_range": (0, 10),
        "dtype": models["reward"].dtype,
    }
    hold = _hold(p, needs, capacity)
    with (
        gpu_monitor(
            interval_s=p.monitor_interval_s,
            key=MONITOR_KEY,
            title=f"two-stage-eval on {choice.device}",
        ) as monitor,
        vram_budget(hold, device=choice) as grant,
    ):
        edits, edit_batches = edit_stage(
            pairs,
            indices,
            mgr,
            Ledger(ckpt / "edit.jsonl"),
            ckpt / "edited",
            fps["edit"],
            edit_settings,
            p.batch_size,
            progress,
        )
        scores, score_batches = score_stage(
            pairs,
            edits,
            mgr,
            Ledger(ckpt / "score.jsonl"),
            prompts,
            fps["reward"],
            score_settings,
            p.batch_size,
            progress,
        )
    batching = {"edit": edit_batches, "score": score_batches}

    # -- report ------------------------------------------------------------------------------
    # a pair rejected at load is a failed pair of its category (when it named a valid one)
    summary = summarize(
        [(q.category, scores[q.pair_id]["score"], scores[q.pair_id]["error"]) for q in pairs]
        + [(c, None, str(r)) for r in loaded.rejected if (c := canonical_category(r.category))]
    )
    ne, ns = needs["edit"].nbytes, needs["reward"].nbytes
    planned = move_plan.compare(loaded.sizes(), ne, ns, capacity)
    # the same data under a budget that holds one model at a time: what the orders cost there
    planned_one = move_plan.compare(loaded.sizes(), ne, ns, max(ne, ns))
    moved = mgr.summary()
    failed = {q.pair_id: scores[q.pair_id]["error"] for q in pairs if scores[q.pair_id]["error"]}
    synthetic_model = edit_model.synthetic or reward.synthetic
    evidence = Evidence(
        synthetic_data=ref.synthetic,
        data_note="synthetic scenes (gpuflows.pipelines.two_stage_eval.synth)"
        if ref.synthetic
        else str(data),
        model=ModelRef(
            name="edit+reward",
            source=f"{models['edit'].source} + {models['reward'].source}",
            synthetic=synthetic_model,
            digest=bytes_digest(f"{fps['edit']}+{fps['reward']}".encode()),  # both models
        ),
        lock=lock,
        sample_size=summary["overall"]["n_scored"],
        integrity=[
            CheckResult(
                name="every_pair_scored_or_failed",
                passed=len(scores) == len(pairs),
                numbers={"pairs": len(pairs), "records": len(scores)},
                reason=f"{len(scores)} records for {len(pairs)} pairs",
            )
        ],
        measured_device=choice.kind,
        target_device="cuda",
    )
    assessment = assess(evidence)
    body = _report_md(
        p, loaded, summary, planned, planned_one, moved, needs, capacity, failed, choice.device
    )
    body += _resources_md(grant, batching, monitor.report)
    watched = _monitor_record(monitor.report)
    published = publish_tiered_report(
        key=REPORT_KEY,
        title="Two-stage edit-and-score evaluation",
        body_md=body,
        assessment=assessment,
        lock=lock,
        out_dir=out,
        payload={
            "summary": summary,
            "swaps_planned": planned,
            "swaps_planned_one_model": planned_one,
            "moves": moved,
            "move_records": [vars(m) for m in mgr.moves],
            "failed": failed,
            "rejected": [vars(r) for r in loaded.rejected],
            "checkpoint": str(ckpt),
            "needs": {k: v.model_dump() for k, v in needs.items()},
            "capacity_bytes": capacity,
            "vram_grant": grant.model_dump(mode="json"),
            "batching": batching,
            "gpu_monitor": watched,
            "models": {
                k: {
                    "source": m.source,
                    "path": str(m.path),
                    "dtype": m.dtype,
                    "fingerprint": fps[k],
                }
                for k, m in models.items()
            },
        },
    )
    log.info(
        "two-stage-eval: %s, %d scored, %d failed, %d swap(s)",
        assessment.tier.value,
        summary["overall"]["n_scored"],
        len(failed),
        moved["swaps"],
    )
    return {
        "tier": assessment.tier.value,
        "summary": summary,
        "swaps": moved["swaps"],
        "swaps_planned": planned,
        "swaps_planned_one_model": planned_one,
        "report": published,
        "failed": failed,
        "rejected": len(loaded.rejected),
        "device": choice.device,
        "batching": batching,
        "vram_grant": grant.model_dump(mode="json"),
        "gpu_monitor": watched,
    }


def _gib(n: int) -> str:
    return f"{n / GIB:.3f} GiB"


def _monitor_record(report: MonitorReport) -> dict:
    return {
        "samples": report.samples,
        "reason": report.reason,
        "summary": report.summary,
        "plot": None if report.png_path is None else str(report.png_path),
    }


def _resources_md(grant: VramGrant, batching: dict, monitor: MonitorReport) -> str:
    held = (
        f"held {grant.occupy_gib} GiB of `{grant.limit}` ({grant.capacity_gib} GiB) for "
        f"{grant.held_s:.1f} s after waiting {grant.wait_s:.1f} s"
        if grant.limit
        else "no VRAM limit held (CPU)"
    )
    lines = ["", "", f"VRAM budget: {held}.", "", "Batches:"]
    for stage, b in batching.items():
        alone = (
            f"; {b['items_oom']} pair(s) out of memory alone, retried by the next run"
            if b["items_oom"]
            else ""
        )
        lines.append(
            f"- {stage}: {b['size']} per call ({b['basis']}; OOM halvings {b['oom_halvings']}{alone})"
        )
    seen = (
        f"{monitor.samples} samples, peak memory "
        + ", ".join(f"GPU {r['gpu_index']} {r['memory_max_used_mib']} MiB" for r in monitor.summary)
        if monitor.samples
        else f"inactive ({monitor.reason})"
    )
    lines += ["", f"GPU monitor: {seen}; artifact `{MONITOR_KEY}-summary`."]
    return "\n".join(lines)


def _report_md(
    p, loaded, summary, planned, planned_one, moved, needs, capacity, failed, device
) -> str:
    gbps = moved["gb_per_s"]
    lines = [
        f"Pairs: {len(loaded.pairs)} valid, {len(loaded.rejected)} rejected; device {device}.",
        "",
        "## Scores (0-10)",
        "",
        render_markdown(summary),
        "",
        "## Model moves",
        "",
        f"Needs: edit {_gib(needs['edit'].nbytes)}, reward {_gib(needs['reward'].nbytes)}; "
        f"budget {_gib(capacity)}.",
        "",
        "| order | swaps, this budget | swaps, a budget for one model |",
        "|---|---|---|",
        f"| naive (per pair) | {planned['naive']} | {planned_one['naive']} |",
        f"| per category (seed) | {planned['per_category']} | {planned_one['per_category']} |",
        f"| ours (all edits, then all scores) | {planned['ours']} | {planned_one['ours']} |",
        "",
        f"Measured this run: {moved['swaps']} swap(s), {moved['transfers']} transfer(s), "
        f"{moved['gb_moved']:.3f} GB in {moved['seconds']:.3f} s"
        + (f" ({gbps:.2f} GB/s)" if gbps and not math.isinf(gbps) else "")
        + (" — same device (no GPU): moves are bookkeeping" if moved["same_device"] else "")
        + ".",
    ]
    if failed:
        lines += ["", f"Failed pairs ({len(failed)}):", ""]
        lines += [f"- `{k}`: {v[:160]}" for k, v in list(failed.items())[:20]]
    if loaded.rejected:
        lines += ["", "Rejected pairs:", ""]
        lines += [f"- `{r.pair_id}` {r.field}: {r.reason[:160]}" for r in loaded.rejected[:20]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m flows.two_stage_eval", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--preset", default="smoke", choices=["smoke", "full"])
    ap.add_argument("--data")
    ap.add_argument("--edit-model", default="tiny")
    ap.add_argument("--reward-model", default="tiny")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--vram-budget-gib", type=float)
    ap.add_argument(
        "--batch-size", type=int, help="pairs per model call (default: from the budget)"
    )
    ap.add_argument("--prompts", help="prompt YAML (default: the packaged, versioned file)")
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    try:
        params = TwoStageEvalParams(
            preset=a.preset,
            data_path=a.data,
            edit_model=a.edit_model,
            reward_model=a.reward_model,
            device=a.device,
            dtype=a.dtype,
            vram_budget_gib=a.vram_budget_gib,
            batch_size=a.batch_size,
            steps=a.steps,
            seed=a.seed,
            prompts_path=a.prompts,
            guidance=a.guidance,
            max_new_tokens=a.max_new_tokens,
        )
        out = two_stage_eval(params)
    except (ValueError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    o = out["summary"]["overall"]
    print(
        f"\ntwo-stage-eval finished: {out['tier']} on {out['device']}: {o['n_scored']} scored, "
        f"{o['n_failed']} failed, {out['rejected']} rejected; swaps {out['swaps']} "
        f"(naive {out['swaps_planned']['naive']}, per-category {out['swaps_planned']['per_category']})"
    )
    one = out["swaps_planned_one_model"]
    print(
        f"  swaps with a budget for one model: naive {one['naive']}, per-category "
        f"{one['per_category']}, ours {one['ours']}"
    )
    print(f"  report: {out['report']['markdown']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
