"""Retry policy for gpuflows tasks: transient faults and OOM retry with backoff; bad input never.

An OOM inside a task is first handled in place by :func:`gpuflows.core.faults.run_with_oom_fallback`
(halved batch, then CPU, recorded); the Prefect-level retry here is the outer net for faults
that escape (a worker killed, a flaky endpoint, an OOM raised outside the batch loop).
"""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff

from gpuflows.core.faults import should_retry


def retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn`` for Prefect: retry OOM/transient faults, never invalid input."""
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - classifying is the point
        return should_retry(exc)
    return False


def retry_options(
    retries: int = 3, backoff_factor: float = 2.0, jitter: float = 0.5
) -> dict[str, Any]:
    """Task keyword arguments: exponential backoff with jitter, guarded by :func:`retry_condition`.

    Example:
        >>> @task(**retry_options())
        ... def call_endpoint(...): ...
    """
    if retries < 0:
        raise ValueError(f"retries={retries}: use 0 or more")
    return {
        "retries": retries,
        "retry_delay_seconds": exponential_backoff(backoff_factor=backoff_factor),
        "retry_jitter_factor": jitter,
        "retry_condition_fn": retry_condition,
    }
