"""The sweep's tables after compute: derived features and group statistics (pure pandas).

Derived features (step 3): ``DET_x_over_y`` and ``LAM_x_over_y`` (horizontal vs vertical
determinism/laminarity), ``DET_joint_minus_marginal`` and ``RR_joint_minus_marginal`` (what the
joint (x, y) embedding adds over the mean of the two marginals).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gpuflows.pipelines.rqa_sweep.stats import adjust_fdr, group_statistics

METRIC_NAMES = ("RR", "DET", "L_max", "L_mean", "DIV", "ENT", "LAM", "TT", "V_max")
"""RQA measures in the sweep table (definitions: :mod:`gpuflows.pipelines.rqa_sweep.rqa`)."""
L_MIN_FREE = ("RR", "L_max", "DIV", "LAM", "TT", "V_max")
"""Measures that do not depend on l_min (tested once per (series, m, tau, eps))."""


def derive_features(tidy: pd.DataFrame) -> pd.DataFrame:
    """Derived features (module docstring, step 3), long format: ``..., feature, value``."""
    keys = ["subject_id", "group", "m", "tau", "eps", "l_min"]
    wide = tidy.pivot_table(index=keys, columns="series", values=["DET", "LAM", "RR"], dropna=False)
    have = set(tidy["series"])
    feats = pd.DataFrame(index=wide.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        if {"x", "y"} <= have:
            for met in ("DET", "LAM"):
                ratio = wide[(met, "x")] / wide[(met, "y")]
                feats[f"{met}_x_over_y"] = ratio.where(np.isfinite(ratio))
        if {"x", "y", "xy"} <= have:
            for met in ("DET", "RR"):
                marg = (wide[(met, "x")] + wide[(met, "y")]) / 2
                feats[f"{met}_joint_minus_marginal"] = wide[(met, "xy")] - marg
    if feats.shape[1] == 0:
        return pd.DataFrame(columns=[*keys, "feature", "value"])
    return feats.reset_index().melt(id_vars=keys, var_name="feature", value_name="value")


def sweep_statistics(tidy: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """Group statistics for every combination x measure (and derived feature), BH over all."""
    combo = ["series", "m", "tau", "eps", "l_min"]
    l0 = tidy["l_min"].min()
    dep = [c for c in METRIC_NAMES if c not in L_MIN_FREE]
    parts = [
        group_statistics(tidy, dep, combo, fdr=False),
        group_statistics(tidy[tidy["l_min"] == l0], list(L_MIN_FREE), combo, fdr=False),
    ]
    if len(features):
        f = features.assign(series="derived").pivot_table(
            index=["subject_id", "group", *combo], columns="feature", values="value", dropna=False
        )
        f = f.reset_index()
        parts.append(
            group_statistics(
                f,
                [c for c in f.columns if c not in ("subject_id", "group", *combo)],
                combo,
                fdr=False,
            )
        )
    return adjust_fdr(pd.concat(parts, ignore_index=True))
