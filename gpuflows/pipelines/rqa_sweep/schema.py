"""The gaze input schema: what a recording must look like before any RQA runs.

One row per gaze sample, long format, Parquet (``.parquet``/``.pq``) or CSV (``.csv``):

============  =====================  ============================================================
column        type                   meaning
============  =====================  ============================================================
subject_id    string (or integer)    participant identifier; integers are read as their text
group         string                 one of ``control``, ``mci``, ``ad`` (lower case)
t             float (or integer)     sample time in seconds, strictly increasing per subject
x             float                  horizontal gaze position (unit screen: 0 left .. 1 right)
y             float                  vertical gaze position (unit screen: 0 top .. 1 bottom)
============  =====================  ============================================================

Rules checked by :func:`validate_gaze`, each failing with :class:`~gpuflows.core.faults.InputError`
naming the subject or field and the fix, before anything is computed:

- every column above present; ``t``, ``x``, ``y`` numeric (not text, not bool); ``subject_id``
  and ``group`` without blanks; ``subject_id`` text or integer (a float column usually means
  blank ids in a CSV);
- ``t``, ``x``, ``y`` finite (no NaN, no inf): the first bad row and its subject are named;
- ``group`` in :data:`GROUPS`, one group per subject;
- no duplicate ``(subject_id, t)``; then ``t`` strictly increasing within each subject *in the
  order the rows are given* (rows of different subjects may interleave) - a clock that steps back
  is a recording problem that sorting would hide;
- every subject at least ``min_length`` samples (the caller passes ``(m_max - 1) * tau_max + 2``,
  the shortest series that still gives two embedding vectors for the largest m and tau).

Positions are not required to lie inside [0, 1]: real trackers report off-screen gaze. Rows are
numbered from 0 in the order given; in a CSV file row r is on line r + 2 (after the header).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from gpuflows.core.evidence.digest import frame_digest
from gpuflows.core.evidence.envlock import DatasetRef
from gpuflows.core.faults import InputError

GROUPS: tuple[str, ...] = ("control", "mci", "ad")
"""Allowed values of ``group``, in the order used for tables and plots."""
COLUMNS: tuple[str, ...] = ("subject_id", "group", "t", "x", "y")
"""Required columns, in schema order."""
NUMERIC_COLUMNS: tuple[str, ...] = ("t", "x", "y")
"""Columns that must be finite real numbers."""


def load_gaze(path: str | os.PathLike[str], *, min_length: int | None = None) -> pd.DataFrame:
    """Read a gaze file (Parquet or CSV by suffix) and validate it with :func:`validate_gaze`.

    CSV ids are read as text, so ``"007"`` stays ``"007"``.

    Raises:
        InputError: missing file, unknown suffix, unreadable file, or any schema violation.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(
            f"gaze file {str(p)!r} is a folder, not a file: pass the path of one .parquet or "
            ".csv file (the schema is one table of all subjects)"
        )
    if not p.is_file():
        raise InputError(
            f"gaze file {str(p)!r} does not exist: pass the path of a .parquet or .csv"
        )
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
        elif suffix == ".csv":
            frame = pd.read_csv(p, dtype={"subject_id": str, "group": str})
        else:
            raise InputError(
                f"gaze file {p.name!r}: unknown format {suffix!r}; use .parquet, .pq or .csv"
            )
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is an input problem
        raise InputError(f"gaze file {p.name!r} could not be read ({exc})") from exc
    if suffix == ".csv" and frame.shape[1] == 1:
        (only,) = frame.columns
        for sep in (";", "\t", "|"):
            if sep in str(only):
                name = {";": "semicolons", "\t": "tabs", "|": "pipes"}[sep]
                raise InputError(
                    f"gaze file {p.name!r} has one column {str(only)!r}: it looks separated by "
                    f"{name}, but a .csv is read with commas; save it comma-separated (pandas: "
                    "to_csv(path, index=False)), or as .parquet"
                )
    return validate_gaze(frame, min_length=min_length)


def _row_subject(frame: pd.DataFrame, pos: int) -> str:
    sid = frame["subject_id"].iloc[pos]
    if isinstance(sid, np.generic):
        sid = sid.item()
    return f"subject_id={sid!r}, row {pos}"


