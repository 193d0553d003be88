"""Previous results of the same work, for reproduction checks (the T3 "independent re-run").

A record is keyed by what must be equal for two runs to be comparable: the flow, a digest of
its configuration (parameters that change the answer, data digest) and the hardware identity.
One JSON file per key holds the runs in order; each append is atomic. The records are
hash-chained (each holds the digest of the one before and its own digest), so an edit, a deleted
or a reordered entry is detected: :meth:`RunHistory.records` raises :class:`HistoryTampered` and
:meth:`RunHistory.last` logs it and offers no reference (no reproduction can rest on it).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from gpuflows.core.evidence.digest import value_digest
from gpuflows.core.naming import slug
from gpuflows.core.store.io import atomic_write_json, read_json, results_root

log = logging.getLogger("gpuflows.history")


class HistoryTampered(ValueError):
    """A history file whose hash chain does not verify (edited by hand, truncated, reordered)."""


class RunRecord(BaseModel):
    """What a later run is compared with."""

    run: str = Field(description="Flow run name or id.")
    git_commit: str | None
    values: dict[str, float] = Field(
        default_factory=dict, description="Measured figures (tolerance compare)."
    )
    digest: str | None = Field(
        default=None, description="Digest of deterministic outputs (exact compare)."
    )
    at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())
    git_dirty: bool | None = Field(
        default=None, description="Whether the run's tree had uncommitted changes."
    )
    data_digest: str | None = Field(default=None, description="Digest of the data it read.")
    prev_hash: str = Field(default="", description="hash of the record before (chain).")
    hash: str = Field(default="", description="Digest of this record (all fields but hash).")

    def chained(self, prev_hash: str) -> RunRecord:
        """This record linked after a record whose hash is ``prev_hash``."""
        linked = self.model_copy(update={"prev_hash": prev_hash, "hash": ""})
        return linked.model_copy(update={"hash": linked.own_hash()})

    def reference_fields(self) -> dict[str, Any]:
        """What a :class:`~gpuflows.core.evidence.trust.Reproduction` of this record states about
        it, so ``assess`` can check the re-run was independent (same commit, clean, same data)."""
        return {
            "reference_commit": self.git_commit,
            "reference_dirty": self.git_dirty,
            "reference_data_digest": self.data_digest,
        }

    def own_hash(self) -> str:
        return value_digest(self.model_dump(mode="json", exclude={"hash"}))


def verify_chain(records: list[RunRecord], where: str = "history") -> None:
    """Raise :class:`HistoryTampered` naming the first entry that breaks the chain."""
    prev = ""
    for i, r in enumerate(records):
        if r.prev_hash != prev or r.hash != r.own_hash():
            raise HistoryTampered(
                f"{where}: entry {i} (run {r.run!r}) breaks the hash chain: the history was "
                "edited, truncated or reordered; move the file aside to start a new history"
            )
        prev = r.hash


class RunHistory:
    """Append-only history under ``results/history/<flow>/<hardware>--<config digest>.json``."""

    def __init__(self, flow: str, root: Path | None = None) -> None:
        self.dir = (root or results_root() / "history") / slug(flow)

    def path(self, config: dict[str, Any], hardware: str) -> Path:
        return self.dir / f"{slug(hardware)}--{value_digest(config).split(':')[1][:16]}.json"

    def records(self, config: dict[str, Any], hardware: str) -> list[RunRecord]:
        p = self.path(config, hardware)
        recs = [RunRecord.model_validate(r) for r in read_json(p)] if p.exists() else []
        verify_chain(recs, str(p))
        return recs

    def last(
        self, config: dict[str, Any], hardware: str, *, exclude_run: str | None = None
    ) -> RunRecord | None:
        """Most recent earlier record (not ``exclude_run``), or None (also when the history's
        hash chain does not verify: logged as a warning)."""
        try:
            recs = [r for r in self.records(config, hardware) if r.run != exclude_run]
        except HistoryTampered as exc:
            log.warning("no reproduction reference: %s", exc)
            return None
        return recs[-1] if recs else None

    def append(self, config: dict[str, Any], hardware: str, record: RunRecord) -> Path:
        old = self.records(config, hardware)
        recs = old + [record.chained(old[-1].hash if old else "")]
        return atomic_write_json(
            self.path(config, hardware), [r.model_dump(mode="json") for r in recs]
        )
