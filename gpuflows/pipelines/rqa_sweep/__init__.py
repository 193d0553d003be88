"""rqa-sweep: recurrence quantification over a parameter grid, group statistics, a tiered report.

The public surface the flow (``flows.rqa_sweep``) and its tasks (``tasks.rqa``) use; the modules
behind it, by concern: :mod:`.params` (the flow's parameters), :mod:`.data` and :mod:`.schema`
(gaze input, bad-input errors), :mod:`.gaze` (synthetic data), :mod:`.grid` (presets, compute
units), :mod:`.units` (one (m, tau) unit), :mod:`.engine` with its backends
(:mod:`.engine_numba`, :mod:`.engine_numba_multi` — one pass per (series, tau) for every m —,
:mod:`.engine_numpy`, :mod:`.engine_torch`, :mod:`.engine_cupy`, shared :mod:`.kernels`) and
the NumPy reference :mod:`.rqa`, :mod:`.measures` (:mod:`.measures_batch`: many units' tables at
once), :mod:`.tables` and :mod:`.stats`
(features, statistics), :mod:`.results` (merged Parquet tables), :mod:`.plots`,
:mod:`.evidence` and :mod:`.report` (Trust Tier inputs, summary). Bad input raises
``InputError``.
"""

from gpuflows.core.faults import InputError
from gpuflows.pipelines.rqa_sweep.data import KEY_SEP, load_sweep_data, series_arrays, split_key
from gpuflows.pipelines.rqa_sweep.evidence import sweep_lock
from gpuflows.pipelines.rqa_sweep.grid import (
    PRESETS,
    combinations_per_unit,
    compute_units,
    expand_units,
    units_by_pair,
)
from gpuflows.pipelines.rqa_sweep.params import DEFAULT_MAX_COMBINATIONS, RqaSweepParams
from gpuflows.pipelines.rqa_sweep.report import SweepReport, build_report
from gpuflows.pipelines.rqa_sweep.results import TOP_N, SweepTables, write_sweep_tables
from gpuflows.pipelines.rqa_sweep.tables import METRIC_NAMES
from gpuflows.pipelines.rqa_sweep.units import (
    UnitColumns,
    cpu_backend,
    default_tile,
    estimate_vram,
    sweep_cpu,
    sweep_one,
)

__all__ = [
    "DEFAULT_MAX_COMBINATIONS",
    "InputError",
    "KEY_SEP",
    "METRIC_NAMES",
    "PRESETS",
    "TOP_N",
    "RqaSweepParams",
    "SweepReport",
    "SweepTables",
    "UnitColumns",
    "build_report",
    "combinations_per_unit",
    "compute_units",
    "cpu_backend",
    "default_tile",
    "estimate_vram",
    "expand_units",
    "load_sweep_data",
    "series_arrays",
    "split_key",
    "sweep_lock",
    "sweep_cpu",
    "sweep_one",
    "units_by_pair",
    "write_sweep_tables",
]
