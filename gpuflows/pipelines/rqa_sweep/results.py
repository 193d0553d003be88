"""After compute: the (m, tau) unit results merged into the sweep's tables, written as Parquet.

``rqa_sweep.parquet`` (tidy, one row per subject x series x m x tau x eps x l_min, sorted by
those keys), ``features.parquet`` (:func:`gpuflows.pipelines.rqa_sweep.tables.derive_features`),
``stats.parquet`` (:func:`gpuflows.pipelines.rqa_sweep.tables.sweep_statistics`) and the plots
(:func:`gpuflows.pipelines.rqa_sweep.plots.plot_sweep`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gpuflows.core.store.io import atomic_write_parquet
from gpuflows.pipelines.rqa_sweep.plots import plot_sweep
from gpuflows.pipelines.rqa_sweep.tables import derive_features, sweep_statistics

TOP_N = 3
"""Combinations whose per-group distributions are plotted."""
SORT_KEYS = ["subject_id", "series", "m", "tau", "eps", "l_min"]


@dataclass
class SweepTables:
    """The sweep's tables in memory and where they were written."""

    tidy: pd.DataFrame
    features: pd.DataFrame
    stats: pd.DataFrame
    table: Path
    features_path: Path
    stats_path: Path
    plots: list[str]
    top: pd.DataFrame


def merge_units(results: list[dict], frame: pd.DataFrame) -> pd.DataFrame:
    """The tidy table of every unit's ``columns``, with each subject's group from ``frame``,
    sorted by :data:`SORT_KEYS` (stable)."""
    groups = frame.drop_duplicates("subject_id").set_index("subject_id")["group"]
    tidy = pd.concat([pd.DataFrame(r["columns"]) for r in results], ignore_index=True)
    tidy.insert(1, "group", tidy["subject_id"].map(groups))
    return tidy.sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)


def write_sweep_tables(
    results: list[dict], frame: pd.DataFrame, out: Path, top_n: int = TOP_N
) -> SweepTables:
    """Merge, derive, test and plot; write the three Parquet tables and the plots under ``out``."""
    tidy = merge_units(results, frame)
    table = atomic_write_parquet(out / "rqa_sweep.parquet", tidy)
    features = derive_features(tidy)
    atomic_write_parquet(out / "features.parquet", features)
    stats = sweep_statistics(tidy, features)
    atomic_write_parquet(out / "stats.parquet", stats)
    plots, top = plot_sweep(tidy, features, stats, out, top_n=top_n)
    return SweepTables(
        tidy=tidy,
        features=features,
        stats=stats,
        table=table,
        features_path=out / "features.parquet",
        stats_path=out / "stats.parquet",
        plots=plots,
        top=top,
    )
