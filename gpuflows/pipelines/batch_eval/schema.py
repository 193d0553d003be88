"""The batch-eval dataset: three tables, documented here, loaded with located errors.

A dataset is a folder holding three files, each JSON Lines (``.jsonl``) or Parquet
(``.parquet``), exactly these columns (no more, no fewer):

``queries``
    ``query_id`` (str, unique), ``text`` (str, the query as a user types it), ``split``
    (``"train"``: may be used to fit the fusion head; ``"test"``: evaluated), ``constraints``
    (object ``{attribute: value}``, the query's *hard* constraints, e.g. ``{"dietary":
    "vegan", "background": "white"}``; every attribute must be one the candidates carry).
``candidates``
    ``candidate_id`` (str, unique), ``caption`` (str, the text channel), ``attributes`` (object
    ``{attribute: value}``, every candidate the same attribute names), ``visual`` (list of
    floats, one width for all rows: the visual channel, e.g. an image encoder's embedding).
``judgments``
    ``query_id``, ``candidate_id``, ``relevance`` (int in ``0..RELEVANCE_MAX``, graded:
    0 not relevant ... 3 meets the request and every hard constraint). One row per (query,
    candidate) to be re-ranked: the rows of a query are its candidate list. No duplicate pairs.

Bad input (missing or extra columns, duplicate ids, a query without candidates, relevance
outside its scale, a constraint naming an unknown attribute, visual rows of the wrong width,
NaN) raises :class:`gpuflows.core.faults.InputError` naming the file, the row and the field,
before any model is loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gpuflows.core.evidence.digest import value_digest
from gpuflows.core.faults import InputError

RELEVANCE_MAX = 3
SPLITS = ("train", "test")
TABLES: dict[str, tuple[str, ...]] = {
    "queries": ("query_id", "text", "split", "constraints"),
    "candidates": ("candidate_id", "caption", "attributes", "visual"),
    "judgments": ("query_id", "candidate_id", "relevance"),
}
SUFFIXES = (".jsonl", ".parquet")


@dataclass
class BatchEvalData:
    """A validated dataset: the three tables plus the derived lookups the pipeline uses."""

    queries: pd.DataFrame
    candidates: pd.DataFrame
    judgments: pd.DataFrame
    name: str = "batch-eval"
    version: str = ""
    """'' for a user's folder (named by the folder, known by its digest); our generator sets its
    own release."""
    synthetic: bool = False
    description: str = ""
    visual: np.ndarray = field(init=False)
    """float32 (n_candidates, width), row i = ``candidates.iloc[i]``."""
    cand_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.visual = np.asarray(
            np.stack([np.asarray(v, dtype=np.float32) for v in self.candidates["visual"]]),
            dtype=np.float32,
        )
        self.cand_index = {c: i for i, c in enumerate(self.candidates["candidate_id"])}

    @property
    def visual_dim(self) -> int:
        return int(self.visual.shape[1])

    def vocabulary(self) -> dict[str, list[str]]:
        """Attribute name -> sorted values the candidates carry."""
        vocab: dict[str, set[str]] = {}
        for attrs in self.candidates["attributes"]:
            for k, v in attrs.items():
                vocab.setdefault(k, set()).add(str(v))
        return {k: sorted(v) for k, v in sorted(vocab.items())}

    def split(self, name: str) -> pd.DataFrame:
        return self.queries[self.queries["split"] == name].reset_index(drop=True)

    def lists(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """query_id -> (candidate row indices, relevance) in judgment order."""
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for qid, g in self.judgments.groupby("query_id", sort=False):
            idx = np.array([self.cand_index[c] for c in g["candidate_id"]], dtype=np.int64)
            out[str(qid)] = (idx, g["relevance"].to_numpy(np.int64))
        return out

    def digest(self) -> str:
        """Content digest of the three tables (canonical JSON, visual lists included)."""
        return value_digest(
            {
                t: [
                    {k: _canon(v) for k, v in r.items()}
                    for r in getattr(self, t).to_dict("records")
                ]
                for t in TABLES
            }
        )


def _canon(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _canon(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [float(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _pythonic(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_pythonic(x) for x in v.tolist()]
    if isinstance(v, dict):
        return {k: _pythonic(x) for k, x in v.items() if x is not None}
    return v.item() if isinstance(v, np.generic) else v


def _err(file: str, row: int | None, fld: str, msg: str) -> InputError:
    where = f"{file}" + (f", row {row}" if row is not None else "") + f", field {fld!r}"
    return InputError(f"{where}: {msg}")


def _read(folder: Path, table: str) -> tuple[pd.DataFrame, str]:
    found = [folder / f"{table}{s}" for s in SUFFIXES if (folder / f"{table}{s}").exists()]
    if not found:
        raise _err(
            str(folder / f"{table}.jsonl"), None, "-", f"missing: write {table}.jsonl or .parquet"
        )
    p = found[0]
    try:
        if p.suffix == ".parquet":
            frame = pd.read_parquet(p)
            for col in frame.columns:  # Parquet gives arrays and structs: make them Python
                frame[col] = [_pythonic(v) for v in frame[col]]
        else:
            lines = p.read_text().splitlines()
            rows = []
            for i, line in enumerate(lines):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise _err(str(p), i, "-", f"not JSON ({exc.msg})") from None
            frame = pd.DataFrame(rows)
    except (ValueError, OSError) as exc:
        if isinstance(exc, InputError):
            raise
        raise _err(str(p), None, "-", f"unreadable ({exc})") from None
    return frame, str(p)


def validate(frames: dict[str, tuple[pd.DataFrame, str]]) -> dict[str, pd.DataFrame]:
    """Check the three tables (see the module docstring); returns them with canonical dtypes.

    Args:
        frames: table name -> (frame, file name used in messages).

    Raises:
        InputError: naming the file, the row (0-based, as read) and the field.
    """
    out = {}
    for table, cols in TABLES.items():
        frame, file = frames[table]
        missing = [c for c in cols if c not in frame.columns]
        extra = [c for c in frame.columns if c not in cols]
        if missing:
            raise _err(file, None, missing[0], f"column missing (expected exactly {list(cols)})")
        if extra:
            raise _err(file, None, extra[0], f"unknown column (expected exactly {list(cols)})")
        if frame.empty:
            raise _err(file, None, cols[0], "no rows")
        out[table] = frame.reset_index(drop=True)
    q, qf = out["queries"], frames["queries"][1]
    c, cf = out["candidates"], frames["candidates"][1]
    j, jf = out["judgments"], frames["judgments"][1]
    _unique(q, "query_id", qf)
    _unique(c, "candidate_id", cf)
    for i, r in q.iterrows():
        _text(r["text"], qf, i, "text")
        if r["split"] not in SPLITS:
            raise _err(qf, i, "split", f"{r['split']!r}: use one of {list(SPLITS)}")
    width, names = None, None
    for i, r in c.iterrows():
        _text(r["caption"], cf, i, "caption")
        attrs = r["attributes"]
        if not isinstance(attrs, dict) or not attrs:
            raise _err(cf, i, "attributes", "must be a non-empty object {attribute: value}")
        if names is None:
            names = set(attrs)
        elif set(attrs) != names:
            raise _err(cf, i, "attributes", f"names {sorted(attrs)} differ from {sorted(names)}")
        vec = r["visual"]
        if not isinstance(vec, list | tuple | np.ndarray) or len(vec) == 0:
            raise _err(cf, i, "visual", "must be a non-empty list of floats")
        if width is None:
            width = len(vec)
        elif len(vec) != width:
            raise _err(cf, i, "visual", f"width {len(vec)} != {width} (the first row's width)")
        try:
            arr = np.asarray(vec, dtype=np.float64)
        except (TypeError, ValueError):
            raise _err(cf, i, "visual", "not numbers") from None
        if not np.isfinite(arr).all():
            raise _err(cf, i, "visual", "NaN or infinite value")
    for i, r in q.iterrows():
        cons = r["constraints"]
        if not isinstance(cons, dict):
            raise _err(qf, i, "constraints", "must be an object {attribute: value} ({} for none)")
        unknown = sorted(set(cons) - (names or set()))
        if unknown:
            raise _err(
                qf, i, "constraints", f"unknown attribute {unknown[0]!r}: use {sorted(names)}"
            )
    qids, cids = set(q["query_id"]), set(c["candidate_id"])
    seen: set[tuple[str, str]] = set()
    for i, r in j.iterrows():
        if r["query_id"] not in qids:
            raise _err(jf, i, "query_id", f"{r['query_id']!r} is not in the queries file")
        if r["candidate_id"] not in cids:
            raise _err(jf, i, "candidate_id", f"{r['candidate_id']!r} is not a candidate")
        rel = r["relevance"]
        if (
            rel is None
            or isinstance(rel, bool)
            or (isinstance(rel, float) and (math.isnan(rel) or rel != int(rel)))
        ):
            raise _err(jf, i, "relevance", f"{rel!r}: an integer in 0..{RELEVANCE_MAX}")
        if not 0 <= int(rel) <= RELEVANCE_MAX:
            raise _err(jf, i, "relevance", f"{rel!r} outside the scale 0..{RELEVANCE_MAX}")
        pair = (r["query_id"], r["candidate_id"])
        if pair in seen:
            raise _err(jf, i, "candidate_id", f"duplicate judgment of {pair}")
        seen.add(pair)
    without = sorted(qids - set(j["query_id"]))
    if without:
        row = int(q.index[q["query_id"] == without[0]][0])
        raise _err(qf, row, "query_id", f"query {without[0]!r} has no candidates in judgments")
    out["judgments"] = j.assign(relevance=j["relevance"].astype(np.int64))
    return out


def _unique(frame: pd.DataFrame, col: str, file: str) -> None:
    dup = frame[col].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise _err(file, i, col, f"duplicate id {frame[col].iloc[i]!r}")
    for i, v in enumerate(frame[col]):
        _text(v, file, i, col)


def _text(v: Any, file: str, row: int, fld: str) -> None:
    if not isinstance(v, str) or not v.strip():
        raise _err(file, row, fld, f"{v!r}: must be a non-empty string")


def load_dataset(folder: str | Path) -> BatchEvalData:
    """Read and validate a dataset folder (see the module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"data_path={str(root)!r}: not a folder with queries/candidates/judgments")
    frames = {t: _read(root, t) for t in TABLES}
    v = validate(frames)
    return BatchEvalData(v["queries"], v["candidates"], v["judgments"], name=root.name)


def write_dataset(data: BatchEvalData, folder: str | Path) -> dict[str, Path]:
    """Write the three tables as JSON Lines (the format :func:`load_dataset` reads)."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for table in TABLES:
        frame: pd.DataFrame = getattr(data, table)
        path = root / f"{table}.jsonl"
        tmp = path.with_suffix(".jsonl.tmp")
        rows = [{k: _canon(v) for k, v in r.items()} for r in frame.to_dict("records")]
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        tmp.replace(path)
        out[table] = path
    return out
