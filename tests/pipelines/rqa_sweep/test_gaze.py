"""The synthetic gaze generator: deterministic, in the schema, with measurable group differences."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from gpuflows.core.evidence.digest import frame_digest
from gpuflows.core.faults import InputError
from gpuflows.pipelines.rqa_sweep import gaze
from gpuflows.pipelines.rqa_sweep.schema import COLUMNS, GROUPS, dataset_ref, validate_gaze


@pytest.fixture(scope="module")
def smoke() -> pd.DataFrame:
    return gaze.generate_preset("smoke", seed=0)


def test_smoke_preset_schema_and_speed(smoke):
    start = time.perf_counter()
    gaze.generate_preset("smoke", seed=1)
    assert time.perf_counter() - start < 2.0
    p = gaze.PRESETS["smoke"]
    assert list(smoke.columns) == list(COLUMNS)
    assert len(smoke) == 3 * p.n_per_group * p.n_samples
    assert [str(smoke[c].dtype) for c in ("t", "x", "y")] == ["float64"] * 3
    assert smoke.groupby("group").size().to_dict() == {
        g: p.n_per_group * p.n_samples for g in GROUPS
    }
    pd.testing.assert_frame_equal(validate_gaze(smoke, min_length=p.n_samples), smoke)
    first = smoke[smoke["subject_id"] == "control-000"]
    assert np.allclose(np.diff(first["t"]), 1 / gaze.SAMPLE_RATE_HZ)
    assert smoke[["x", "y"]].min().min() >= 0.0 and smoke[["x", "y"]].max().max() <= 1.0
    assert gaze.PRESETS["seed"] == gaze.GazePreset(n_per_group=20, n_samples=5000)


def test_deterministic_per_seed(smoke):
    again = gaze.generate_preset("smoke", seed=0)
    assert frame_digest(again) == frame_digest(smoke)
    other = gaze.generate_preset("smoke", seed=1)
    assert frame_digest(other) != frame_digest(smoke)
    ref = dataset_ref(smoke, gaze.DATASET_NAME, gaze.DATASET_VERSION, synthetic=True)
    assert ref.digest == dataset_ref(again, "x", "y", synthetic=True).digest


def test_subjects_are_nested_across_sizes():
    """A subject's stream depends on (seed, group, index) only; shorter series are prefixes."""
    small = gaze.generate_dataset(n_per_group=2, n_samples=300, seed=4)
    large = gaze.generate_dataset(n_per_group=3, n_samples=900, seed=4)
    for sid, sub in small.groupby("subject_id"):
        big = large[large["subject_id"] == sid].iloc[:300]
        np.testing.assert_array_equal(sub[["x", "y"]].to_numpy(), big[["x", "y"]].to_numpy())


def test_series_vary_and_look_like_gaze(smoke):
    for _, sub in smoke.groupby("subject_id"):
        assert max(np.ptp(sub["x"]), np.ptp(sub["y"])) > 0.02  # at least one saccade
    x, y, ev = gaze.simulate_subject("control", 0, n_samples=2000, seed=0)
    assert ev["n"].sum() == 2000 and ev["kind"].iloc[0] == "fixation"
    assert set(ev["kind"][::2]) == {"fixation"} and set(ev["kind"][1::2]) == {"saccade"}
    step = np.hypot(np.diff(x), np.diff(y)) * gaze.SCREEN_DEG * gaze.SAMPLE_RATE_HZ  # deg/s
    inside = {k: np.zeros(2000, bool) for k in ("fixation", "saccade")}
    for r in ev.itertuples():
        inside[r.kind][r.start + 1 : r.start + r.n] = True
    fix_v, sacc_v = (np.median(step[inside[k][1:]]) for k in ("fixation", "saccade"))
    assert fix_v < 0.25 * sacc_v  # fixations slow (noise + drift), saccades fast


def _group_summary(n_subjects: int, seed: int) -> pd.DataFrame:
    rows = []
    for group in GROUPS:
        for i in range(n_subjects):
            x, y, ev = gaze.simulate_subject(group, i, n_samples=5000, seed=seed)
            fix = ev[(ev["kind"] == "fixation") & ~ev["truncated"]]
            sacc = ev[ev["kind"] == "saccade"]
            jitter = [
                np.hypot(np.diff(x[r.start : r.start + r.n]), np.diff(y[r.start : r.start + r.n]))
                for r in fix.itertuples()
            ]
            rows.append(
                {
                    "group": group,
                    "fix_ms": fix["duration_ms"].mean(),
                    "sacc_deg": sacc["amplitude_deg"].mean(),
                    "jitter": np.concatenate(jitter).mean() * gaze.SCREEN_DEG,
                }
            )
    return pd.DataFrame(rows).groupby("group")[["fix_ms", "sacc_deg", "jitter"]].mean()


@pytest.mark.parametrize("seed", [0, 1])
def test_group_parameters_differ_measurably(seed):
    s = _group_summary(n_subjects=8, seed=seed)
    assert s.loc["control", "fix_ms"] < s.loc["mci", "fix_ms"] < s.loc["ad", "fix_ms"]
    assert s.loc["control", "sacc_deg"] > s.loc["mci", "sacc_deg"] > s.loc["ad", "sacc_deg"]
    assert s.loc["control", "jitter"] < s.loc["ad", "jitter"]


def test_parameter_table_is_ordered():
    c, m, a = (gaze.GROUP_PARAMS[g] for g in GROUPS)
    assert c.fix_ms < m.fix_ms < a.fix_ms and c.sacc_deg > m.sacc_deg > a.sacc_deg
    assert c.drift_deg < m.drift_deg < a.drift_deg and c.msacc_hz < m.msacc_hz < a.msacc_hz


def test_bad_arguments():
    with pytest.raises(InputError, match="n_samples"):
        gaze.generate_dataset(n_per_group=1, n_samples=1)
    with pytest.raises(InputError, match="n_per_group"):
        gaze.generate_dataset(n_per_group=0, n_samples=10)
    with pytest.raises(InputError, match="seed"):
        gaze.generate_dataset(n_per_group=1, n_samples=10, seed=-1)
    with pytest.raises(InputError, match="group"):
        gaze.simulate_subject("healthy", 0, n_samples=10)
    with pytest.raises(InputError, match="preset"):
        gaze.generate_preset("huge")
