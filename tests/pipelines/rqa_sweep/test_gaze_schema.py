"""The gaze input schema: every bad input fails with InputError naming the subject or field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuflows.core.faults import InputError
from gpuflows.pipelines.rqa_sweep.schema import COLUMNS, dataset_ref, load_gaze, validate_gaze


def _frame() -> pd.DataFrame:
    rows = []
    for sid, group in (("s1", "control"), ("s2", "mci"), ("s3", "ad")):
        for k in range(6):
            rows.append({"subject_id": sid, "group": group, "t": k * 0.004, "x": 0.1 * k, "y": 0.5})
    return pd.DataFrame(rows)


def test_valid_frame_is_normalised():
    raw = _frame()
    raw["extra"] = 1
    interleaved = raw.iloc[np.argsort(np.tile(np.arange(6), 3), kind="stable")]
    out = validate_gaze(interleaved)  # grouped by subject, first appearance order kept
    assert out["subject_id"].tolist() == raw["subject_id"].tolist()
    assert list(out.columns) == [*COLUMNS, "extra"]
    assert [str(out[c].dtype) for c in ("t", "x", "y")] == ["float64"] * 3
    assert out.groupby("subject_id")["t"].apply(lambda s: s.is_monotonic_increasing).all()
    assert validate_gaze(_frame(), min_length=6).shape == (18, 5)


def _bad(frame: pd.DataFrame, *words: str, min_length: int | None = None) -> None:
    with pytest.raises(InputError) as info:
        validate_gaze(frame, min_length=min_length)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_missing_column():
    _bad(_frame().drop(columns=["y"]), "['y']", "schema")


def test_wrong_dtypes():
    f = _frame()
    f["x"] = f["x"].astype(object)
    f.loc[7, "x"] = "abc"
    _bad(f, "'x'", "'abc'", "subject_id='s2'", "row 7")
    f = _frame()
    f["t"] = True
    _bad(f, "'t'", "boolean")
    f = _frame()
    f["group"] = 1
    _bad(f, "'group'", "control")
    f = _frame()
    f["subject_id"] = 1.5
    _bad(f, "'subject_id'", "float64")
    f = _frame()
    f.loc[3, "subject_id"] = None
    _bad(f, "'subject_id'", "row 3")


@pytest.mark.parametrize("col", ["t", "x", "y"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite(col, value):
    f = _frame()
    f.loc[9, col] = value
    _bad(f, f"{col}=", "subject_id='s2'", "row 9")


def test_unknown_group_lists_allowed():
    f = _frame()
    f.loc[f["subject_id"] == "s3", "group"] = "AD"
    _bad(f, "'AD'", "subject_id='s3'", "['control', 'mci', 'ad']")


def test_subject_in_two_groups():
    f = _frame()
    f.loc[14, "group"] = "control"
    _bad(f, "subject_id='s3'", "several groups")


def test_duplicate_times():
    f = _frame()
    f.loc[4, "t"] = f.loc[3, "t"]
    _bad(f, "duplicate", "subject_id='s1'", "row 4")


def test_time_going_back():
    f = _frame()
    f.loc[[8, 9], "t"] = f.loc[[9, 8], "t"].to_numpy()
    _bad(f, "subject_id='s2'", "row 9", "increase")


def test_too_short():
    f = _frame()
    f = f[~((f["subject_id"] == "s2") & (f["t"] > 0.01))]
    _bad(f, "min_length=6", "'s2' (3)", "m_max", min_length=6)
    with pytest.raises(InputError, match="min_length"):
        validate_gaze(_frame(), min_length=0)


def test_empty_and_not_a_frame():
    _bad(_frame().iloc[:0], "no rows")
    with pytest.raises(InputError, match="DataFrame"):
        validate_gaze({"subject_id": []})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip(tmp_path, suffix):
    f = _frame()
    f["subject_id"] = np.repeat(["007", "008", "009"], 6)  # leading zeros must survive CSV
    f = f.sort_values(["subject_id", "t"]).reset_index(drop=True)
    path = tmp_path / f"gaze{suffix}"
    f.to_csv(path, index=False) if suffix == ".csv" else f.to_parquet(path, index=False)
    back = load_gaze(path, min_length=6)
    assert back["subject_id"].tolist() == f.sort_values(["subject_id", "t"])["subject_id"].tolist()
    ref = dataset_ref(validate_gaze(f), "t", "1", synthetic=True)
    assert dataset_ref(back, "t", "1", synthetic=True).digest == ref.digest


def test_load_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_gaze(tmp_path / "nope.csv")
    (tmp_path / "g.txt").write_text("x")
    with pytest.raises(InputError, match="unknown format"):
        load_gaze(tmp_path / "g.txt")
    (tmp_path / "g.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="could not be read"):
        load_gaze(tmp_path / "g.parquet")
    _frame().drop(columns=["t"]).to_csv(tmp_path / "g.csv", index=False)
    with pytest.raises(InputError, match="'t'"):
        load_gaze(tmp_path / "g.csv")


def test_dataset_ref_stable_under_shuffling():
    f = _frame()
    ref = dataset_ref(f, "gaze", "1.0", synthetic=True)
    assert ref.digest.startswith("blake2b:") and ref.synthetic and ref.version == "1.0"
    shuffled = f.sample(frac=1.0, random_state=3)
    assert dataset_ref(shuffled, "gaze", "1.0", synthetic=True).digest == ref.digest
    changed = f.copy()
    changed.loc[5, "x"] += 1e-9
    assert dataset_ref(changed, "gaze", "1.0", synthetic=True).digest != ref.digest


def test_a_folder_is_not_reported_as_missing(tmp_path):
    with pytest.raises(InputError, match="is a folder, not a file"):
        load_gaze(tmp_path)


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_csv_with_another_delimiter_gets_a_hint(tmp_path, sep, word):
    f = tmp_path / "gaze.csv"
    f.write_text(
        sep.join(["subject_id", "group", "t", "x", "y"])
        + "\n"
        + sep.join("s1 control 0 0.1 0.2".split())
        + "\n"
    )
    with pytest.raises(InputError, match=f"separated by {word}.*comma-separated"):
        load_gaze(f)
