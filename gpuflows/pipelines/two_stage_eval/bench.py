"""The two-stage-eval benchmark: (image, edit instruction, description) pairs in five categories.

Categories (:class:`Category`): physical, environment, social, causal, referential; the seed's
names 物理 环境 社会 因果 指代 are accepted everywhere as aliases (case and spaces ignored).

File format (:func:`load_benchmark`) — UTF-8 JSON, one record per pair::

    {"pair_id": "physical-000", "category": "physical",
     "image": "images/physical-000.png",
     "instruction": "make the glass fall off the table",
     "description": "a glass standing on a wooden table"}

* ``pair_id`` (required, unique across the benchmark), ``category`` (see above), ``instruction``
  (required, non-empty), ``description`` (of the original image; optional, default "").
* ``image``: a file path — absolute, or relative to the folder of the data file that names it —
  or the base64 of an encoded image (PNG, JPEG, …), optionally as a ``data:image/...;base64,``
  URL. A string with a character base64 never uses (``.``, ``\\``, ``:``) is a path.

The data is either

1. a folder of ``.jsonl`` / ``.json`` files, e.g. one per category (``physical.jsonl`` or
   ``物理.jsonl``: records there may leave out ``category``; one that names another category is
   rejected). Files named after a category are read in category order, then the rest by name;
   ``manifest.json`` is not data. Or
2. one ``.jsonl`` / ``.json`` file with a ``category`` in every record.

A ``.jsonl`` file holds one record per line; a ``.json`` file a list of records, ``{"pairs":
[...]}``, or ``{"<category>": [records...], ...}``.

Bad pairs never stop a run: each is *rejected* (:class:`Rejection`: pair, field, reason with
the fix) and the rest load; every image is checked once before any model loads. Loading raises
:class:`gpuflows.core.faults.InputError` only when nothing is usable (no such path, a file that
is not JSON, no valid pair) or a ``pair_id`` repeats.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, field_validator

from gpuflows.core.evidence.digest import bytes_digest, value_digest
from gpuflows.core.faults import InputError

MANIFEST = "manifest.json"
"""A data folder's description (the synthetic generator writes one); never read as data."""


class Category(StrEnum):
    """A benchmark category; ``Category("物理") is Category.physical``."""

    physical = "physical"
    environment = "environment"
    social = "social"
    causal = "causal"
    referential = "referential"

    @classmethod
    def _missing_(cls, value: object) -> Category | None:
        key = str(value).strip()
        return ALIASES.get(key) or cls.__members__.get(key.lower())


ALIASES: dict[str, Category] = {
    "物理": Category.physical,
    "环境": Category.environment,
    "社会": Category.social,
    "因果": Category.causal,
    "指代": Category.referential,
}
CATEGORIES: tuple[str, ...] = tuple(c.value for c in Category)
_HINT = f"use one of {', '.join(CATEGORIES)} (or {' '.join(ALIASES)})"
_B64 = frozenset(string.ascii_letters + string.digits + "+/=" + string.whitespace)
_FIX = {
    "pair_id": "give every record a unique, non-empty string pair_id",
    "category": _HINT,
    "instruction": "write the edit instruction as a non-empty string",
    "image": "give an image file path or the base64 of an encoded image",
    "description": "describe the original image as a string (or leave the field out)",
}


def canonical_category(name: object) -> str | None:
    """The English key of a category name (English or Chinese), or None when it is none."""
    try:
        return Category(name).value
    except ValueError:
        return None


class PairError(InputError):
    """One pair's field is bad; the message names the pair, the field and the fix."""

    def __init__(self, pair_id: str | None, field: str, reason: str) -> None:
        super().__init__(f"pair {pair_id!r}: {field}: {reason}")
        self.pair_id, self.field, self.reason = pair_id, field, reason


