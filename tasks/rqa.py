"""Tasks of the ``rqa-sweep`` flow: one cached task per (m, tau) over every subject and series.

Granularity: the overhead benchmark (README, "Caching and resume") measured 4.8 ms per uncached
task and 7.7 ms per cache hit on this 2-core host; a task should carry seconds of work. One
(series, m, tau) at smoke scale (N <= 300) takes milliseconds, and even at seed scale
(N ~ 5,000) a few hundred ms on the CPU and far less on a GPU, so every subject and series of
one (m, tau) is batched into one task: 60 tasks for the full 10,200-combination grid, each
computing all eps (one distance pass) and reading every l_min from the histograms.

The cache key is the house policy: the series arrays by content digest, the grid, the options,
the task source and the kernel version. The device is left out of the key: float64 results are
integer-identical on every backend (``gpuflows.pipelines.rqa_sweep.engine``), so a resumed run may use another.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from prefect import get_run_logger, task

from gpuflows.core.faults import run_with_oom_fallback
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.memory.budget import VramEstimate
from gpuflows.pipelines.rqa_sweep import engine as rqa_engine
from gpuflows.pipelines.rqa_sweep.tables import METRIC_NAMES
from tasks.caching import house_cache_policy
from tasks.retries import retry_options
from tasks.runners import device_here
from tasks.vram import vram_budget

KEY_SEP = "|"
"""Separator of ``subject_id`` and series name in the task's input keys."""

#: Real executions of :func:`rqa_mt` in this process (tests count re-runs with it).
EXECUTIONS: list[tuple[int, int]] = []


def cpu_backend() -> str:
    """The exact CPU backend used here: numba when installed, else vectorised NumPy."""
    return "numba" if rqa_engine.HAVE_NUMBA else "numpy"


def estimate_vram(series: dict[str, np.ndarray], m: int, tau: int, n_eps: int) -> VramEstimate:
    """Peak device bytes of the largest series of one (m, tau) task, at the torch default tile."""
    from gpuflows.pipelines.rqa_sweep import engine_torch as rqa_torch

    worst, basis = 0, "no series"
    budget = rqa_torch.DEFAULT_BUDGET_BYTES["cuda"]
    for key, arr in series.items():
        n = int(arr.shape[0])
        d = 1 if arr.ndim == 1 else int(arr.shape[1])
        N = n - (m - 1) * tau
        tile = rqa_torch.choose_tile(N, d, n_eps, n, "float64", budget)
        b = rqa_torch.estimate_bytes(N, d, tile, n_eps, n=n)
        if b > worst:
            worst, basis = (
                b,
                f"rqa_torch.estimate_bytes(N={N}, d={d}, tile={tile}, E={n_eps}) of {key}",
            )
    return VramEstimate(nbytes=worst, basis=basis)


def _sweep_one(arr, m, tau, eps, *, metric, theiler, normalize, tile, device, dtype="float64"):
    if device.startswith("cuda") or dtype == "float32":  # float32 is a torch-backend option
        import torch

        return rqa_engine.sweep_histograms(
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
    return rqa_engine.sweep_histograms(
        arr,
        m,
        tau,
        eps,
        metric=metric,
        theiler=theiler,
        normalize=normalize,
        backend=cpu_backend(),
    )


@task(
    cache_policy=house_cache_policy(exclude=("choice",)),
    task_run_name="rqa-m{m}-tau{tau}",
    **retry_options(retries=2),
)
def rqa_mt(
    series: dict[str, np.ndarray],
    m: int,
    tau: int,
    eps: list[float],
    l_min: list[int],
    v_min: int,
    metric: str,
    theiler: int,
    normalize: bool,
    choice: DeviceChoice,
    dtype: str = "float64",
) -> dict[str, Any]:
    """RQA measures of every ``"subject|series"`` array for one (m, tau), all eps x l_min.

    Returns plain JSON data: ``columns`` (tidy, one entry per key x eps x l_min: subject_id,
    series, m, tau, eps, l_min, N and :data:`METRIC_NAMES`), ``backend``, ``device`` (used),
    ``fallbacks`` (OOM attempts that failed), ``seconds`` and ``flipped_pairs`` (float32 only:
    recurrence entries whose float32 decision differs from float64, summed; else None).
    """
    t0 = time.perf_counter()
    choice = device_here(choice)  # on a Dask worker pinned to one GPU: that GPU
    cols: dict[str, list] = {
        k: [] for k in ("subject_id", "series", "m", "tau", "eps", "l_min", "N", *METRIC_NAMES)
    }
    backends, failed, flipped = set(), [], None
    devices_used = set()
    for key, arr in series.items():
        subject, name = key.split(KEY_SEP, 1)
        est = estimate_vram({key: arr}, m, tau, len(eps)) if choice.kind == "cuda" else None
        if est is not None:
            from gpuflows.pipelines.rqa_sweep import engine_torch as rqa_torch

            n = int(arr.shape[0])
            d = 1 if arr.ndim == 1 else int(arr.shape[1])
            N = n - (m - 1) * tau
            tile0 = rqa_torch.choose_tile(
                N, d, len(eps), n, "float64", rqa_torch.DEFAULT_BUDGET_BYTES["cuda"]
            )
            with vram_budget(est, device=choice):
                h, rec = run_with_oom_fallback(
                    lambda tile, dev, arr=arr: _sweep_one(
                        arr,
                        m,
                        tau,
                        eps,
                        metric=metric,
                        theiler=theiler,
                        normalize=normalize,
                        tile=tile,
                        device=dev,
                        dtype=dtype,
                    ),
                    batch_size=tile0,
                    device=choice.device,
                    min_batch_size=16,
                )
            failed += [a.model_dump() for a in rec.attempts if not a.ok]
            devices_used.add(rec.final.device)
        else:
            h = _sweep_one(
                arr,
                m,
                tau,
                eps,
                metric=metric,
                theiler=theiler,
                normalize=normalize,
                tile=None,
                device="cpu",
                dtype=dtype,
            )
            devices_used.add("cpu")
        backends.add(h.backend)
        if h.flipped_pairs is not None:
            flipped = (flipped or 0) + h.flipped_pairs
        table = h.table(l_min, v_min)
        rows = len(table["eps"])
        cols["subject_id"] += [subject] * rows
        cols["series"] += [name] * rows
        cols["m"] += [m] * rows
        cols["tau"] += [tau] * rows
        for k in ("eps", "l_min", "N", *METRIC_NAMES):
            cols[k] += table[k].tolist()
    EXECUTIONS.append((m, tau))
    seconds = time.perf_counter() - t0
    get_run_logger().info(
        "m=%d tau=%d: %d series x %d eps x %d l_min in %.2f s (%s)",
        m,
        tau,
        len(series),
        len(eps),
        len(l_min),
        seconds,
        ",".join(sorted(backends)),
    )
    return {
        "columns": cols,
        "backend": ",".join(sorted(backends)),
        "device": ",".join(sorted(devices_used)),
        "fallbacks": failed,
        "seconds": seconds,
        "flipped_pairs": flipped,
    }
