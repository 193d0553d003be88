"""Exactly once: every input id ends in exactly one of ``qa.jsonl`` or ``errors.jsonl``.

:class:`OutcomeStore` owns a step-3 output folder:

* Opening it takes an exclusive ``flock`` on ``.outcomes.lock`` (a second run writing the same
  folder is refused, it would duplicate), then reads both files. A last line without its
  newline is a write cut by a kill: it is ignored and the file truncated to the last full line
  (repaired), so that record is simply sent again. Any other line that is not JSON, or an id that
  appears twice, is reported (:class:`InputError` naming file and line) and nothing is written.
* ``record(kind, rec)`` appends one full line with one ``os.write`` on an ``O_APPEND`` descriptor
  and refuses an id that already has an outcome. A record is done when its line is complete; a
  SIGKILL at any point leaves at most one torn line, which the next open repairs.
* ``sync()`` fsyncs both files (after each batch).

Output order: outcomes are appended as records finish (completion order), not input order;
every line carries its input ``id``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any, Literal

import orjson

from gpuflows.core.faults import InputError

QA_FILE, ERRORS_FILE, LOCK_FILE = "qa.jsonl", "errors.jsonl", ".outcomes.lock"
Kind = Literal["qa", "error"]


def _scan(path: Path, seen: dict[str, str]) -> tuple[int, int]:
    """Read ``path``'s ids into ``seen``; truncate a torn last line. Returns (lines, repaired)."""
    if not path.exists():
        return 0, 0
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    repaired = 0
    if cut < len(data):  # a torn last line: ignore it and cut it off
        with open(path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        repaired = 1
    lines = 0
    for no, line in enumerate(data[:cut].splitlines(), 1):
        if not line.strip():
            continue
        try:
            rid = orjson.loads(line)["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise InputError(
                f"{path} line {no}: not an outcome record (JSON with an 'id'); the file was "
                "edited by hand? Move it away to start over"
            ) from None
        rid = str(rid)
        if rid in seen:
            raise InputError(f"{path} line {no}: id {rid!r} already has an outcome in {seen[rid]}")
        seen[rid] = path.name
        lines += 1
    return lines, repaired


class OutcomeStore:
    """The qa / errors files of one output folder, opened for exactly-once appends."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir)
        self.paths = {"qa": self.dir / QA_FILE, "error": self.dir / ERRORS_FILE}
        self.done: dict[str, str] = {}
        self.counts = {"qa": 0, "error": 0}
        self.resumed = {"qa": 0, "error": 0}
        self.repaired = 0
        self._fds: dict[str, int] = {}
        self._lock_fd: int | None = None

    def __enter__(self) -> OutcomeStore:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> OutcomeStore:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"out_dir={str(self.dir)!r} is being written by another run: wait for it, or "
                "choose another --out-dir"
            ) from None
        self._lock_fd = fd
        try:
            for kind, path in self.paths.items():
                n, rep = _scan(path, self.done)
                self.resumed[kind] = n
                self.repaired += rep
        except BaseException:
            self.close()
            raise
        for kind, path in self.paths.items():
            self._fds[kind] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return self

    def has(self, rid: Any) -> bool:
        return str(rid) in self.done

    def record(self, kind: Kind, rec: dict[str, Any]) -> None:
        """Append ``rec`` (with its ``id``) to the qa or errors file; never twice per id."""
        rid = str(rec["id"])
        if rid in self.done:
            raise RuntimeError(f"id {rid!r} already has an outcome in {self.done[rid]}")
        line = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
        fd = self._fds[kind]
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        self.done[rid] = self.paths[kind].name
        self.counts[kind] += 1

    def sync(self) -> None:
        for fd in self._fds.values():
            os.fsync(fd)

    def close(self) -> None:
        for fd in self._fds.values():
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._fds = {}
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def summary(self) -> dict[str, Any]:
        return {
            "qa": self.resumed["qa"] + self.counts["qa"],
            "errors": self.resumed["error"] + self.counts["error"],
            "written_now": dict(self.counts),
            "resumed": dict(self.resumed),
            "torn_lines_repaired": self.repaired,
        }


def check_exactly_once(out_dir: str | Path, ids: set[str]) -> dict[str, Any]:
    """Compare the outcome files with the input ids: missing, extra, duplicated (for tests and
    the report's integrity check). Reads the files without repairing them."""
    counts: dict[str, int] = {}
    for name in (QA_FILE, ERRORS_FILE):
        p = Path(out_dir) / name
        if not p.exists():
            continue
        for line in p.read_bytes().splitlines(keepends=True):
            if line.endswith(b"\n") and line.strip():
                rid = str(orjson.loads(line)["id"])
                counts[rid] = counts.get(rid, 0) + 1
    return {
        "missing": sorted(ids - counts.keys()),
        "extra": sorted(counts.keys() - ids),
        "duplicated": sorted(k for k, v in counts.items() if v > 1),
        "outcomes": sum(counts.values()),
    }
