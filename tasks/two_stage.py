"""Tasks of two-stage-eval: stage 1 edits, stage 2 scores, each pair checkpointed in a ledger.

Each stage is one retried task over all its pairs, in batches. Every finished pair is recorded
durably in the checkpoint folder's ledger (:mod:`gpuflows.core.store.ledger`) before the next batch, keyed
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
number. An OOM halves the batch (:mod:`gpuflows.core.memory.batch_sizer`); a pair that runs out of memory
alone is recorded as that pair's error with ``retry: true`` (the run goes on; a later run tries
it again). Transient faults raise and are retried by Prefect.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from gpuflows.core.evidence.digest import bytes_digest, value_digest
from gpuflows.core.memory.batch_sizer import BatchSizer, ItemOOM
from gpuflows.core.memory.residency import ResidencyManager
from gpuflows.core.store.io import atomic_write_bytes
from gpuflows.core.store.ledger import Ledger, item_key
from gpuflows.pipelines.two_stage_eval.bench import (
    EditPair,
    PairError,
    decode_image,
    edit_input_digest,
)
from gpuflows.pipelines.two_stage_eval.prompt_set import PromptSet
from gpuflows.pipelines.two_stage_eval.score_parse import ScoreParseError, parse_score
from tasks.retries import retry_options

EXECUTED: list[tuple[str, str]] = []
"""(stage, pair_id) of every item computed in this process (tests count re-runs with it)."""


def edit_key(pair: EditPair, model_fp: str, settings: dict[str, Any]) -> str:
    return item_key(stage="edit", pair=edit_input_digest(pair), model=model_fp, **settings)


def score_key(
    edited_digest: str, pair: EditPair, prompts: PromptSet, model_fp: str, settings: dict
) -> str:
    rendered = prompts.render(pair.category, pair.instruction, pair.description)
    return item_key(
        stage="score",
        image=edited_digest,
        pair=pair.pair_id,
        prompt=value_digest(list(rendered)),
        prompts=prompts.digest,
        model=model_fp,
        **settings,
    )


def _to_do(done: dict[str, dict], key: str) -> bool:
    """Not recorded yet, or recorded as an error a later run retries (an out-of-memory item)."""
    return key not in done or bool(done[key].get("retry"))


def edited_intact(rec: dict) -> bool:
    """A stage-1 record still stands: a recorded error, or an edited PNG that is on disk with the
    recorded digest (a deleted or damaged image is edited again, never scored from a bad file)."""
    if rec.get("edited_digest") is None:
        return True
    path = Path(rec["edited"])
    return path.is_file() and bytes_digest(path.read_bytes()) == rec["edited_digest"]


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
    lost = [
        p for p in pairs if keys[p.pair_id] in done and not edited_intact(done[keys[p.pair_id]])
    ]
    redo = {p.pair_id for p in lost}
    todo = [p for p in pairs if _to_do(done, keys[p.pair_id]) or p.pair_id in redo]
    log.info(
        "stage 1: %d of %d pairs to edit (%d from the checkpoint)",
        len(todo),
        len(pairs),
        len(pairs) - len(todo),
    )
    if lost:
        log.warning(
            "stage 1: %d edited image(s) missing or changed on disk, edited again: %s",
            len(lost),
            ", ".join(p.pair_id for p in lost[:10]),
        )
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
                        ledger.append(
                            {
                                "key": keys[p.pair_id],
                                "pair_id": p.pair_id,
                                "category": p.category,
                                "edited": None,
                                "edited_digest": None,
                                "error": str(exc),
                            }
                        )
                        EXECUTED.append(("edit", p.pair_id))
                edited = sizer.run(ok, run_edit) if ok else []
                per = (time.perf_counter() - t0) / len(batch)
                for (p, _), im in zip(ok, edited, strict=True):
                    if isinstance(im, ItemOOM):
                        ledger.append(
                            {
                                "key": keys[p.pair_id],
                                "pair_id": p.pair_id,
                                "category": p.category,
                                "edited": None,
                                "edited_digest": None,
                                "retry": True,
                                "error": im.message(mgr.capacity_bytes),
                            }
                        )
                        EXECUTED.append(("edit", p.pair_id))
                        continue
                    buf = io.BytesIO()
                    im.save(buf, format="PNG")
                    data = buf.getvalue()
                    digest = bytes_digest(data)
                    path = out_dir / f"{p.pair_id}-{digest.split(':')[-1][:16]}.png"
                    atomic_write_bytes(path, data)  # the file first, then its record
                    rec = {
                        "key": keys[p.pair_id],
                        "pair_id": p.pair_id,
                        "category": p.category,
                        "edited": str(path),
                        "edited_digest": digest,
                        "seconds": per,
                        "error": None,
                    }
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
        p.pair_id: {
            "pair_id": p.pair_id,
            "category": p.category,
            "answer": None,
            "score": None,
            "error": f"stage 1 (edit) failed: {edits[p.pair_id].get('error')}",
        }
        for p in pairs
        if edits[p.pair_id].get("edited_digest") is None
    }
    pairs = [p for p in pairs if p.pair_id not in unedited]
    keys = {
        p.pair_id: score_key(edits[p.pair_id]["edited_digest"], p, prompts, model_fp, settings)
        for p in pairs
    }
    todo = [p for p in pairs if _to_do(done, keys[p.pair_id])]
    log.info(
        "stage 2: %d of %d pairs to score (%d from the checkpoint)",
        len(todo),
        len(pairs),
        len(pairs) - len(todo),
    )
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
                    retry = isinstance(ans, ItemOOM)
                    if retry:
                        ans, score, error = None, None, ans.message(mgr.capacity_bytes)
                    else:
                        try:
                            score, error = parse_score(ans, lo=lo, hi=hi), None
                        except ScoreParseError as exc:
                            score, error = None, str(exc)
                    ledger.append(
                        {
                            "key": keys[p.pair_id],
                            "pair_id": p.pair_id,
                            "category": p.category,
                            "answer": ans,
                            "score": score,
                            "error": error,
                            "retry": retry,
                        }
                    )
                    EXECUTED.append(("score", p.pair_id))
                if progress is not None:
                    progress.advance(len(batch))
        log.info("stage 2 batches: %s", sizer.basis)
    latest = ledger.latest()
    return {**unedited, **{p.pair_id: latest[keys[p.pair_id]] for p in pairs}}, sizer.record()