def _check_numeric(frame: pd.DataFrame, col: str) -> None:
    s = frame[col]
    kind = s.dtype.kind
    if kind in "iuf":
        return
    if kind == "b":
        raise InputError(
            f"column {col!r} is boolean: it must hold numbers ({col} in seconds/units)"
        )
    if kind == "c":
        raise InputError(f"column {col!r} is complex: it must hold real numbers")
    coerced = pd.to_numeric(s, errors="coerce")
    bad = np.flatnonzero(coerced.isna().to_numpy() & s.notna().to_numpy())
    if bad.size:
        pos = int(bad[0])
        raise InputError(
            f"column {col!r} has dtype {s.dtype} with non-numeric values ({bad.size} rows); "
            f"first {s.iloc[pos]!r} at {_row_subject(frame, pos)}: write plain numbers"
        )
    raise InputError(
        f"column {col!r} has dtype {s.dtype}: store it as a float column (e.g. "
        f"df[{col!r}] = df[{col!r}].astype('float64'))"
    )


def _check_labels(frame: pd.DataFrame) -> None:
    for col in ("subject_id", "group"):
        nulls = np.flatnonzero(frame[col].isna().to_numpy())
        if nulls.size:
            raise InputError(
                f"column {col!r} is blank in {nulls.size} rows (first: row {int(nulls[0])}): "
                "every sample needs a subject_id and a group"
            )
    if frame["subject_id"].dtype.kind in "fcb":
        raise InputError(
            f"column 'subject_id' has dtype {frame['subject_id'].dtype}: use text (or integer) "
            "ids; a float column usually means blank or numeric-looking ids read from CSV"
        )
    if frame["group"].dtype.kind in "iufcb":
        raise InputError(
            f"column 'group' has dtype {frame['group'].dtype}: use the labels {list(GROUPS)}"
        )


def _check_groups(frame: pd.DataFrame) -> None:
    groups = frame["group"]
    unknown = ~groups.isin(GROUPS).to_numpy()
    if unknown.any():
        pos = int(np.flatnonzero(unknown)[0])
        values = sorted(set(groups[unknown].tolist()))[:5]
        raise InputError(
            f"unknown group {groups.iloc[pos]!r} at {_row_subject(frame, pos)} "
            f"(unknown values: {values}): group must be one of {list(GROUPS)}"
        )
    per_subject = frame.groupby("subject_id", sort=True)["group"].nunique()
    mixed = per_subject[per_subject > 1]
    if len(mixed):
        sid = mixed.index[0]
        found = sorted(frame.loc[frame["subject_id"] == sid, "group"].unique().tolist())
        raise InputError(
            f"subject_id={sid!r} appears in several groups {found}: each subject needs exactly "
            "one group (fix the labels or split the ids)"
        )


def _check_finite(frame: pd.DataFrame) -> None:
    values = frame[list(NUMERIC_COLUMNS)].to_numpy(dtype=np.float64)
    bad_rows = ~np.isfinite(values).all(axis=1)
    if bad_rows.any():
        pos = int(np.flatnonzero(bad_rows)[0])
        col = NUMERIC_COLUMNS[int(np.flatnonzero(~np.isfinite(values[pos]))[0])]
        n_subjects = frame["subject_id"][bad_rows].nunique()
        raise InputError(
            f"{col}={values[pos, NUMERIC_COLUMNS.index(col)]} at {_row_subject(frame, pos)} "
            f"({int(bad_rows.sum())} rows with NaN/inf in {n_subjects} subjects): drop or "
            "interpolate lost samples (blinks, track loss) before the sweep"
        )


def _check_time(frame: pd.DataFrame) -> None:
    dup = frame.duplicated(["subject_id", "t"], keep="first").to_numpy()
    if dup.any():
        pos = int(np.flatnonzero(dup)[0])
        raise InputError(
            f"duplicate sample t={float(frame['t'].iloc[pos])!r} for {_row_subject(frame, pos)} "
            f"({int(dup.sum())} duplicate (subject_id, t) rows): each subject's times must be "
            "unique (a session appended twice, or a repeated export?)"
        )
    codes, _ = pd.factorize(frame["subject_id"])
    order = np.argsort(codes, kind="stable")  # rows of each subject, in the order given
    t = frame["t"].to_numpy(dtype=np.float64)[order]
    same = codes[order][1:] == codes[order][:-1]
    back = np.flatnonzero(same & (np.diff(t) <= 0))
    if back.size:
        prev, pos = int(order[back[0]]), int(order[back[0] + 1])
        raise InputError(
            f"t goes from {float(t[back[0]])!r} (row {prev}) to {float(t[back[0] + 1])!r} at "
            f"{_row_subject(frame, pos)}: t must increase strictly within a subject in row "
            "order; sort each subject's rows by t if the clock is right, else fix the clock"
        )


