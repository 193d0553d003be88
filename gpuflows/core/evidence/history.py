"""Previous results of the same work, for reproduction checks (the T3 "independent re-run").

A record is keyed by what must be equal for two runs to be comparable: the flow, a digest of
its configuration (parameters that change the answer, data digest) and the hardware identity.
One JSON file per key holds the runs in order; each append is atomic.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from gpuflows.core.evidence.digest import value_digest
from gpuflows.core.naming import slug
from gpuflows.core.store.io import atomic_write_json, read_json, results_root


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


class RunHistory:
    """Append-only history under ``results/history/<flow>/<hardware>--<config digest>.json``."""

    def __init__(self, flow: str, root: Path | None = None) -> None:
        self.dir = (root or results_root() / "history") / slug(flow)

    def path(self, config: dict[str, Any], hardware: str) -> Path:
        return self.dir / f"{slug(hardware)}--{value_digest(config).split(':')[1][:16]}.json"

    def records(self, config: dict[str, Any], hardware: str) -> list[RunRecord]:
        p = self.path(config, hardware)
        return [RunRecord.model_validate(r) for r in read_json(p)] if p.exists() else []

    def last(
        self, config: dict[str, Any], hardware: str, *, exclude_run: str | None = None
    ) -> RunRecord | None:
        """Most recent earlier record (not ``exclude_run``), or None."""
        recs = [r for r in self.records(config, hardware) if r.run != exclude_run]
        return recs[-1] if recs else None

    def append(self, config: dict[str, Any], hardware: str, record: RunRecord) -> Path:
        recs = self.records(config, hardware) + [record]
        return atomic_write_json(
            self.path(config, hardware), [r.model_dump(mode="json") for r in recs]
        )
