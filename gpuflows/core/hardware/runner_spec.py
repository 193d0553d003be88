"""Where one flow run's tasks execute, as a typed parameter: threads, or a Dask cluster.

:class:`TaskRunnerSpec` is the form a flow's ``task_runner`` parameter shows in the UI, with its
rules (which fields apply to which kind, what a local cluster can pin). Prefect-free: the Prefect
task runner it describes is built by ``tasks.runners.build_task_runner``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

GPU_RESOURCE = "GPU"
"""Name of the Dask worker resource that counts GPUs (``dask worker --resources "GPU=1"``)."""

_SCHEMES = ("tcp://", "tls://")


class RunnerError(ValueError):
    """A task-runner setting that cannot work here; the message names the field and the fix."""


class TaskRunnerSpec(BaseModel):
    """Where a flow run's tasks execute (a flow parameter; the UI shows it as a form).

    Example:
        ``TaskRunnerSpec()`` threads; ``TaskRunnerSpec(kind="dask", n_workers=2)`` a local
        cluster of two processes; ``TaskRunnerSpec(kind="dask", address="tcp://10.0.0.5:8786",
        gpus_per_task=1)`` an existing cluster whose GPU workers declare ``GPU=1``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["thread", "dask"] = Field(
        "thread",
        description="'thread': a thread pool in the flow-run process; 'dask': a Dask cluster.",
    )
    address: str | None = Field(
        None,
        description="Scheduler of a running Dask cluster (tcp://host:8786); empty: a temporary "
        "local cluster.",
    )
    n_workers: int | None = Field(
        None,
        description="Worker processes of the local cluster; empty: one per visible GPU, or "
        "Dask's default on a host without one.",
    )
    threads_per_worker: int = Field(1, description="Threads of each local Dask worker.")
    processes: bool = Field(
        True,
        description="Local workers as processes (needed to pin one GPU each); False: threads of "
        "the flow-run process.",
    )
    gpus_per_task: float | None = Field(
        None,
        description="GPUs a task submitted in gpu_resources() holds on a Dask worker (1 = a whole "
        "GPU, 0.5 = two tasks per GPU); empty: no GPU resource.",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not v.startswith(_SCHEMES) or not v.split("://", 1)[1]:
            raise ValueError(
                f"address={v!r} is not a Dask scheduler address: use tcp://HOST:8786 "
                "(or tls://HOST:8786), or leave it empty for a local cluster"
            )
        return v

    @field_validator("n_workers")
    @classmethod
    def _n_workers(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(
                f"n_workers={v}: use 1 or more workers, or leave it empty for one per GPU"
            )
        return v

    @field_validator("threads_per_worker")
    @classmethod
    def _threads(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"threads_per_worker={v}: use 1 or more (1 suits a GPU worker)")
        return v

    @field_validator("gpus_per_task")
    @classmethod
    def _gpus(cls, v: float | None) -> float | None:
        if v is not None and not v > 0:
            raise ValueError(
                f"gpus_per_task={v}: use a number > 0 (1 = a whole GPU), or leave it empty "
                "for tasks that need no GPU"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TaskRunnerSpec:
        if self.kind == "thread":
            for name in ("address", "n_workers", "gpus_per_task"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name}={getattr(self, name)!r} applies to a Dask cluster: set "
                        f"kind='dask', or drop {name} to run the tasks in threads"
                    )
        elif self.address is not None and self.n_workers is not None:
            raise ValueError(
                f"n_workers={self.n_workers} sizes a local cluster, but address="
                f"{self.address!r} names a running one whose workers are started there: "
                "drop n_workers (or drop address for a local cluster)"
            )
        elif self.address is None and self.gpus_per_task is not None and self.gpus_per_task > 1:
            raise ValueError(
                f"gpus_per_task={self.gpus_per_task}: a local cluster's GPU worker holds one "
                "GPU, so such a task would never start: use <= 1, or address= a cluster whose "
                f"workers declare more ({GPU_RESOURCE}=N)"
            )
        return self

    @property
    def local(self) -> bool:
        """True for a temporary local Dask cluster (kind 'dask' without an address)."""
        return self.kind == "dask" and self.address is None
