"""The two stages' keys, model calls and records, run by the core's checkpointed stage loop.

Stage 1 edits each pair's image, stage 2 scores each edited image
(:class:`gpuflows.core.store.stage_runner.StageRunner` skips what the ledger holds, batches, halves
on OOM and records). Every record is keyed by a digest of everything its result depends on:

* edit key = digest of what the edit reads (pair id, instruction, image bytes) + edit model
  fingerprint + seed, steps, guidance;
* score key = the *digest of the edited PNG* + the pair + the digest of the rendered prompts
  (category, instruction, description in the versioned prompt set) + reward model fingerprint
  and settings, so a re-edited image is re-scored, an unchanged one never is, and a pair whose
  description (read only by the reward prompt) changed is re-scored without being re-edited.

Deterministic failures (an image that does not decode, an answer without a score) are that
pair's error record and never become a number. No Prefect.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpuflows.core.evidence.digest import bytes_digest, value_digest
from gpuflows.core.memory.batch_sizer import BatchSizer
from gpuflows.core.store.io import atomic_write_bytes
from gpuflows.core.store.ledger import Ledger, item_key
from gpuflows.core.store.stage_runner import StageRunner
from gpuflows.pipelines.two_stage_eval.bench import (
    EditPair,
    PairError,
    decode_image,
    edit_input_digest,
)
from gpuflows.pipelines.two_stage_eval.prompt_set import PromptSet
from gpuflows.pipelines.two_stage_eval.score_parse import ScoreParseError, parse_score

Progress = Callable[[int], object] | None


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


def edited_intact(rec: dict) -> bool:
    """A stage-1 record still stands: a recorded error, or an edited PNG that is on disk with the
    recorded digest (a deleted or damaged image is edited again, never scored from a bad file)."""
    if rec.get("edited_digest") is None:
        return True
    path = Path(rec["edited"])
    return path.is_file() and bytes_digest(path.read_bytes()) == rec["edited_digest"]


def edit_runner(
    pairs: list[EditPair],
    ledger: Ledger,
    out_dir: Path,
    model_fp: str,
    settings: dict[str, Any],
    sizer: BatchSizer,
    on_progress: Progress = None,
) -> StageRunner[EditPair]:
    """Stage 1 over ``pairs``: each edited image is a PNG under ``out_dir`` (written before its
    record, named with its digest); a pair whose image no longer decodes is its error record."""

    def finish(p: EditPair, im: Any, seconds: float) -> dict[str, Any]:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        data = buf.getvalue()
        digest = bytes_digest(data)
        path = out_dir / f"{p.pair_id}-{digest.split(':')[-1][:16]}.png"
        atomic_write_bytes(path, data)  # the file first, then its record
        return {
            "pair_id": p.pair_id,
            "category": p.category,
            "edited": str(path),
            "edited_digest": digest,
            "seconds": seconds,
            "error": None,
        }

    def failed(p: EditPair) -> dict[str, Any]:
        return {"pair_id": p.pair_id, "category": p.category, "edited": None, "edited_digest": None}

    return StageRunner(
        pairs,
        key=lambda p: edit_key(p, model_fp, settings),
        ledger=ledger,
        sizer=sizer,
        finish=finish,
        failed=failed,
        # decoded at load already: a file changed since is this pair's error, not a crash
        load=decode_image,
        item_errors=(PairError,),
        stands=edited_intact,
        on_progress=on_progress,
    )


def edit_call(model: Any, settings: dict[str, Any], indices: dict[str, int]) -> Callable:
    """One edit-model call over ``[(pair, image), ...]``: the edited images, in order."""

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

    return run_edit


def unedited(pairs: list[EditPair], edits: dict[str, dict]) -> dict[str, dict]:
    """Score records of the pairs whose edit failed: the stage-1 error, no score."""
    return {
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


def score_runner(
    pairs: list[EditPair],
    edits: dict[str, dict],
    ledger: Ledger,
    prompts: PromptSet,
    model_fp: str,
    settings: dict[str, Any],
    sizer: BatchSizer,
    on_progress: Progress = None,
) -> StageRunner[EditPair]:
    """Stage 2 over the edited ``pairs``: each answer parsed to a score in
    ``settings["score_range"]``, or that pair's error (never a number)."""
    lo, hi = settings["score_range"]

    def load(p: EditPair) -> Any:
        from PIL import Image

        with Image.open(edits[p.pair_id]["edited"]) as im:
            return im.convert("RGB")

    def finish(p: EditPair, ans: str, seconds: float) -> dict[str, Any]:
        try:
            score, error = parse_score(ans, lo=lo, hi=hi), None
        except ScoreParseError as exc:
            score, error = None, str(exc)
        return {
            "pair_id": p.pair_id,
            "category": p.category,
            "answer": ans,
            "score": score,
            "error": error,
            "retry": False,
        }

    def failed(p: EditPair) -> dict[str, Any]:
        return {"pair_id": p.pair_id, "category": p.category, "answer": None, "score": None}

    return StageRunner(
        pairs,
        key=lambda p: score_key(edits[p.pair_id]["edited_digest"], p, prompts, model_fp, settings),
        ledger=ledger,
        sizer=sizer,
        finish=finish,
        failed=failed,
        load=load,
        on_progress=on_progress,
    )


def score_call(model: Any, prompts: PromptSet, settings: dict[str, Any]) -> Callable:
    """One reward-model call over ``[(pair, edited image), ...]``: the answers, in order."""

    def run_score(sub: list[tuple[EditPair, Any]]) -> list[str]:
        rendered = [prompts.render(p.category, p.instruction, p.description) for p, _ in sub]
        return model.answer(
            [im for _, im in sub],
            [s for s, _ in rendered],
            [u for _, u in rendered],
            max_new_tokens=settings["max_new_tokens"],
            constrain_to_score=settings["constrain_to_score"],
            score_range=settings["score_range"],
        )

    return run_score
