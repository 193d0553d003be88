"""Task runners chosen by parameter: thread pool vs real local Dask clusters, GPU resources (CPU)."""

from __future__ import annotations

import os
import sys
import time

import pytest
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from gpuflows.core.hardware.devices import Discovery, GpuInfo
from tasks.runners import (
    GPU_RESOURCE,
    RunnerError,
    TaskRunnerSpec,
    build_task_runner,
    gpu_resources,
    with_task_runner,
)

GIB = 1 << 30


def _no_gpu() -> Discovery:
    return Discovery(method="none", reason="test: no GPU")


def _one_gpu() -> Discovery:
    """A fake host with one GPU (NVML index 0): the local cluster pins a worker to it."""
    return Discovery(
        method="nvml",
        gpus=[GpuInfo(index=0, nvml_index=0, name="H100", total_memory_bytes=80 * GIB)],
    )


@task(cache_policy=NO_CACHE, persist_result=False, task_run_name="square-{x}")
def square(x: int) -> dict:
    """x², and where it was computed (Dask worker address, pid, GPU resource, visible GPUs)."""
    where: dict = {"worker": None, "resources": {}}
    try:
        from distributed import get_worker

        w = get_worker()
        key = w.get_current_task()
        where = {
            "worker": w.address,
            "worker_name": str(w.name),
            "resources": dict(w.state.tasks[key].resource_restrictions or {}),
        }
    except (ImportError, ValueError):  # ValueError: not inside a Dask worker
        pass
    return {
        "x": x,
        "y": x * x,
        "pid": os.getpid(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        **where,
    }


@flow(name="runner-probe")
def probe(xs: list[int], spec: TaskRunnerSpec = TaskRunnerSpec()) -> list[dict]:  # noqa: B008
    """Map ``square`` over ``xs``; GPU tasks ask for ``spec.gpus_per_task`` Dask GPUs."""
    with gpu_resources(spec):
        futures = square.map(xs)
    return [f.result() for f in futures]


@flow(name="runner-parent")
def parent(xs: list[int], spec: TaskRunnerSpec = TaskRunnerSpec()) -> list[dict]:  # noqa: B008
    """What a deployment's entrypoint does: the runner is a parameter, the work a subflow."""
    return with_task_runner(probe, spec, discovery=_no_gpu())(xs, spec)


# --- the spec: pure ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"address": "tcp://10.0.0.5:8786"}, ["address=", "kind='dask'"]),
        ({"kind": "dask", "address": "10.0.0.5:8786"}, ["address=", "tcp://HOST:8786"]),
        ({"kind": "dask", "address": "http://h:8786"}, ["address=", "tls://"]),
        ({"kind": "dask", "n_workers": 0}, ["n_workers=0", "1 or more"]),
        ({"kind": "dask", "threads_per_worker": 0}, ["threads_per_worker=0", "1 or more"]),
        ({"kind": "dask", "gpus_per_task": 0}, ["gpus_per_task=0", "> 0"]),
        ({"gpus_per_task": 1}, ["gpus_per_task=1", "kind='dask'"]),
        ({"kind": "dask", "gpus_per_task": 2}, ["gpus_per_task=2", "local cluster", "address="]),
        (
            {"kind": "dask", "address": "tcp://h:8786", "n_workers": 2},
            ["n_workers=2", "drop n_workers"],
        ),
        ({"kind": "ray"}, ["kind"]),
        ({"kind": "dask", "nworkers": 2}, ["nworkers"]),  # a typo is an error, not ignored
    ],
)
def test_spec_errors_name_the_field_and_fix(kwargs, words):
    with pytest.raises(ValueError) as err:
        TaskRunnerSpec(**kwargs)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_spec_defaults_and_parameter_round_trip():
    assert TaskRunnerSpec().kind == "thread"
    spec = TaskRunnerSpec.model_validate(
        {"kind": "dask", "address": " tls://sched.lab:8786 ", "gpus_per_task": 0.5}
    )
    assert spec.address == "tls://sched.lab:8786" and not spec.local
    assert TaskRunnerSpec.model_validate(spec.model_dump(mode="json")) == spec
    assert TaskRunnerSpec(kind="dask", address="").local  # a cleared UI field: local cluster


