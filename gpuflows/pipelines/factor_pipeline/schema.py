"""Step 1's input: Parquet shards of images + metadata, checked before any model time.

A shard set is a folder of ``*.parquet`` files (or one file). Columns:

==============  ========  ==========================================================
column          type      meaning
==============  ========  ==========================================================
``id``          string    the record's name, unique across all shards (required)
``label``       string    what the image shows, the expected answer (required)
``image``       binary    encoded image bytes (PNG/JPEG/...); or
``image_path``  string    a path to the image file, relative to the shard's folder
other columns   scalars   metadata, carried through to every output record as ``meta``
==============  ========  ==========================================================

At least one of ``image`` / ``image_path`` is required. :func:`validate_shards` reads only the
schemas and, batch by batch, the id and image columns (never a whole shard, never the whole
set): a missing column, an empty or duplicate id, or an image that does not decode is an
:class:`InputError` naming the shard, the row and the field. :func:`iter_batches` then yields
records batch by batch with ``pyarrow.parquet.ParquetFile.iter_batches``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpuflows.core.faults import InputError

REQUIRED = ("id", "label")
IMAGE_COLUMNS = ("image", "image_path")
_CHECK_BATCH = 512


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    rows: int
    image_column: str  # "image" or "image_path"
    meta_columns: tuple[str, ...]


def list_shards(path: str | Path, *, field: str = "input_path") -> list[Path]:
    """The ``*.parquet`` files of a folder (sorted), or the one file given."""
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix != ".parquet":
            raise InputError(f"{field}={str(p)!r} is not a .parquet file or a folder of them")
        return [p]
    if not p.is_dir():
        raise InputError(f"{field}={str(p)!r} does not exist: give a folder of Parquet shards")
    shards = sorted(p.glob("*.parquet"))
    if not shards:
        raise InputError(f"{field}={str(p)!r} holds no *.parquet shards")
    return shards


def _schema_info(path: Path) -> ShardInfo:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"shard {path.name}: not a readable Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise InputError(
            f"shard {path.name}: missing column(s) {missing} (have {names}); every shard needs "
            f"{list(REQUIRED)} and one of {list(IMAGE_COLUMNS)}"
        )
    image_col = next((c for c in IMAGE_COLUMNS if c in names), None)
    if image_col is None:
        raise InputError(
            f"shard {path.name}: no image column: add 'image' (bytes) or 'image_path' (string)"
        )
    meta = tuple(c for c in names if c not in (*REQUIRED, *IMAGE_COLUMNS))
    return ShardInfo(path, pf.metadata.num_rows, image_col, meta)


def decode_image(value: Any, *, shard: Path, image_column: str) -> Any:
    """A PIL image (RGB) from bytes or a path relative to the shard's folder."""
    from PIL import Image, UnidentifiedImageError

    if value is None:
        raise ValueError(f"{image_column} is empty")
    try:
        if image_column == "image":
            im = Image.open(io.BytesIO(value))
        else:
            p = Path(value)
            im = Image.open(p if p.is_absolute() else shard.parent / p)
        im.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValueError(f"{image_column} does not decode: {exc}") from None
    return im.convert("RGB")


def validate_shards(shards: list[Path], *, check_images: bool = True) -> list[ShardInfo]:
    """Check every shard's columns, ids and images; raise the first problem found, located."""
    import pyarrow.parquet as pq

    infos = [_schema_info(s) for s in shards]
    seen: dict[str, tuple[str, int]] = {}
    for info in infos:
        cols = ["id", info.image_column] if check_images else ["id"]
        row = 0
        for batch in pq.ParquetFile(info.path).iter_batches(_CHECK_BATCH, columns=cols):
            data = batch.to_pydict()
            for i, rid in enumerate(data["id"]):
                where = f"shard {info.path.name} row {row + i}"
                if not isinstance(rid, str) or not rid.strip():
                    raise InputError(f"{where}: id is empty; every record needs a unique id")
                if rid in seen:
                    first = seen[rid]
                    raise InputError(
                        f"{where}: duplicate id {rid!r} (first at shard {first[0]} row {first[1]})"
                    )
                seen[rid] = (info.path.name, row + i)
                if check_images:
                    try:
                        decode_image(
                            data[info.image_column][i],
                            shard=info.path,
                            image_column=info.image_column,
                        )
                    except ValueError as exc:
                        raise InputError(f"{where} (id {rid!r}): {exc}") from None
            row += batch.num_rows
    return infos


def image_file(info: ShardInfo, value: str) -> Path:
    """The file an ``image_path`` value names (relative to the shard's folder)."""
    p = Path(value)
    return p if p.is_absolute() else info.path.parent / p


def iter_batches(
    info: ShardInfo, batch_size: int, *, decode: bool = True
) -> Iterator[list[dict[str, Any]]]:
    """Records of one shard, ``batch_size`` at a time: id, label, image (PIL; only with
    ``decode``), image_bytes (the encoded file), image_path (the column's value), row, meta."""
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(info.path).iter_batches(batch_size):
        data = batch.to_pydict()
        out = []
        for i in range(batch.num_rows):
            raw = data[info.image_column][i]
            by_path = info.image_column == "image_path"
            rec = {
                "id": data["id"][i],
                "label": data["label"][i],
                "image_bytes": image_file(info, raw).read_bytes() if by_path else raw,
                "image_path": raw if by_path else None,
                "row": row + i,
                "meta": {c: data[c][i] for c in info.meta_columns},
            }
            if decode:
                rec["image"] = decode_image(raw, shard=info.path, image_column=info.image_column)
            out.append(rec)
        row += batch.num_rows
        yield out
