"""Where one flow run's tasks execute, chosen by a parameter: threads, or a Dask cluster.

Prefect spreads *flow runs* over hosts (every GPU host runs workers on the same pool, README
"Several GPU hosts"). This module spreads the *tasks of one flow run*: a :class:`TaskRunnerSpec`
(a pydantic parameter, so it is a form in the UI) says ``thread`` (Prefect's thread pool in the
flow-run process, the default) or ``dask`` (``prefect-dask``: a temporary local cluster, or an
existing scheduler at ``address``).

Prefect fixes a flow's ``task_runner`` when it is decorated, so a parameter cannot change it from
inside the flow. The idiomatic way is :func:`with_task_runner` (``flow.with_options``):

* from a CLI or script: ``with_task_runner(rqa_sweep, spec)(params)`` -- one flow run, no nesting;
* from a deployment: a parent flow whose parameter is the spec calls the inner flow as a subflow,
  ``with_task_runner(inner, params.task_runner)(...)``. Costs one more flow run (~1 s, a nested run
  in the UI); the parent holds the deployment's concurrency slot while the subflow runs.

GPU tasks: on Dask, a task submitted inside :func:`gpu_resources` carries the annotation
``resources={"GPU": gpus_per_task}`` and only runs on a worker that declared GPUs
(``dask worker tcp://scheduler:8786 --resources "GPU=1"`` with ``CUDA_VISIBLE_DEVICES`` pinned, one
per GPU). The local cluster does that itself: one worker process per visible GPU, pinned, with
``GPU=1``. Dask resources admit tasks within one cluster only; the VRAM limits of
:mod:`tasks.vram` still guard GPUs shared with other flow runs.

Example:
    ```python
    spec = TaskRunnerSpec(kind="dask", n_workers=2, gpus_per_task=1)
    with_task_runner(my_flow, spec)(params)          # inside my_flow:
    with gpu_resources(spec):
        futures = gpu_task.map(items)                # each waits for a GPU worker
    ```
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gpuflows.core.hardware.devices import DeviceChoice, Discovery, parse_visible_devices
from gpuflows.core.hardware.runner_spec import GPU_RESOURCE, RunnerError, TaskRunnerSpec

__all__ = [
    "CLUSTER_EXTRA",
    "GPU_RESOURCE",
    "RunnerError",
    "TaskRunnerSpec",
    "build_task_runner",
    "device_here",
    "gpu_local_cluster",
    "gpu_resources",
    "on_dask_worker",
    "with_task_runner",
]

if TYPE_CHECKING:
    from prefect import Flow
    from prefect.task_runners import TaskRunner

CLUSTER_EXTRA = "pip install 'gpuflows[cluster]'"


def _cuda_ids(discovery: Discovery) -> list[str]:
    """What ``CUDA_VISIBLE_DEVICES`` must say for a worker to see exactly each visible GPU."""
    visible = parse_visible_devices(discovery.cuda_visible_devices)
    out = []
    for g in discovery.gpus:
        if g.nvml_index is not None:
            out.append(str(g.nvml_index))
        elif visible and g.index < len(visible):
            out.append(visible[g.index])
        else:
            out.append(str(g.index))
    return out


def gpu_local_cluster(
    gpus: list[str],
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    **cluster_kwargs: Any,
) -> Any:
    """A local Dask cluster with one worker process per GPU, pinned, declaring ``GPU=1``.

    Like ``LocalCluster`` (scheduler on 127.0.0.1), but each of the first ``len(gpus)`` workers
    runs with ``CUDA_VISIBLE_DEVICES=<its GPU>`` and ``resources={"GPU": 1}``; workers beyond
    the GPUs (``n_workers > len(gpus)``) see no GPU and take CPU tasks.

    Args:
        gpus: ``CUDA_VISIBLE_DEVICES`` entry of each GPU (NVML indices or UUIDs).
        n_workers: all workers; None for one per GPU.
        threads_per_worker: threads of each worker (1: one GPU task at a time).
        cluster_kwargs: passed to ``distributed.SpecCluster`` (``silence_logs``, ...).

    Raises:
        RunnerError: no GPU given, or fewer workers than GPUs.
    """
    from distributed import Nanny, Scheduler, SpecCluster

    if not gpus:
        raise RunnerError("gpu_local_cluster needs at least one GPU: use LocalCluster instead")
    n = len(gpus) if n_workers is None else n_workers
    if n < len(gpus):
        raise RunnerError(
            f"n_workers={n} is fewer than the {len(gpus)} visible GPUs ({', '.join(gpus)}): "
            "leave n_workers empty for one per GPU, or narrow CUDA_VISIBLE_DEVICES"
        )
    workers: dict[str, dict[str, Any]] = {}
    for i in range(n):
        gpu = gpus[i] if i < len(gpus) else None
        options: dict[str, Any] = {
            "nthreads": threads_per_worker,
            "env": {"CUDA_VISIBLE_DEVICES": gpu if gpu is not None else ""},
        }
        if gpu is not None:
            options["resources"] = {GPU_RESOURCE: 1}
        name = f"gpu-{gpu}" if gpu is not None else f"cpu-{i - len(gpus)}"
        workers[name] = {"cls": Nanny, "options": options}
    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": ":0"}}
    return SpecCluster(workers=workers, scheduler=scheduler, **cluster_kwargs)


def _dask_runner_class() -> Any:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise RunnerError(
            f"kind='dask' needs prefect-dask, which is not installed ({exc}): {CLUSTER_EXTRA}, "
            "or use kind='thread'"
        ) from exc
    return DaskTaskRunner


def build_task_runner(spec: TaskRunnerSpec, *, discovery: Discovery | None = None) -> TaskRunner:
    """The Prefect task runner a spec describes (not started: the flow run starts it).

    Args:
        spec: the parameter.
        discovery: GPUs of this host for a local cluster (default: :func:`discover`; tests pass
            a fake). Not read for ``thread`` or an ``address``.

    Returns:
        ``ThreadPoolTaskRunner`` for ``thread``; a ``prefect_dask.DaskTaskRunner`` for ``dask``:
        connecting to ``address``, or creating a ``LocalCluster`` (no GPU, or ``processes=False``)
        or a :func:`gpu_local_cluster` (one pinned worker per GPU) for the flow run.

    Raises:
        RunnerError: prefect-dask missing (``pip install 'gpuflows[cluster]'``); ``gpus_per_task``
            on a local cluster that has no GPU worker (its tasks would wait forever).
    """
    if spec.kind == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner()
    runner_cls = _dask_runner_class()
    if spec.address is not None:
        return runner_cls(address=spec.address)

    gpus: list[str] = []
    if spec.processes:  # threads of one process cannot be pinned to a GPU each
        if discovery is None:
            from gpuflows.core.hardware.devices import discover

            discovery = discover()
        gpus = _cuda_ids(discovery)
    if spec.gpus_per_task is not None and not gpus:
        why = (
            "processes=False: thread workers cannot be pinned to a GPU"
            if not spec.processes
            else f"this host shows no GPU ({discovery.reason or 'none found'})"
        )
        raise RunnerError(
            f"gpus_per_task={spec.gpus_per_task} on a local cluster, but {why}, so no worker "
            "has a GPU and such tasks would wait forever: leave gpus_per_task empty on a CPU "
            "host, or give address= of a cluster with GPU workers"
        )
    base: dict[str, Any] = {"threads_per_worker": spec.threads_per_worker}
    if spec.n_workers is not None:
        base["n_workers"] = spec.n_workers
    if gpus:
        return runner_cls(
            cluster_class="tasks.runners.gpu_local_cluster", cluster_kwargs={**base, "gpus": gpus}
        )
    return runner_cls(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={**base, "processes": spec.processes},
    )


def with_task_runner(flow: Flow, spec: TaskRunnerSpec, **build_kwargs: Any) -> Flow:
    """A copy of ``flow`` whose tasks run where ``spec`` says (``flow.with_options``).

    Call the copy like the flow: top level from a CLI, or as a subflow of a parent flow that takes
    the spec as a parameter (a deployment's entrypoint); see the module docstring.

    Example:
        >>> with_task_runner(rqa_sweep, TaskRunnerSpec(kind="dask", n_workers=2))(params)
    """
    return flow.with_options(task_runner=build_task_runner(spec, **build_kwargs))


@contextlib.contextmanager
def gpu_resources(spec: TaskRunnerSpec, gpus: float | None = None) -> Iterator[dict[str, float]]:
    """Tasks submitted in this block hold ``gpus`` (default ``spec.gpus_per_task``) Dask GPUs.

    ``dask.annotate(resources={"GPU": n})`` around ``task.submit`` / ``task.map``: the scheduler
    starts such a task only on a worker that declared that many free GPUs. A no-op (yields
    ``{}``) for the thread runner or without a GPU count, so flows can use it unconditionally.
    The annotation is read when a task is *submitted*, in the submitting thread; waiting on the
    futures may happen outside the block.

    Raises:
        RunnerError: ``gpus`` <= 0.
    """
    n = spec.gpus_per_task if gpus is None else gpus
    if n is not None and not n > 0:
        raise RunnerError(f"gpus={n}: use a number > 0 (1 = a whole GPU)")
    if spec.kind != "dask" or n is None:
        yield {}
        return
    import dask

    resources = {GPU_RESOURCE: float(n)}
    with dask.annotate(resources=resources):
        yield resources


def on_dask_worker() -> bool:
    """True inside a task running on a Dask worker (never imports ``distributed`` to find out)."""
    import sys

    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:  # not inside a worker
        return False
    return True


def device_here(choice: DeviceChoice) -> DeviceChoice:
    """The device a task should use where it runs: ``choice``, re-chosen on a Dask worker.

    A GPU chosen by the flow-run process (``cuda:1``, say) does not exist as such on a Dask
    worker pinned with ``CUDA_VISIBLE_DEVICES`` to one GPU; there the task takes the worker's
    own GPU (``choose_device("cuda")``: an error, not a silent CPU fallback, if it has none).
    A CPU choice, or a task in the flow-run process, keeps ``choice``.
    """
    if choice.kind != "cuda" or not on_dask_worker():
        return choice
    from gpuflows.core.hardware.devices import choose_device

    return choose_device("cuda")