class EditPair(BaseModel):
    """One benchmark pair; ``image`` is a path or base64 (module docstring)."""

    model_config = ConfigDict(frozen=True)

    pair_id: str
    category: Category
    image: str
    instruction: str
    description: str = ""
    _digest_of: tuple[str, str] | None = PrivateAttr(default=None)  # (image, its bytes' digest)

    @field_validator("pair_id", "instruction", "image")
    @classmethod
    def _non_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty")
        return v.strip()

    @field_validator("description", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return "" if v is None else v

    def digest(self) -> str:
        """Content digest (:func:`pair_digest`)."""
        return pair_digest(self)


def _is_path(s: str, base: Path) -> bool:
    if not set(s) <= _B64:
        return True
    try:
        return (base / s).is_file()
    except OSError:  # a long base64 string is no valid file name
        return False


def image_bytes(pair: EditPair) -> bytes:
    """The pair's encoded image: the file's bytes or the decoded base64 (relative paths: cwd)."""
    s = pair.image.strip()
    if s.startswith("data:"):
        s = s.split(",", 1)[-1]
    elif _is_path(s, Path()):
        path = Path(s).expanduser()
        if not path.is_file():
            raise PairError(
                pair.pair_id,
                "image",
                f"file {path} does not exist: fix the path "
                "(relative paths resolve against the data file's folder)",
            )
        return path.read_bytes()
    try:
        return base64.b64decode("".join(s.split()), validate=True)
    except (binascii.Error, ValueError):
        raise PairError(
            pair.pair_id,
            "image",
            "neither an existing image file nor valid base64: "
            "give a path relative to the data file, or base64 of a PNG/JPEG",
        ) from None


def decode_image(pair: EditPair) -> Image.Image:
    """The pair's image as RGB (alpha dropped); :class:`PairError` naming the pair otherwise."""
    data = image_bytes(pair)
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for bad bytes
        raise PairError(pair.pair_id, "image", _undecodable(exc)) from None


def _undecodable(exc: BaseException) -> str:
    return f"does not decode as an image ({type(exc).__name__}: {exc}): re-encode it as PNG or JPEG"


def _image_digest(pair: EditPair) -> str:
    """Digest of the image *bytes*, cached on the pair (files are read once per run)."""
    if pair._digest_of is None or pair._digest_of[0] != pair.image:
        pair._digest_of = (pair.image, bytes_digest(image_bytes(pair)))
    return pair._digest_of[1]


def pair_digest(pair: EditPair) -> str:
    """Digest of the pair's fields and image *bytes* (not where the image lives)."""
    fields = {
        k: str(getattr(pair, k)) for k in ("pair_id", "category", "instruction", "description")
    }
    return value_digest(fields | {"image": _image_digest(pair)})


def edit_input_digest(pair: EditPair) -> str:
    """Digest of what an edit reads: the id (it seeds the noise), the instruction, the image
    bytes. Not the category or description, which only the reward prompt reads: changing them
    re-scores a pair without re-editing it."""
    return value_digest(
        {"pair_id": pair.pair_id, "instruction": pair.instruction, "image": _image_digest(pair)}
    )


def benchmark_digest(pairs: Iterable[EditPair]) -> str:
    """Digest of an ordered benchmark: the digests of its pairs, in order."""
    return value_digest([pair_digest(p) for p in pairs])


@dataclass
class Rejection:
    """A pair left out, and why: ``reason`` says what is wrong and the fix."""

    pair_id: str | None
    category: str | None
    field: str
    reason: str
    where: str | None = None  # file:line or file[index]

    def __str__(self) -> str:
        at = f" ({self.where})" if self.where else ""
        return f"pair {self.pair_id!r}{at}: {self.field}: {self.reason}"


@dataclass
class Benchmark:
    """An ordered list of pairs."""

    pairs: list[EditPair]

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[EditPair]:
        return iter(self.pairs)

    def sizes(self) -> dict[str, int]:
        """Pairs per category, in :class:`Category` order (zeros kept)."""
        return {c.value: sum(p.category == c for p in self.pairs) for c in Category}

    def digest(self) -> str:
        """:func:`benchmark_digest` of the pairs."""
        return benchmark_digest(self.pairs)


@dataclass
class LoadResult(Benchmark):
    """The valid pairs, in file order, and every rejected record."""

    rejected: list[Rejection] = field(default_factory=list)
    source: str = ""


def validate_pairs(pairs: Iterable[EditPair]) -> tuple[list[EditPair], list[Rejection]]:
    """Decode each image once, fully, and cache its digest: (good, rejected).

    A full decode (``Image.load``), not PIL's ``verify``: ``verify`` passes a truncated JPEG,
    which would then fail in the middle of stage 1. One image is held at a time.
    """
    good, bad = [], []
    for p in pairs:
        try:
            data = image_bytes(p)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                if min(im.size) < 1:
                    raise ValueError(f"size {im.size}")
        except PairError as exc:
            bad.append(Rejection(p.pair_id, p.category.value, exc.field, exc.reason))
            continue
        except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for bad bytes
            bad.append(Rejection(p.pair_id, p.category.value, "image", _undecodable(exc)))
            continue
        p._digest_of = (p.image, bytes_digest(data))
        good.append(p)
    return good, bad


def _data_files(path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix.lower() not in (".json", ".jsonl"):
            raise InputError(
                f"data_path={path}: not a .json or .jsonl file "
                "(format: gpuflows.pipelines.two_stage_eval.bench)"
            )
        return [path]
    files = [
        p for p in path.iterdir() if p.suffix.lower() in (".json", ".jsonl") and p.name != MANIFEST
    ]
    if not files:
        raise InputError(
            f"data_path={path}: no .jsonl or .json file in this folder "
            "(format: gpuflows.pipelines.two_stage_eval.bench)"
        )
    rank = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(files, key=lambda p: (rank.get(canonical_category(p.stem) or "", 99), p.name))


def _records(f: Path) -> Iterator[tuple[Any, str | None, str]]:
    """(record, category implied by the file or JSON key, where) for every record of a file."""
    try:
        text = f.read_text(encoding="utf-8")
        doc = None if f.suffix.lower() == ".jsonl" else json.loads(text)
    except (OSError, UnicodeError, ValueError) as exc:
        raise InputError(
            f"data_path={f}: cannot read it as UTF-8 JSON ({exc}): fix or remove the file"
        ) from None
    implied = canonical_category(f.stem)
    if doc is None:
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield json.loads(line), implied, f"{f.name}:{n}"
                except ValueError as exc:  # one bad line rejects one record, not the file
                    yield exc, implied, f"{f.name}:{n}"
        return
    if isinstance(doc, dict) and isinstance(doc.get("pairs"), list):
        doc = doc["pairs"]
    if isinstance(doc, dict) and doc and all(canonical_category(k) for k in doc):
        for key, recs in doc.items():
            for i, r in enumerate(recs if isinstance(recs, list) else [recs]):
                yield r, canonical_category(key), f"{f.name}[{key}][{i}]"
        return
    for i, r in enumerate(doc if isinstance(doc, list) else [doc]):
        yield r, implied, f"{f.name}[{i}]"


def _pair(rec: Any, implied: str | None, where: str, base: Path) -> EditPair | Rejection:
    if not isinstance(rec, dict):
        why = f"not valid JSON ({rec})" if isinstance(rec, ValueError) else "not a JSON object"
        return Rejection(None, None, "record", f"{why}: write one JSON object per pair", where)
    pid, raw_cat = rec.get("pair_id"), rec.get("category")
    pid = pid if isinstance(pid, str) and pid.strip() else None
    cat = canonical_category(raw_cat) if raw_cat not in (None, "") else implied
    rej = Rejection(pid, cat or (None if raw_cat is None else str(raw_cat)), "", "", where)
    if raw_cat not in (None, "") and implied and cat and cat != implied:
        rej.field, rej.reason = (
            "category",
            f"{raw_cat!r} but the file holds {implied}: move the record or fix its category",
        )
        return rej
    fields = {k: rec.get(k) for k in ("pair_id", "instruction", "image", "description")} | {
        "category": cat if cat else raw_cat
    }
    img = rec.get("image")
    if (
        isinstance(img, str)
        and img.strip()
        and not img.strip().startswith("data:")
        and _is_path(img.strip(), base)
    ):
        fields["image"] = str(base / Path(img.strip()).expanduser())
    try:
        return EditPair(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        rej.field = str(err["loc"][0]) if err["loc"] else "record"
        if err["type"] == "missing" or err.get("input") is None:
            what = "missing"
        elif err["type"] == "value_error":
            what = str(err["ctx"]["error"])
        elif rej.field == "category":
            what = f"{err.get('input')!r} is not a category"
        else:
            what = f"must be a string, got {type(err.get('input')).__name__}"
        rej.reason = f"{what}: {_FIX.get(rej.field, err['msg'])}"
        return rej


def load_benchmark(path: str | Path) -> LoadResult:
    """Read, check and order every pair (module docstring); bad pairs land in ``rejected``.

    Raises:
        InputError: the path does not exist, a file is not JSON, a ``pair_id`` repeats, or no
            pair is valid — the message names the path (and the ids) and the fix.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(
            f"data_path={path} does not exist: point it at a .jsonl/.json file or a folder of them"
        )
    result = LoadResult(pairs=[], source=str(path))
    seen: dict[str, list[str]] = {}
    candidates: list[tuple[EditPair, str]] = []
    for f in _data_files(path):
        for rec, implied, where in _records(f):
            got = _pair(rec, implied, where, f.parent.resolve())
            if (
                isinstance(rec, dict)
                and isinstance(rec.get("pair_id"), str)
                and rec["pair_id"].strip()
            ):
                seen.setdefault(rec["pair_id"].strip(), []).append(where)
            if isinstance(got, EditPair):
                candidates.append((got, where))
            else:
                result.rejected.append(got)
    located = {p.pair_id: w for p, w in candidates}
    dups = {k: v for k, v in seen.items() if len(v) > 1}
    if dups:
        listed = "; ".join(f"{k!r} at {', '.join(v)}" for k, v in list(dups.items())[:10])
        raise InputError(
            f"data_path={path}: pair_id repeated: {listed}: give every pair its own id"
        )
    result.pairs, bad_images = validate_pairs(p for p, _ in candidates)
    for r in bad_images:
        r.where = located.get(r.pair_id)
    result.rejected.extend(bad_images)
    if not result.pairs:
        why = "; ".join(str(r) for r in result.rejected[:5]) or "no records"
        raise InputError(
            f"data_path={path}: no usable pair ({why}): fix the records "
            "(format: gpuflows.pipelines.two_stage_eval.bench)"
        )
    return result
