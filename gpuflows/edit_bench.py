"""The two-stage-eval benchmark: pairs of (image, edit instruction, description) per category.

File format (``load_benchmark``): a ``.jsonl`` / ``.json`` file, or a folder of them (read in name
order). One record per pair::

    {"pair_id": "physical-000", "category": "physical",
     "image": "images/physical-000.png",           # a path relative to the file, or base64
     "instruction": "make the glass fall off the table",
     "description": "a glass on a wooden table"}

``category`` is one of physical, environment, social, causal, referential, or the seed's names
物理 环境 社会 因果 指代; when a record has none, the file's stem names it (``物理.jsonl``). A
``.json`` file holds a list of records. ``image`` is a path (absolute, or relative to the data
file) or base64 (optionally a ``data:image/...;base64,`` URL). A folder's ``manifest.json`` is
not data (the synthetic generator writes one).

Bad pairs never stop a run: each is *rejected* with the field and the fix (unknown category,
empty instruction, image that is missing or does not decode) before any model is loaded. The load
fails (:class:`gpuflows.faults.InputError`) only when nothing is usable or pair ids repeat.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from gpuflows.digest import bytes_digest, value_digest
from gpuflows.faults import InputError

MANIFEST = "manifest.json"
"""A folder's description (generator, seed); not a data file."""
CATEGORIES = ("physical", "environment", "social", "causal", "referential")
ALIASES = {"物理": "physical", "环境": "environment", "社会": "social", "因果": "causal", "指代": "referential"}  # fmt: skip


def canonical_category(name: str) -> str | None:
    """The English key of a category name (English or the seed's Chinese), or None."""
    key = str(name).strip()
    key = ALIASES.get(key, key.lower())
    return key if key in CATEGORIES else None


class EditPair(BaseModel):
    """One benchmark pair; ``image_digest`` is the digest of the image's bytes."""

    pair_id: str
    category: str
    image: str
    instruction: str
    description: str = ""
    base_dir: str = "."
    image_digest: str = ""

    def image_bytes(self) -> bytes:
        """The encoded image (file contents or decoded base64); raises ValueError naming the pair."""
        return _image_bytes(self.image, Path(self.base_dir), self.pair_id)

    def digest(self) -> str:
        """Content digest: the fields and the image bytes (not where the image lives)."""
        return value_digest(
            {k: getattr(self, k) for k in ("pair_id", "category", "instruction", "description")}
            | {"image": self.image_digest}
        )


@dataclass
class Rejection:
    """A pair left out, and why (the field and the fix)."""

    pair_id: str | None
    category: str | None
    field: str
    reason: str


@dataclass
class LoadResult:
    pairs: list[EditPair]
    rejected: list[Rejection] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        """Valid pairs per category, in :data:`CATEGORIES` order (zeros kept)."""
        return {c: sum(p.category == c for p in self.pairs) for c in CATEGORIES}

    def digest(self) -> str:
        return value_digest([p.digest() for p in self.pairs])


def _image_bytes(image: str, base: Path, pair_id: str) -> bytes:
    s = image.strip()
    if s.startswith("data:image"):
        s = s.split(",", 1)[-1]
    path = Path(s) if len(s) < 4096 else None
    if path is not None and path.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".bmp"}:
        full = path if path.is_absolute() else base / path
        if not full.is_file():
            raise ValueError(f"pair {pair_id!r}: image file {full} does not exist: fix the path")
        return full.read_bytes()
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"pair {pair_id!r}: image is neither an image file path nor base64: give a path "
            "(.png/.jpg) relative to the data file, or base64 of the encoded image"
        ) from None


def decode_image(pair: EditPair) -> Image.Image:
    """The pair's image as RGB; ValueError naming the pair if it does not decode."""
    data = pair.image_bytes()
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(
            f"pair {pair.pair_id!r}: image does not decode ({exc}): re-encode it as PNG"
        ) from None


def _records(path: Path) -> list[tuple[dict, Path]]:
    files = (
        sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".json") and p.name != MANIFEST)
        if path.is_dir()
        else [path]
    )
    if not files:
        raise InputError(
            f"data_path={path}: no .jsonl or .json files there: see gpuflows.edit_bench for the format"
        )
    out = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
            recs = (
                json.loads(text)
                if f.suffix == ".json"
                else [json.loads(ln) for ln in text.splitlines() if ln.strip()]
            )
        except (OSError, ValueError) as exc:
            raise InputError(
                f"data_path={f}: cannot read it as {f.suffix[1:].upper()} ({exc})"
            ) from None
        for r in recs if isinstance(recs, list) else [recs]:
            if isinstance(r, dict) and "category" not in r and canonical_category(f.stem):
                r = {**r, "category": f.stem}
            out.append((r, f.parent))
    return out


def load_benchmark(path: str | Path) -> LoadResult:
    """Read and check every pair (module docstring); images are decoded once here."""
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"data_path={path} does not exist: point it at a .jsonl file or a folder of them"
        )
    result, seen = LoadResult([]), {}
    for rec, base in _records(path):
        pid = rec.get("pair_id") if isinstance(rec, dict) else None
        cat_raw = rec.get("category") if isinstance(rec, dict) else None

        def reject(fld: str, why: str, pid=pid, cat_raw=cat_raw) -> None:
            result.rejected.append(Rejection(pid, cat_raw, fld, why))

        if not isinstance(rec, dict) or not isinstance(pid, str) or not pid.strip():
            reject("pair_id", "missing or empty: give every record a unique string pair_id")
            continue
        cat = canonical_category(cat_raw) if cat_raw is not None else None
        if cat is None:
            reject(
                "category", f"{cat_raw!r} is not one of {CATEGORIES} (or 物理 环境 社会 因果 指代)"
            )
            continue
        instr = rec.get("instruction")
        if not isinstance(instr, str) or not instr.strip():
            reject("instruction", "empty: write the edit instruction")
            continue
        if not isinstance(rec.get("image"), str) or not rec["image"].strip():
            reject("image", "missing: give an image path or base64")
            continue
        pair = EditPair(pair_id=pid, category=cat, image=rec["image"], instruction=instr.strip(),
                        description=str(rec.get("description") or ""), base_dir=str(base))  # fmt: skip
        try:
            decode_image(pair)
        except ValueError as exc:
            reject("image", str(exc))
            continue
        pair.image_digest = bytes_digest(pair.image_bytes())
        seen[pid] = seen.get(pid, 0) + 1
        result.pairs.append(pair)
    dups = sorted(p for p, n in seen.items() if n > 1)
    if dups:
        raise InputError(f"pair_id repeated: {dups[:10]}: every pair needs its own id")
    if not result.pairs:
        why = "; ".join(f"{r.pair_id}: {r.field}: {r.reason}" for r in result.rejected[:5])
        raise InputError(f"data_path={path}: no usable pair ({why})")
    return result
