"""One persistent call cache for both backends: SQLite in WAL mode, keyed by everything that
changes an answer.

The key is a digest of: the model's identity (weights fingerprint + dtype for a local model;
endpoint + served model name + declared revision for a remote one), the exact rendered prompt
(token ids for the local engine, the messages or prompt text sent for an endpoint), every
generation parameter, and for sampled calls the seed and sample index. A different model never
answers from another model's rows (lm-evaluation-harness leaves the model out of its key, so one
database serves model A's answers as model B's). Errors are never stored.

WAL lets readers run beside the one writer; writes take ``BEGIN IMMEDIATE`` with a busy timeout,
so several flow runs on one host can share one file.

Example:
    >>> cache = CallCache(tmp / "calls.sqlite")
    >>> key = call_key("weights:abc|float32", [1, 2, 3], req.gen_params())
    >>> cache.get(key) is None
    True
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from gpuflows.core.evidence.digest import value_digest
from gpuflows.models.llm.config import LLMResult

SCHEMA_VERSION = 1


def call_key(model_identity: str, rendered: Any, params: dict[str, Any]) -> str:
    """Digest of (model identity, rendered prompt or token ids, generation parameters)."""
    if not model_identity:
        raise ValueError("model_identity is empty: the cache key must name the model")
    return value_digest(
        {"v": SCHEMA_VERSION, "model": model_identity, "prompt": rendered, "params": params}
    )


class CallCache:
    """Results by :func:`call_key`; ``hits`` and ``misses`` count this object's lookups."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
            "result TEXT NOT NULL, created REAL NOT NULL)"
        )
        self.hits = 0
        self.misses = 0
        self.writes = 0

    def get(self, key: str) -> LLMResult | None:
        """The stored result, marked ``cached=True``, or None (a miss)."""
        with self._lock:
            row = self._db.execute("SELECT result FROM calls WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return LLMResult.model_validate_json(row[0]).model_copy(update={"cached": True})

    def put(self, key: str, model_identity: str, result: LLMResult) -> bool:
        """Store a successful result; an error record is refused (returns False)."""
        if result.error is not None:
            return False
        body = result.model_copy(update={"cached": False}).model_dump_json()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO calls (key, model, result, created) VALUES (?,?,?,?)",
                    (key, model_identity, body, time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.writes += 1
        return True

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def stats(self) -> dict[str, Any]:
        """For a run's record: this run's hits, misses and writes, and the file."""
        return {
            "path": str(self.path),
            "hits": self.hits,
            "misses": self.misses,
            "writes": self.writes,
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()


def journal_mode(path: str | Path) -> str:
    """The file's SQLite journal mode (``wal`` once a :class:`CallCache` opened it)."""
    con = sqlite3.connect(path)
    try:
        return str(con.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        con.close()
