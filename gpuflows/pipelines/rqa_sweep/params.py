"""Parameters of the ``rqa-sweep`` flow: the form in the Prefect UI, validated before any compute.

The grid (m, tau, eps, l_min) defaults to a named preset (:data:`gpuflows.pipelines.rqa_sweep.grid.
PRESETS`); each list is sorted and de-duplicated, and a grid larger than ``max_combinations``
fails naming that field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gpuflows.core.hardware.runner_spec import TaskRunnerSpec
from gpuflows.pipelines.rqa_sweep.grid import PRESETS
from gpuflows.pipelines.rqa_sweep.kernels import MAX_EPS

DEFAULT_MAX_COMBINATIONS = 10_200
"""Largest grid (m x tau x eps x l_min) run without raising ``max_combinations``: the full grid."""

GAZE_SIZE = {"smoke": "smoke", "seed-test": "seed", "full": "seed"}
"""Size of the embedded synthetic dataset per preset
(``gpuflows.pipelines.rqa_sweep.gaze.PRESETS``)."""

PosInt = Annotated[int, Field(ge=1)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class RqaSweepParams(BaseModel):
    """Parameters of ``rqa-sweep`` (the form in the Prefect UI). Unknown names are errors."""

    model_config = ConfigDict(extra="forbid")

    data_path: str | None = Field(
        None,
        description=(
            "Gaze file (Parquet or CSV, gpuflows.pipelines.rqa_sweep.schema); empty: synthetic."
        ),
    )
    preset: Literal["smoke", "seed-test", "full"] = Field(
        "smoke", description="Grid (and synthetic data size) unless overridden below."
    )
    m: list[PosInt] | None = Field(None, min_length=1, description="Embedding dimensions.")
    tau: list[PosInt] | None = Field(None, min_length=1, description="Delays in samples.")
    eps: list[PosFloat] | None = Field(
        None, min_length=1, max_length=MAX_EPS, description="Radii > 0 (z-score units)."
    )
    l_min: list[PosInt] | None = Field(None, min_length=1, description="Minimum diagonal lines.")
    v_min: int = Field(2, ge=1, description="Minimum vertical line length (LAM, TT).")
    series: list[Literal["x", "y", "xy"]] = Field(
        default_factory=lambda: ["x", "y", "xy"],
        min_length=1,
        description="Series analysed: x, y, and the joint 2-D (x, y) embedding.",
    )
    metric: Literal["euclidean", "supremum", "manhattan"] = Field(
        "euclidean", description="Distance between embedded vectors."
    )
    theiler: int = Field(1, ge=0, description="Theiler window w (1 = exclude only the LOI).")
    normalize: bool = Field(True, description="Z-score each series (population std) first.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto' (GPU if any, else CPU, recorded), 'cpu' or 'cuda'."
    )
    dtype: Literal["float64", "float32"] = Field(
        "float64",
        description=(
            "Distance dtype: float64 is exact (equal to the reference); float32 (torch backend) "
            "is faster on GPUs but flips recurrences within rounding of eps: counted and reported."
        ),
    )
    max_combinations: int = Field(
        DEFAULT_MAX_COMBINATIONS,
        ge=1,
        description="Guard: a larger m x tau x eps x l_min grid fails unless this is raised.",
    )
    seed: int = Field(0, ge=0, description="Seed of the synthetic generator and of the lock.")
    monitor_interval_s: float = Field(1.0, gt=0, description="GPU monitor sampling interval.")
    task_runner: TaskRunnerSpec = Field(
        default_factory=TaskRunnerSpec,
        description=(
            "Where the (m, tau) tasks run: 'thread' (this flow-run process, one after another) "
            "or 'dask' (a subflow whose tasks spread over a local cluster, one pinned worker "
            "per GPU, or over the cluster at address)."
        ),
    )

    @model_validator(mode="after")
    def _grid(self) -> RqaSweepParams:
        for name in ("m", "tau", "eps", "l_min"):
            values = getattr(self, name)
            values = PRESETS[self.preset][name] if values is None else values
            setattr(self, name, sorted(set(values)))
        if len(set(self.series)) != len(self.series):
            raise ValueError(f"series={self.series}: list each series once")
        n = self.n_combinations
        if n > self.max_combinations:
            raise ValueError(
                f"max_combinations: the grid has {n:,} combinations (m x tau x eps x l_min) > "
                f"max_combinations={self.max_combinations:,}; narrow the grid or raise "
                "max_combinations explicitly"
            )
        return self

    @property
    def n_combinations(self) -> int:
        return len(self.m) * len(self.tau) * len(self.eps) * len(self.l_min)

    @property
    def min_length(self) -> int:
        """Shortest series the grid allows: (m_max - 1) * tau_max + 2."""
        return (max(self.m) - 1) * max(self.tau) + 2
