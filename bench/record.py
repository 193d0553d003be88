"""What every bench result file holds besides its figures: where and when it was measured.

Each bench writes ``bench/results/<bench>-<device>.json`` with ``name``, ``device``, the git
commit (``-dirty`` when the tree had uncommitted changes: such a figure cannot be reproduced from
a commit), the UTC date, its figures with units and the ratio to its anchor.

Example:
    >>> result = {"name": "x", "device": "cpu", **provenance(), "figures": {"t": fig(1.5, "s")}}
    >>> write_result(RESULTS / "x-cpu.json", result)
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results"


def provenance() -> dict[str, Any]:
    """``git_commit`` (short; ``-dirty`` if uncommitted changes, ``-tree-unknown`` where the tree
    state cannot be read, e.g. a copy without ``.git`` stamped from ``$GPUFLOWS_GIT_COMMIT``),
    ``git`` (full details) and ``date`` (UTC, ISO 8601 to the second)."""
    from gpuflows.core.evidence.envlock import git_info

    info = git_info(REPO_ROOT, exclude=("bench/results",))  # earlier results of this run
    return {
        "git_commit": stamp(info.commit, info.dirty),
        "git": info.model_dump(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def stamp(commit: str | None, dirty: bool | None) -> str:
    """Short commit with its tree state: clean only when the tree was read and found clean.

    Example:
        >>> stamp("0123456789", False), stamp("0123456789", True), stamp("0123456789", None)
        ('0123456', '0123456-dirty', '0123456-tree-unknown')
        >>> stamp(None, None)
        'unknown'
    """
    if not commit:
        return "unknown"
    return commit[:7] + {False: "", True: "-dirty", None: "-tree-unknown"}[dirty]


def fig(value: Any, unit: str) -> dict[str, Any]:
    """One figure with its unit."""
    return {"value": value, "unit": unit}


def write_result(path: str | Path, result: dict[str, Any]) -> Path:
    """Write a result as indented JSON (parents created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return out