def _check_length(frame: pd.DataFrame, min_length: int) -> None:
    counts = frame.groupby("subject_id", sort=True).size()
    short = counts[counts < min_length]
    if len(short):
        listed = ", ".join(f"{sid!r} ({int(n)})" for sid, n in short.head(5).items())
        more = f" and {len(short) - 5} more" if len(short) > 5 else ""
        raise InputError(
            f"{len(short)} subject(s) have fewer than min_length={min_length} samples: "
            f"{listed}{more}. The grid's largest m and tau need (m_max - 1) * tau_max + 2 "
            "samples: lower m_max or tau_max, or drop these subjects"
        )


def validate_gaze(frame: pd.DataFrame, *, min_length: int | None = None) -> pd.DataFrame:
    """Check a gaze frame against the schema (module docstring) and return it normalised.

    Args:
        frame: long-format samples with the columns in :data:`COLUMNS` (extra columns are kept).
        min_length: smallest number of samples per subject, or None for no length check.

    Returns:
        A new frame: schema columns first (extras after), ``subject_id`` and ``group`` as text,
        ``t``, ``x``, ``y`` as float64, rows grouped by subject in order of first appearance
        (so in t order, checked), index 0..n-1.

    Raises:
        InputError: the first violated rule, naming the subject/row or column and the fix.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"gaze data must be a pandas DataFrame, got {type(frame).__name__}")
    if min_length is not None and (
        isinstance(min_length, bool)
        or not isinstance(min_length, int | np.integer)
        or min_length < 1
    ):
        raise InputError(f"min_length={min_length!r}: use an integer >= 1 (or None)")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"gaze data lacks column(s) {missing} (has {[str(c) for c in frame.columns]}): "
            f"the schema is {list(COLUMNS)}"
        )
    if len(frame) == 0:
        raise InputError("gaze data has no rows: pass at least one subject's samples")
    frame = frame.reset_index(drop=True)
    _check_labels(frame)
    for col in NUMERIC_COLUMNS:
        _check_numeric(frame, col)
    frame = frame.assign(
        subject_id=frame["subject_id"].astype(str), group=frame["group"].astype(str)
    )
    _check_groups(frame)
    _check_finite(frame)
    _check_time(frame)
    if min_length is not None:
        _check_length(frame, int(min_length))
    out = frame.astype({c: np.float64 for c in NUMERIC_COLUMNS})
    extras = [c for c in out.columns if c not in COLUMNS]
    out = out[list(COLUMNS) + extras]
    codes, _ = pd.factorize(out["subject_id"])
    return out.iloc[np.argsort(codes, kind="stable")].reset_index(drop=True)


def canonical_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The schema columns only, in a fixed form: text labels as Python ``str`` objects, numbers
    as float64, rows sorted by (subject_id, t). Equal data give equal frames, whatever the row
    order, file format or pandas string dtype."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"gaze data lacks column(s) {missing}: the schema is {list(COLUMNS)}")
    out = pd.DataFrame(
        {
            "subject_id": frame["subject_id"].astype(str).astype(object).to_numpy(),
            "group": frame["group"].astype(str).astype(object).to_numpy(),
            **{c: frame[c].to_numpy(dtype=np.float64) for c in NUMERIC_COLUMNS},
        }
    )
    out = out.sort_values(["subject_id", "t"], kind="stable").reset_index(drop=True)
    return out.astype({"subject_id": object, "group": object})


def dataset_ref(
    frame: pd.DataFrame, name: str, version: str, synthetic: bool, description: str = ""
) -> DatasetRef:
    """Identity of a gaze dataset: ``frame_digest`` of :func:`canonical_frame` (stable under row
    order). Validate first (:func:`validate_gaze`); this only normalises and hashes.

    Example:
        >>> ref = dataset_ref(validate_gaze(df), "my-study", "2024-05", synthetic=False)
    """
    return DatasetRef(
        name=name,
        version=version,
        digest=frame_digest(canonical_frame(frame)),
        synthetic=synthetic,
        description=description,
    )
