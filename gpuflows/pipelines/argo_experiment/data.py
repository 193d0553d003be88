"""Question sets: ORAN-Bench-13K as published, our own JSONL schema, and the checks on both.

ORAN-Bench-13K (``fin_E.json`` / ``fin_M.json`` / ``fin_H.json``: easy / medium / hard): one JSON
array per line, ``[question, ["1. ...", "2. ...", "3. ...", "4. ..."], "k"]`` with ``k`` the
1-based correct option. The published files hold rows we cannot score and repeated questions;
:func:`load_oran_file` excludes them deterministically (file order, first occurrence kept) and
counts each reason:

* ``options_not_4`` -- not exactly four options (Medium: 34 rows, Hard: 15);
* ``answer_out_of_range`` -- the answer is not one of "1".."4" (Hard: "5", "6");
* ``duplicate_question`` -- the same question text (whitespace and case folded) seen before in
  the file (Medium: 258, Hard: 56).

Anything else is not a known defect of the published files and stops the load with a located
error (file, line, what was expected): a line that is not JSON, not a 3-element array, a question
that is not text.

Our schema (``*.jsonl``), one object per line::

    {"id": "q-001", "question": "...", "options": ["a", "b", "c", "d"], "answer": 2,
     "difficulty": "easy"}

``answer`` is the 1-based index of the correct option (int, or a digit string); ``options`` are
2 to 8 strings; ``difficulty`` one of easy / medium / hard; ``id`` unique. Rows break the
schema -> a located error naming the field; duplicate question texts are excluded and counted
as in ORAN files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gpuflows.core.evidence.digest import value_digest
from gpuflows.core.faults import InputError

Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")
ORAN_FILES = {"fin_E.json": "easy", "fin_M.json": "medium", "fin_H.json": "hard"}
_OPTION_NUMBER = re.compile(r"^\s*\(?\d+[.)]\s*")


class Question(BaseModel):
    """One multiple-choice question (our JSONL schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Unique within the set.")
    question: str = Field(min_length=1)
    options: tuple[str, ...] = Field(min_length=2, max_length=8)
    answer: int = Field(ge=1, description="1-based index of the correct option.")
    difficulty: Difficulty

    @field_validator("answer", mode="before")
    @classmethod
    def _digit(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().isdigit():
            return int(v.strip())
        return v

    @field_validator("options")
    @classmethod
    def _nonempty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not str(o).strip() for o in v):
            raise ValueError("an option is empty")
        return v

    def model_post_init(self, _: Any) -> None:
        if self.answer > len(self.options):
            raise ValueError(f"answer {self.answer} but only {len(self.options)} options")


@dataclass
class QuestionSet:
    """Questions kept, what was excluded and why, and where they came from."""

    questions: list[Question]
    source: str
    synthetic: bool
    excluded: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    per_file: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return value_digest([q.model_dump(mode="json") for q in self.questions])

    def by_difficulty(self) -> dict[str, list[Question]]:
        out: dict[str, list[Question]] = {d: [] for d in DIFFICULTIES}
        for q in self.questions:
            out[q.difficulty].append(q)
        return out

    def counts(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "kept": len(self.questions),
            "excluded": dict(self.excluded),
            "per_file": self.per_file,
        }


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _add(counter: dict[str, int], reason: str) -> None:
    counter[reason] = counter.get(reason, 0) + 1


def load_oran_file(path: str | Path, difficulty: str | None = None) -> QuestionSet:
    """One ORAN-Bench-13K file; ``difficulty`` from its name (fin_E/M/H) unless given."""
    path = Path(path)
    diff = difficulty or ORAN_FILES.get(path.name)
    if diff not in DIFFICULTIES:
        raise InputError(
            f"{path}: cannot tell the difficulty from the file name; name it fin_E.json, "
            "fin_M.json or fin_H.json, or pass difficulty='easy'|'medium'|'hard'"
        )
    text = _read_text(path)
    kept: list[Question] = []
    excluded: dict[str, int] = {}
    seen: set[str] = set()
    rows = 0
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        rows += 1
        where = f"{path}:{no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{where}: not JSON ({exc.msg} at column {exc.colno}); each line must be one "
                'array [question, ["1. ...", ...], "k"]'
            ) from None
        if not isinstance(row, list) or len(row) != 3:
            raise InputError(
                f"{where}: expected a 3-element array [question, options, answer], got "
                f"{type(row).__name__}{'' if not isinstance(row, list) else f' of {len(row)}'}"
            )
        question, options, answer = row
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{where}: the question (element 1) must be non-empty text")
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise InputError(f"{where}: the options (element 2) must be a list of strings")
        if len(options) != 4:
            _add(excluded, "options_not_4")
            continue
        if str(answer).strip() not in ("1", "2", "3", "4"):
            _add(excluded, "answer_out_of_range")
            continue
        key = _norm(question)
        if key in seen:
            _add(excluded, "duplicate_question")
            continue
        seen.add(key)
        kept.append(
            Question(
                id=f"{path.stem}-{no:05d}",
                question=question.strip(),
                options=tuple(_OPTION_NUMBER.sub("", o).strip() or o for o in options),
                answer=int(str(answer).strip()),
                difficulty=diff,  # type: ignore[arg-type]
            )
        )
    stats = {"rows": rows, "kept": len(kept), **excluded}
    return QuestionSet(kept, str(path), False, excluded, rows, {path.name: stats})


