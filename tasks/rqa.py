"""Tasks of the ``rqa-sweep`` flow: one cached task per (m, tau) over every subject and series.

Granularity: the overhead benchmark (README, "Caching and resume") measured 4.8 ms per uncached
task and 7.7 ms per cache hit on this 2-core host; a task should carry seconds of work. One
(series, m, tau) at smoke scale (N <= 300) takes milliseconds, and even at seed scale
(N ~ 5,000) a few hundred ms on the CPU and far less on a GPU, so every subject and series of
one (m, tau) is batched into one task: 60 tasks for the full 10,200-combination grid, each
computing all eps (one distance pass) and reading every l_min from the histograms.

The cache key is the house policy: the series arrays by content digest, the grid, the options,
the task source and the kernel version. The device is left out of the key: float64 results are
integer-identical on every backend (``gpuflows.pipelines.rqa_sweep.engine``), so a resumed run
may use another. The compute itself is Prefect-free (``gpuflows.pipelines.rqa_sweep.units``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from prefect import get_run_logger, task
from prefect.futures import as_completed

from gpuflows.core.faults import run_with_oom_fallback
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.pipelines.rqa_sweep import (
    RqaSweepParams,
    UnitColumns,
    combinations_per_unit,
    default_tile,
    estimate_vram,
    split_key,
    sweep_cpu,
    sweep_one,
)
from tasks.caching import house_cache_policy
from tasks.progress import RunProgress
from tasks.retries import retry_options
from tasks.runners import device_here, gpu_resources
from tasks.vram import vram_budget


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
    series, m, tau, eps, l_min, N and the RQA measures), ``backend``, ``device`` (used),
    ``fallbacks`` (OOM attempts that failed), ``seconds`` and ``flipped_pairs`` (float32 only:
    recurrence entries whose float32 decision differs from float64, summed; else None).
    """
    t0 = time.perf_counter()
    choice = device_here(choice)  # on a Dask worker pinned to one GPU: that GPU
    unit = UnitColumns(m, tau)
    backends, failed, flipped = set(), [], None
    devices_used = set()
    opts = {"metric": metric, "theiler": theiler, "normalize": normalize, "dtype": dtype}
    # on the CPU every series of this (m, tau) in one call: one parallel region, both cores busy
    cpu = (
        sweep_cpu(series, m, tau, eps, metric=metric, theiler=theiler, normalize=normalize)
        if choice.kind != "cuda" and dtype == "float64"
        else {}
    )
    for key, arr in series.items():
        subject, name = split_key(key)
        if choice.kind == "cuda":
            est = estimate_vram({key: arr}, m, tau, len(eps))
            with vram_budget(est, device=choice):
                h, rec = run_with_oom_fallback(
                    lambda tile, dev, arr=arr: sweep_one(
                        arr, m, tau, eps, tile=tile, device=dev, **opts
                    ),
                    batch_size=default_tile(arr, m, tau, len(eps))[2],
                    device=choice.device,
                    min_batch_size=16,
                )
            failed += [a.model_dump() for a in rec.attempts if not a.ok]
            devices_used.add(rec.final.device)
        else:
            h = cpu.get(key) or sweep_one(arr, m, tau, eps, tile=None, device="cpu", **opts)
            devices_used.add("cpu")
        backends.add(h.backend)
        if h.flipped_pairs is not None:
            flipped = (flipped or 0) + h.flipped_pairs
        unit.add(subject, name, h, l_min, v_min)
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
        "columns": unit.columns,
        "backend": ",".join(sorted(backends)),
        "device": ",".join(sorted(devices_used)),
        "fallbacks": failed,
        "seconds": seconds,
        "flipped_pairs": flipped,
    }


def unit_args(p: RqaSweepParams, choice: DeviceChoice) -> tuple:
    """The arguments of :func:`rqa_mt` after (series, m, tau) for the sweep ``p``."""
    return (list(p.eps), list(p.l_min), p.v_min, p.metric, p.theiler, p.normalize, choice, p.dtype)


def sweep_progress(p: RqaSweepParams, key: str) -> tuple[RunProgress, dict[tuple[int, int], int]]:
    """The run's progress artifact in grid combinations, and the combinations each computed
    (m, tau) unit accounts for (m = 1 stands for every tau)."""
    per_unit = combinations_per_unit(p.m, p.tau, len(p.eps), len(p.l_min))
    prog = RunProgress(key, total=p.n_combinations, what="combinations", min_interval_s=0.0)
    return prog, per_unit


def run_units(
    series: dict[str, np.ndarray], p: RqaSweepParams, choice: DeviceChoice, progress_key: str
) -> dict[tuple[int, int], dict]:
    """Each distinct (m, tau) once, one after another in this process (the GPU, if any, is
    used by one unit at a time). m = 1 is computed at its first tau only (tau is irrelevant)."""
    progress, per_unit = sweep_progress(p, progress_key)
    computed: dict[tuple[int, int], dict] = {}
    for m, tau in per_unit:
        computed[(m, tau)] = rqa_mt(series, m, tau, *unit_args(p, choice))
        progress.advance(per_unit[(m, tau)])
    return computed


def submit_units(
    series: dict[str, np.ndarray], p: RqaSweepParams, choice: DeviceChoice, progress_key: str
) -> list[dict]:
    """Every distinct (m, tau) submitted to the flow's task runner at once (GPU units ask for a
    Dask GPU), progress advanced as they finish; ``[{"m", "tau", "result"}]`` in grid order."""
    progress, per_unit = sweep_progress(p, progress_key)
    units = list(per_unit)
    gpus = None if choice.kind != "cuda" else (p.task_runner.gpus_per_task or 1.0)
    with gpu_resources(p.task_runner, gpus=gpus):
        futures = {
            rqa_mt.submit(series, m, tau, *unit_args(p, choice)): (m, tau) for m, tau in units
        }
    done: dict[tuple[int, int], dict] = {}
    for fut in as_completed(list(futures)):
        done[futures[fut]] = fut.result()
        progress.advance(per_unit[futures[fut]])
    return [{"m": m, "tau": tau, "result": done[(m, tau)]} for m, tau in units]
