"""One (m, tau) compute unit of the sweep, Prefect-free: the backend call per series, its VRAM
estimate and tile, and the unit's tidy columns.

``tasks.rqa.rqa_mt`` runs a unit as a cached Prefect task (VRAM budget, OOM fallback, logging);
everything it computes is here.
"""

from __future__ import annotations

import numpy as np

from gpuflows.core.memory.budget import VramEstimate
from gpuflows.pipelines.rqa_sweep.engine import (
    HAVE_NUMBA,
    SweepHistograms,
    sweep_histograms,
    sweep_units,
)
from gpuflows.pipelines.rqa_sweep.tables import METRIC_NAMES

COLUMNS = ("subject_id", "series", "m", "tau", "eps", "l_min", "N", *METRIC_NAMES)
"""Columns of a unit's tidy table, in order."""


def cpu_backend() -> str:
    """The exact CPU backend used here: numba when installed, else vectorised NumPy."""
    return "numba" if HAVE_NUMBA else "numpy"


def sweep_one(
    arr, m, tau, eps, *, metric, theiler, normalize, tile, device, dtype="float64"
) -> SweepHistograms:
    """Histograms of one series for every eps: torch on a CUDA ``device`` (tiles of ``tile``)
    or for ``dtype="float32"`` (a torch-backend option), else :func:`cpu_backend`."""
    if device.startswith("cuda") or dtype == "float32":
        import torch

        return sweep_histograms(
            arr,
            m,
            tau,
            eps,
            metric=metric,
            theiler=theiler,
            normalize=normalize,
            backend="torch",
            tile=tile,
            device=torch.device(device),
            dtype=dtype,
        )
    return sweep_histograms(
        arr,
        m,
        tau,
        eps,
        metric=metric,
        theiler=theiler,
        normalize=normalize,
        backend=cpu_backend(),
    )


def sweep_cpu(
    series: dict[str, np.ndarray], m: int, tau: int, eps, *, metric, theiler, normalize
) -> dict[str, SweepHistograms]:
    """Every series' float64 histograms of one (m, tau) on the CPU in one call, keyed as
    ``series``: with numba all of them in one parallel region (``engine.sweep_units``, both
    cores busy however short each series is), else NumPy one by one. Equal, integer for
    integer, to :func:`sweep_one` per series on the CPU."""
    keys = list(series)
    hs = sweep_units(
        [series[k] for k in keys],
        [(i, m, tau) for i in range(len(keys))],
        eps,
        metric=metric,
        theiler=theiler,
        normalize=normalize,
        backend=cpu_backend(),
    )
    return dict(zip(keys, hs, strict=True))


def default_tile(arr: np.ndarray, m: int, tau: int, n_eps: int) -> tuple[int, int, int]:
    """(N, d, tile): embedded vectors, components and the torch tile of ``arr`` at the default
    CUDA budget (float64)."""
    import gpuflows.pipelines.rqa_sweep.engine_torch as rqa_torch

    n = int(arr.shape[0])
    d = 1 if arr.ndim == 1 else int(arr.shape[1])
    N = n - (m - 1) * tau
    budget = rqa_torch.DEFAULT_BUDGET_BYTES["cuda"]
    return N, d, rqa_torch.choose_tile(N, d, n_eps, n, "float64", budget)


def estimate_vram(series: dict[str, np.ndarray], m: int, tau: int, n_eps: int) -> VramEstimate:
    """Peak device bytes of the largest series of one (m, tau) task, at the torch default tile."""
    import gpuflows.pipelines.rqa_sweep.engine_torch as rqa_torch

    worst, basis = 0, "no series"
    for key, arr in series.items():
        N, d, tile = default_tile(arr, m, tau, n_eps)
        b = rqa_torch.estimate_bytes(N, d, tile, n_eps, n=int(arr.shape[0]))
        if b > worst:
            worst, basis = (
                b,
                f"rqa_torch.estimate_bytes(N={N}, d={d}, tile={tile}, E={n_eps}) of {key}",
            )
    return VramEstimate(nbytes=worst, basis=basis)


class UnitColumns:
    """The tidy columns of one (m, tau) unit, filled series by series (plain lists: JSON)."""

    def __init__(self, m: int, tau: int) -> None:
        self.m, self.tau = m, tau
        self.columns: dict[str, list] = {k: [] for k in COLUMNS}

    def add(self, subject: str, name: str, h: SweepHistograms, l_min, v_min) -> None:
        """Every eps x l_min row of one series' histograms."""
        table = h.table(l_min, v_min)
        rows = len(table["eps"])
        cols = self.columns
        cols["subject_id"] += [subject] * rows
        cols["series"] += [name] * rows
        cols["m"] += [self.m] * rows
        cols["tau"] += [self.tau] * rows
        for k in ("eps", "l_min", "N", *METRIC_NAMES):
            cols[k] += table[k].tolist()