def test_build_thread_and_dask_runners_without_starting_them():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(build_task_runner(TaskRunnerSpec()), ThreadPoolTaskRunner)
    remote = build_task_runner(TaskRunnerSpec(kind="dask", address="tcp://10.0.0.5:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.5:8786"

    cpu = build_task_runner(TaskRunnerSpec(kind="dask", n_workers=3), discovery=_no_gpu())
    assert cpu.cluster_class == "distributed.LocalCluster"
    assert cpu.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True}

    gpu = build_task_runner(TaskRunnerSpec(kind="dask", gpus_per_task=1), discovery=_one_gpu())
    assert gpu.cluster_class == "tasks.runners.gpu_local_cluster"
    assert gpu.cluster_kwargs == {"threads_per_worker": 1, "gpus": ["0"]}


def test_gpu_tasks_on_a_local_cluster_without_gpu_fail_at_once():
    spec = TaskRunnerSpec(kind="dask", gpus_per_task=1)
    with pytest.raises(RunnerError, match="no GPU .* wait forever"):
        build_task_runner(spec, discovery=_no_gpu())
    threads = TaskRunnerSpec(kind="dask", gpus_per_task=1, processes=False)
    with pytest.raises(RunnerError, match="processes=False"):
        build_task_runner(threads, discovery=_one_gpu())


def test_missing_prefect_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "prefect_dask", None)  # import fails as if not installed
    with pytest.raises(RunnerError, match=r"pip install 'gpuflows\[cluster\]'"):
        build_task_runner(TaskRunnerSpec(kind="dask"), discovery=_no_gpu())
    build_task_runner(TaskRunnerSpec())  # threads need no extra


def test_gpu_resources_annotate_only_for_dask():
    import dask

    with gpu_resources(TaskRunnerSpec()) as res:
        assert res == {} and "resources" not in dask.get_annotations()
    with gpu_resources(TaskRunnerSpec(kind="dask")) as res:  # no GPU count: CPU tasks
        assert res == {} and "resources" not in dask.get_annotations()
    spec = TaskRunnerSpec(kind="dask", address="tcp://h:8786", gpus_per_task=1)
    with gpu_resources(spec) as res:
        assert res == {GPU_RESOURCE: 1.0}
        assert dask.get_annotations()["resources"] == {GPU_RESOURCE: 1.0}
    with gpu_resources(spec, gpus=0.25):
        assert dask.get_annotations()["resources"] == {GPU_RESOURCE: 0.25}
    assert "resources" not in dask.get_annotations()
    with pytest.raises(RunnerError, match="gpus=0"), gpu_resources(spec, gpus=0):
        pass


# --- real clusters against the test harness --------------------------------------------------------


def test_local_dask_cluster_gives_the_thread_runners_results(prefect_harness, fast_worker_start):
    """Two worker processes compute the same squares the thread pool does."""
    xs = list(range(6))
    threads = with_task_runner(probe, TaskRunnerSpec())(xs)
    t0 = time.monotonic()
    spec = TaskRunnerSpec(kind="dask", n_workers=2)
    on_dask = with_task_runner(probe, spec, discovery=_no_gpu())(xs, spec)
    wall = time.monotonic() - t0
    print(f"local Dask cluster, 2 worker processes, {len(xs)} tasks: {wall:.1f} s")

    assert [r["y"] for r in on_dask] == [r["y"] for r in threads] == [x * x for x in xs]
    assert all(r["worker"] is None and r["pid"] == os.getpid() for r in threads)
    assert all(r["worker"] and r["worker"].startswith("tcp://127.0.0.1:") for r in on_dask)
    assert {r["pid"] for r in on_dask}.isdisjoint({os.getpid()})  # computed in worker processes
    assert all(r["resources"] == {} for r in on_dask)


def test_pinned_gpu_worker_takes_the_gpu_tasks(prefect_harness, fast_worker_start):
    """One fake GPU + n_workers=2: worker gpu-0 (CUDA_VISIBLE_DEVICES=0, GPU=1) and cpu-0.

    Tasks submitted in ``gpu_resources`` all run on the GPU worker, seeing only its GPU;
    with gpus_per_task=0.5 two of them may share it.
    """
    spec = TaskRunnerSpec(kind="dask", n_workers=2, gpus_per_task=0.5)
    out = with_task_runner(probe, spec, discovery=_one_gpu())(list(range(4)), spec)
    assert [r["y"] for r in out] == [0, 1, 4, 9]
    assert {r["worker_name"] for r in out} == {"gpu-0"}
    assert {r["cuda_visible_devices"] for r in out} == {"0"}
    assert all(r["resources"] == {GPU_RESOURCE: 0.5} for r in out)


def test_existing_cluster_by_address_runs_gpu_annotated_tasks(prefect_harness):
    """A cluster started elsewhere (here: in this process, workers declaring GPU=1)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        resources={GPU_RESOURCE: 1},
        dashboard_address=":0",
    ) as cluster:
        spec = TaskRunnerSpec(kind="dask", address=cluster.scheduler_address, gpus_per_task=1)
        out = parent([2, 3], spec)  # the runner comes from the parent flow's parameter
        (worker,) = cluster.scheduler_info["workers"]
    assert [r["y"] for r in out] == [4, 9]
    assert {r["worker"] for r in out} == {worker}
    assert all(r["resources"] == {GPU_RESOURCE: 1.0} for r in out)


def test_parent_flow_defaults_to_threads(prefect_harness):
    out = parent([5])
    assert out[0]["y"] == 25 and out[0]["worker"] is None
