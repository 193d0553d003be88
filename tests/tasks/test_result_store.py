"""tasks.result_store: the Prefect cache follows GPUFLOWS_RESULTS_DIR, whatever Prefect's own path."""

from __future__ import annotations

from prefect import flow, task
from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

from tasks.caching import house_cache_policy
from tasks.result_store import prefect_results_dir


def test_cached_task_results_land_under_the_results_root(prefect_harness, results, tmp_path):
    elsewhere = tmp_path / "prefect-elsewhere"
    calls = []

    @task(cache_policy=house_cache_policy())
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    def make():
        @flow(name="result-store-test", result_storage=prefect_results_dir())
        def f(x: int) -> int:
            return square(x)

        return f

    assert prefect_results_dir() == (results / "prefect").resolve()
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: elsewhere}):
        assert make()(7) == 49
    assert list((results / "prefect").iterdir()), "no result under results_root()/prefect"
    assert not elsewhere.exists() or not list(elsewhere.iterdir())
    # a retry-like second process setting only GPUFLOWS_RESULTS_DIR finds the cache
    with temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: tmp_path / "other"}):
        assert make()(7) == 49
    assert calls == [7]
