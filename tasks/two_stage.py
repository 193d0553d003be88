"""Tasks of two-stage-eval: stage 1 edits, stage 2 scores, each pair checkpointed in a ledger.

Each stage is one retried task over all its pairs, in batches. Every finished pair is recorded
durably in the checkpoint folder's ledger (:mod:`gpuflows.ledger`) before the next batch, keyed
by a digest of everything its result depends on:

* edit key = digest of what the edit reads (pair id, instruction, image bytes) + edit model
  fingerprint + seed, steps, guidance;
* score key = the *digest of the edited PNG* + the pair + the digest of the rendered prompts
  (category, instruction, description in the versioned prompt set) + reward model fingerprint
  and settings, so a re-edited image is re-scored, an unchanged one never is, and a pair whose
  description (read only by the reward prompt) changed is re-scored without being re-edited.

A re-run (or a retry after a crash) skips every recorded key: nothing finished is redone,
nothing is recorded twice. Models are placed by the residency manager passed in (thread task
runner: the objects are shared, not serialised). Deterministic failures (an image that does not
decode, an answer without a score) are recorded as errors for that pair and never become a
number; OOM and transient faults raise and are retried by Prefect.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from gpuflows.batching import DEFAULT_CPU_BATCH, batch_from_peak
from gpuflows.digest import bytes_digest, value_digest
from gpuflows.edit_bench import EditPair, PairError, decode_image, edit_input_digest
from gpuflows.faults import FallbackRecord, run_with_oom_fallback
from gpuflows.io import atomic_write_bytes
from gpuflows.ledger import Ledger, item_key
from gpuflows.prompts_yaml import PromptSet
from gpuflows.residency import ResidencyManager
from gpuflows.score_parse import ScoreParseError, parse_score
from tasks.retries import retry_options

EXECUTED: list[tuple[str, str]] = []
"""(stage, pair_id) of every item computed in this process (tests count re-runs with it)."""


def edit_key(pair: EditPair, model_fp: str, settings: dict[str, Any]) -> str:
    return item_key(stage="edit", pair=edit_input_digest(pair), model=model_fp, **settings)


def score_key(
    edited_digest: str, pair: EditPair, prompts: PromptSet, model_fp: str, settings: dict
) -> str:
    rendered = prompts.render(pair.category, pair.instruction, pair.description)
    return item_key(stage="score", image=edited_digest, pair=pair.pair_id,
                    prompt=value_digest(list(rendered)), prompts=prompts.digest, model=model_fp,
                    **settings)  # fmt: skip


def edited_intact(rec: dict) -> bool:
    """A stage-1 record still stands: a recorded error, or an edited PNG that is on disk with the
    recorded digest (a deleted or damaged image is edited again, never scored from a bad file)."""
    if rec.get("edited_digest") is None:
        return True
    path = Path(rec["edited"])
    return path.is_file() and bytes_digest(path.read_bytes()) == rec["edited_digest"]


class BatchSizer:
    """Items per model call for one stage: the ``batch_size`` parameter, or sized from the budget.

    ``fixed=None`` (auto): on a GPU the first batch has one item and the allocator's peak during
    it sizes the rest (:func:`gpuflows.batching.batch_from_peak`); on the CPU, where there is no
    VRAM budget, :data:`~gpuflows.batching.DEFAULT_CPU_BATCH`. An OOM halves the batch (the
    failed items are redone at the smaller size, nothing is recorded twice) and the smaller size
    is kept for the rest of the stage.
    """

    def __init__(self, fixed: int | None, device: str, capacity_bytes: int) -> None:
        self.device, self.capacity = device, capacity_bytes
        cuda = device.startswith("cuda")
        self._measure = fixed is None and cuda
        if fixed is not None:
            self.size, self.basis = fixed, f"batch_size={fixed} (parameter)"
        elif cuda:
            self.size, self.basis = 1, "first batch of one item, to measure"
        else:
            self.size, self.basis = DEFAULT_CPU_BATCH, f"CPU: no VRAM budget, {DEFAULT_CPU_BATCH}"
        self.oom_halvings = 0
        self._before = 0

    def run(self, chunk: list, fn: Any) -> list:
        """``fn(sub_batch) -> list`` (one output per item) over ``chunk`` in sub-batches, halving
        on OOM and going on from the first item not yet done; the outputs in order. Measures the
        first batch when sizing from the budget."""
        if self._measure:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._before = torch.cuda.memory_allocated(self.device)

        done: list = []  # outputs of the sub-batches that finished, kept across OOM retries

        def attempt(bs: int, _dev: str) -> list:
            while len(done) < len(chunk):
                done.extend(fn(chunk[len(done) : len(done) + bs]))
            return done

        out, rec = run_with_oom_fallback(
            attempt, batch_size=len(chunk), device=self.device, allow_cpu=False
        )
        self._adopt(len(chunk), rec)
        return out

    def _adopt(self, items: int, rec: FallbackRecord) -> None:
        ok = rec.attempts[-1].batch_size
        if ok < items:  # an OOM: keep the size that worked
            self.oom_halvings += len(rec.attempts) - 1
            self.size, self._measure = ok, False
            self.basis += f"; OOM at {items} -> {ok}"
        elif self._measure:
            import torch

            plan = batch_from_peak(
                capacity=self.capacity,
                allocated_before=self._before,
                peak=torch.cuda.max_memory_allocated(self.device),
                items=items,
            )
            self.size, self.basis, self._measure = plan.size, plan.basis, False

    def record(self) -> dict[str, Any]:
        """What the report shows: the size used last, why, and OOM halvings."""
        return {"size": self.size, "basis": self.basis, "oom_halvings": self.oom_halvings}


@task(cache_policy=NO_CACHE, task_run_name="edit-stage", **retry_options(retries=2))
def edit_stage(
    pairs: list[EditPair],
    indices: dict[str, int],
    mgr: ResidencyManager,
    ledger: Ledger,
    out_dir: Path,
    model_fp: str,
    settings: dict[str, Any],
    batch_size: int | None,
    progress: Any = None,
) -> tuple[dict[str, dict], dict[str, Any]]:
    """Edit every pair not yet in the ledger.

    Returns:
        ({pair_id: edit record} for all pairs, the batch sizing: :meth:`BatchSizer.record`).
    """
    log = get_run_logger()
    done = ledger.latest()
    keys = {p.pair_id: edit_key(p, model_fp, settings) for p in pairs}
    lost = [p for p in pairs if keys[p.pair_id] in done and not edited_intact(done[keys[p.pair_id]])]  # fmt: skip
    redo = {p.pair_id for p in lost}
    todo = [p for p in pairs if keys[p.pair_id] not in done or p.pair_id in redo]
    log.info("stage 1: %d of %d pairs to edit (%d from the checkpoint)", len(todo), len(pairs),
             len(pairs) - len(todo))  # fmt: skip
    if lost:
        log.warning("stage 1: %d edited image(s) missing or changed on disk, edited again: %s",
                    len(lost), ", ".join(p.pair_id for p in lost[:10]))  # fmt: skip
    if progress is not None:
        progress.advance(len(pairs) - len(todo))
    sizer = BatchSizer(batch_size, mgr.device, mgr.capacity_bytes)
    if todo:
        with mgr.using("edit") as model:

            def run_edit(sub: list[tuple[EditPair, Any]]) -> list:
                return model.edit(
                    [im for _, im in sub],
                    [p.instruction for p, _ in sub],
                    seed=settings["seed"],
                    steps=settings["steps"],
                    guidance=settings["guidance"],
                    image_guidance=settings["image_guidance"],
                    indices=[indices[p.pair_id] for p, _ in sub],
                )

            i = 0
            while i < len(todo):
                batch, i = todo[i : i + sizer.size], i + sizer.size
                t0 = time.perf_counter()
                ok = []
                # decoded at load already: a file changed since is this pair's error, not a crash
                for p in batch:
                    try:
                        ok.append((p, decode_image(p)))
                    except PairError as exc:
                        ledger.append({"key": keys[p.pair_id], "pair_id": p.pair_id,
                                       "category": p.category, "edited": None,
                                       "edited_digest": None, "error": str(exc)})  # fmt: skip
                        EXECUTED.append(("edit", p.pair_id))
                edited = sizer.run(ok, run_edit) if ok else []
                per = (time.perf_counter() - t0) / len(batch)
                for (p, _), im in zip(ok, edited, strict=True):
                    buf = io.BytesIO()
                    im.save(buf, format="PNG")
                    data = buf.getvalue()
                    digest = bytes_digest(data)
                    path = out_dir / f"{p.pair_id}-{digest.split(':')[-1][:16]}.png"
                    atomic_write_bytes(path, data)  # the file first, then its record
                    rec = {"key": keys[p.pair_id], "pair_id": p.pair_id, "category": p.category,
                           "edited": str(path), "edited_digest": digest, "seconds": per,
                           "error": None}  # fmt: skip
                    ledger.append(rec)
                    EXECUTED.append(("edit", p.pair_id))
                if progress is not None:
                    progress.advance(len(batch))
        log.info("stage 1 batches: %s", sizer.basis)
    latest = ledger.latest()
    return {p.pair_id: latest[keys[p.pair_id]] for p in pairs}, sizer.record()


@task(cache_policy=NO_CACHE, task_run_name="score-stage", **retry_options(retries=2))
def score_stage(
    pairs: list[EditPair],
    edits: dict[str, dict],
    mgr: ResidencyManager,
    ledger: Ledger,
    prompts: PromptSet,
    model_fp: str,
    settings: dict[str, Any],
    batch_size: int | None,
    progress: Any = None,
) -> tuple[dict[str, dict], dict[str, Any]]:
    """Score every edited pair not yet in the ledger.

    A pair whose edit failed is not scored: its record carries the stage-1 error, no score.

    Returns:
        ({pair_id: score record} for all pairs, the batch sizing: :meth:`BatchSizer.record`).
    """
    from PIL import Image

    log = get_run_logger()
    done = ledger.latest()
    unedited = {
        p.pair_id: {"pair_id": p.pair_id, "category": p.category, "answer": None, "score": None,
                    "error": f"stage 1 (edit) failed: {edits[p.pair_id].get('error')}"}
        for p in pairs if edits[p.pair_id].get("edited_digest") is None
    }  # fmt: skip
    pairs = [p for p in pairs if p.pair_id not in unedited]
    keys = {
        p.pair_id: score_key(edits[p.pair_id]["edited_digest"], p, prompts, model_fp, settings)
        for p in pairs
    }
    todo = [p for p in pairs if keys[p.pair_id] not in done]
    log.info("stage 2: %d of %d pairs to score (%d from the checkpoint)", len(todo), len(pairs),
             len(pairs) - len(todo))  # fmt: skip
    if progress is not None:
        progress.advance(len(pairs) - len(todo) + len(unedited))
    lo, hi = settings["score_range"]
    sizer = BatchSizer(batch_size, mgr.device, mgr.capacity_bytes)
    if todo:
        with mgr.using("score") as model:

            def run_score(sub: list[tuple[EditPair, Any]]) -> list[str]:
                rendered = [
                    prompts.render(p.category, p.instruction, p.description) for p, _ in sub
                ]
                return model.answer(
                    [im for _, im in sub],
                    [s for s, _ in rendered],
                    [u for _, u in rendered],
                    max_new_tokens=settings["max_new_tokens"],
                    constrain_to_score=settings["constrain_to_score"],
                    score_range=(lo, hi),
                )

            i = 0
            while i < len(todo):
                batch, i = todo[i : i + sizer.size], i + sizer.size
                items = []
                for p in batch:
                    with Image.open(edits[p.pair_id]["edited"]) as im:
                        items.append((p, im.convert("RGB")))
                answers = sizer.run(items, run_score)
                for p, ans in zip(batch, answers, strict=True):
                    try:
                        score, error = parse_score(ans, lo=lo, hi=hi), None
                    except ScoreParseError as exc:
                        score, error = None, str(exc)
                    ledger.append({"key": keys[p.pair_id], "pair_id": p.pair_id,
                                   "category": p.category, "answer": ans, "score": score,
                                   "error": error})  # fmt: skip
                    EXECUTED.append(("score", p.pair_id))
                if progress is not None:
                    progress.advance(len(batch))
        log.info("stage 2 batches: %s", sizer.basis)
    latest = ledger.latest()
    return {**unedited, **{p.pair_id: latest[keys[p.pair_id]] for p in pairs}}, sizer.record()
