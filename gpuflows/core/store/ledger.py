"""Append-only, crash-safe record of finished work items (the per-pair checkpoint).

A :class:`Ledger` is one JSON Lines file. Each finished item appends one line and fsyncs it
before the next item starts, so a SIGKILL loses at most the item in progress: a torn last line
(no trailing newline, or not JSON) is ignored on read and overwritten by the next append. Items
are identified by a ``key`` (a digest of everything the result depends on), so a re-run skips
every key already recorded and redoes any item whose inputs changed; reading keeps the last
record per key, so nothing is ever counted twice.

Outputs bigger than a line (images) are written atomically *before* their record
(:func:`gpuflows.core.store.io.atomic_write_bytes`): a record never points at a missing or partial file.

Example:
    >>> import tempfile, pathlib
    >>> led = Ledger(pathlib.Path(tempfile.mkdtemp()) / "edit.jsonl")
    >>> k = item_key(pair="p1", model="m")
    >>> led.append({"key": k, "pair_id": "p1", "ok": True})
    >>> k in led.done(), len(led.latest())
    (True, 1)
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Any

from gpuflows.core.evidence.digest import value_digest


def item_key(**parts: Any) -> str:
    """Digest of the named parts an item's result depends on (JSON-able values)."""
    return value_digest(parts)


class Ledger:
    """One JSONL file of ``{"key": ..., ...}`` records; thread- and process-safe appends."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        data = self.path.read_bytes()
        for raw in data.split(b"\n")[:-1]:  # the part after the last newline is torn or empty
            try:
                rec = json.loads(raw)
            except ValueError:
                continue  # a line torn by a crash, then appended after: skip it
            if isinstance(rec, dict) and "key" in rec:
                out.append(rec)
        return out

    def latest(self) -> dict[str, dict[str, Any]]:
        """The last record per key, in first-seen key order."""
        out: dict[str, dict[str, Any]] = {}
        for rec in self._lines():
            out[rec["key"]] = rec
        return out

    def done(self) -> set[str]:
        """Keys with a record."""
        return set(self.latest())

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably (write, flush, fsync) before returning.

        Raises:
            ValueError: the record has no ``key`` or is not JSON-serialisable.
        """
        if "key" not in record:
            raise ValueError("a ledger record needs a 'key' field (use item_key(...))")
        line = json.dumps(record, sort_keys=True, default=str).encode() + b"\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path, "ab") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.seek(0, os.SEEK_END)
                if fh.tell() and not _ends_with_newline(self.path):
                    fh.write(b"\n")  # seal a torn line left by a crash
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
