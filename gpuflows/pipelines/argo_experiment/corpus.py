"""A retrieval corpus from a folder: text, markdown and JSONL documents, cut into chunks.

* ``*.txt``, ``*.md``, ``*.markdown``: paragraphs (blank-line separated) are packed into chunks of
  at most ``chunk_words`` words; a longer paragraph is cut into windows of ``chunk_words`` with
  ``overlap_words`` of overlap. Markdown headings stay with the text that follows them.
* ``*.jsonl``: one object per line with ``text`` (required) and ``id`` (optional); each row is
  chunked like a paragraph.

Files are read in sorted path order, so chunk ids (``<relative path>#<n>``) and the corpus digest
are deterministic. Bad input gets a located error before any embedding: a missing folder, no
supported file, a file that is not UTF-8, a JSONL line that is not an object with ``text``, a
corpus with no text at all.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from gpuflows.core.evidence.digest import value_digest
from gpuflows.core.faults import InputError

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
SUFFIXES = (*TEXT_SUFFIXES, ".jsonl")
_BLANK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class Chunk:
    id: str
    doc: str
    text: str


@dataclass(frozen=True)
class Corpus:
    folder: str
    chunks: tuple[Chunk, ...]
    files: int

    @property
    def digest(self) -> str:
        return value_digest([(c.id, c.text) for c in self.chunks])

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.chunks]


def _windows(words: list[str], size: int, overlap: int) -> list[str]:
    step = max(1, size - overlap)
    out = []
    for start in range(0, len(words), step):
        out.append(" ".join(words[start : start + size]))
        if start + size >= len(words):
            break
    return out


def chunk_paragraphs(paras: list[str], chunk_words: int, overlap_words: int) -> list[str]:
    """Pack paragraphs into chunks of at most ``chunk_words`` words (long ones windowed)."""
    chunks: list[str] = []
    cur: list[str] = []
    n = 0
    for para in paras:
        words = para.split()
        if not words:
            continue
        if len(words) > chunk_words:
            if cur:
                chunks.append("\n\n".join(cur))
                cur, n = [], 0
            chunks += _windows(words, chunk_words, overlap_words)
            continue
        if n + len(words) > chunk_words and cur:
            chunks.append("\n\n".join(cur))
            cur, n = [], 0
        cur.append(" ".join(words))
        n += len(words)
    if cur:
        chunks.append("\n\n".join(cur))
    return chunks


def load_corpus(folder: str | Path, *, chunk_words: int = 120, overlap_words: int = 20) -> Corpus:
    """Every supported file under ``folder`` (recursively), chunked; see the module docstring."""
    if chunk_words < 8 or not 0 <= overlap_words < chunk_words:
        raise InputError(
            f"chunk_words={chunk_words}, overlap_words={overlap_words}: need chunk_words >= 8 "
            "and 0 <= overlap_words < chunk_words"
        )
    root = Path(folder).expanduser()
    if not root.exists():
        raise InputError(f"corpus={str(root)!r}: no such folder")
    if not root.is_dir():
        raise InputError(
            f"corpus={str(root)!r} is a file: give the folder that holds the documents"
        )
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise InputError(
            f"corpus={str(root)!r}: no {', '.join(SUFFIXES)} files in the folder; put the "
            "documents there"
        )
    chunks: list[Chunk] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"corpus file {path}: not UTF-8 text (byte {exc.start}); convert it to UTF-8 "
                "or remove it"
            ) from None
        if path.suffix.lower() == ".jsonl":
            pieces = _jsonl_pieces(path, text, chunk_words, overlap_words)
        else:
            pieces = chunk_paragraphs(_BLANK.split(text), chunk_words, overlap_words)
        chunks += [Chunk(f"{rel}#{i}", rel, t) for i, t in enumerate(pieces)]
    if not chunks:
        raise InputError(f"corpus={str(root)!r}: the files hold no text to retrieve")
    return Corpus(str(root), tuple(chunks), len(files))


def _jsonl_pieces(path: Path, text: str, chunk_words: int, overlap_words: int) -> list[str]:
    pieces: list[str] = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"corpus file {path}:{no}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise InputError(
                f"corpus file {path}:{no}: each line must be an object with a 'text' string "
                '(and optionally an \'id\'), e.g. {"id": "spec-1", "text": "..."}'
            )
        pieces += chunk_paragraphs([obj["text"]], chunk_words, overlap_words)
    return pieces