def load_jsonl(path: str | Path, *, synthetic: bool = False) -> QuestionSet:
    """Our JSONL schema (module docstring); located errors, duplicate questions excluded."""
    path = Path(path)
    kept: list[Question] = []
    excluded: dict[str, int] = {}
    ids: dict[str, int] = {}
    seen: set[str] = set()
    rows = 0
    for no, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        rows += 1
        where = f"{path}:{no}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected an object with id, question, options, answer")
        try:
            q = Question.model_validate(obj)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"]) or "row"
            raise InputError(
                f"{where}: field {loc!r}: {err['msg']} (schema: id, question, options [2-8 "
                "strings], answer [1-based int], difficulty easy|medium|hard)"
            ) from None
        if q.id in ids:
            raise InputError(
                f"{where}: id {q.id!r} already used on line {ids[q.id]}; ids are unique"
            )
        ids[q.id] = no
        key = _norm(q.question)
        if key in seen:
            _add(excluded, "duplicate_question")
            continue
        seen.add(key)
        kept.append(q)
    if not kept:
        raise InputError(f"{path}: no questions in the file; one JSON object per line")
    stats = {"rows": rows, "kept": len(kept), **excluded}
    return QuestionSet(kept, str(path), synthetic, excluded, rows, {path.name: stats})


def load_questions(path: str | Path) -> QuestionSet:
    """A JSONL file of our schema, one ORAN file, or a folder holding fin_E/M/H.json."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"questions={str(path)!r}: no such file or folder")
    if path.is_dir():
        files = [path / n for n in ORAN_FILES if (path / n).is_file()]
        if not files:
            raise InputError(
                f"questions={str(path)!r}: the folder holds none of fin_E.json, fin_M.json, "
                "fin_H.json (ORAN-Bench-13K); give one of them or a .jsonl file"
            )
        sets = [load_oran_file(f) for f in files]
        merged = QuestionSet([], str(path), False)
        for s in sets:
            merged.questions += s.questions
            merged.rows_read += s.rows_read
            merged.per_file |= s.per_file
            for k, v in s.excluded.items():
                merged.excluded[k] = merged.excluded.get(k, 0) + v
        return merged
    if path.suffix == ".jsonl":
        return load_jsonl(path)
    if path.suffix == ".json":
        return load_oran_file(path)
    raise InputError(
        f"questions={str(path)!r}: use a .jsonl file (our schema), an ORAN-Bench-13K fin_*.json "
        "file, or a folder holding them"
    )


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def select(qs: QuestionSet, difficulties: list[str], per_difficulty: int) -> list[Question]:
    """The first ``per_difficulty`` kept questions of each difficulty, in file order."""
    by = qs.by_difficulty()
    out: list[Question] = []
    for d in difficulties:
        if not by[d]:
            raise InputError(
                f"difficulties includes {d!r} but {qs.source} has no {d} questions: drop it "
                f"or give a file that has some"
            )
        out += by[d][:per_difficulty]
    return out
