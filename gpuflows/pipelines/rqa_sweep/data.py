"""The sweep's input: the gaze table (a file, or the embedded synthetic set) and its series.

:func:`load_sweep_data` reads and validates before any compute (bad data fails naming the
subject, column or group), and returns the dataset record the environment lock keeps.
:func:`series_arrays` cuts the table into one array per ``"subject|series"``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gpuflows.core.evidence.digest import file_digest
from gpuflows.core.evidence.envlock import DatasetRef
from gpuflows.pipelines.rqa_sweep.gaze import DATASET_NAME, DATASET_VERSION, generate_preset
from gpuflows.pipelines.rqa_sweep.params import GAZE_SIZE, RqaSweepParams
from gpuflows.pipelines.rqa_sweep.schema import dataset_ref, load_gaze, validate_gaze

KEY_SEP = "|"
"""Separator of ``subject_id`` and series name in the (m, tau) unit's input keys."""


def load_sweep_data(p: RqaSweepParams) -> tuple[pd.DataFrame, DatasetRef, bool]:
    """(validated gaze frame, its dataset record, synthetic?) for the sweep ``p``.

    ``p.data_path`` set: that Parquet/CSV file, recorded by name and content digest. Empty: the
    embedded synthetic set of ``p.preset``'s size, generated from ``p.seed``.

    Raises:
        InputError: the data does not meet the schema or is shorter than the grid needs.
    """
    if p.data_path:
        frame = load_gaze(p.data_path, min_length=p.min_length)
        ref = dataset_ref(frame, Path(p.data_path).name, file_digest(p.data_path)[:12], False)
        return frame, ref, False
    frame = validate_gaze(
        generate_preset(GAZE_SIZE[p.preset], seed=p.seed), min_length=p.min_length
    )
    ref = dataset_ref(
        frame,
        DATASET_NAME,
        DATASET_VERSION,
        True,
        f"gpuflows.pipelines.rqa_sweep.gaze preset {GAZE_SIZE[p.preset]!r}, seed {p.seed}",
    )
    return frame, ref, True


def series_arrays(frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    """``{"subject|series": array}`` for each subject and each of ``names`` (x, y: (n,); xy:
    (n, 2)), contiguous float64, subjects in the frame's order."""
    out = {}
    for sid, sub in frame.groupby("subject_id", sort=False):
        xy = sub[["x", "y"]].to_numpy(np.float64)
        arrays = {"x": xy[:, 0].copy(), "y": xy[:, 1].copy(), "xy": xy}
        for name in names:
            out[f"{sid}{KEY_SEP}{name}"] = np.ascontiguousarray(arrays[name])
    return out


def split_key(key: str) -> tuple[str, str]:
    """(subject_id, series name) of a :func:`series_arrays` key."""
    subject, name = key.split(KEY_SEP, 1)
    return subject, name
