"""GPU pool block: which GPUs of a host take GPU work, and how their VRAM budgets are sized.

Each GPU becomes one Prefect global concurrency limit whose slots are GiB of VRAM (``vram-gpu0``
with 79 slots on an 80 GiB card with a 1 GiB reserve). The arithmetic and its checks live in
:mod:`gpuflows.core.hardware.pool_plan` and :mod:`gpuflows.core.memory.budget`; this block only stores the settings.
"""

from __future__ import annotations

import re

from prefect.blocks.core import Block
from pydantic import Field, field_validator, model_validator

from gpuflows.core.hardware.devices import Discovery
from gpuflows.core.hardware.pool_plan import (
    check_gpu_indices,
    check_vram_overrides,
    plan_pool_limits,
)
from gpuflows.core.memory.budget import limit_name

_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class GpuPool(Block):
    """A host's GPUs as a Prefect work pool with one VRAM budget (global concurrency limit) each.

    GPU indices are the physical ones ``nvidia-smi`` shows (what a per-GPU worker's
    ``CUDA_VISIBLE_DEVICES`` names). Each GPU's limit has ``card memory - reserve_gib`` slots of
    one GiB unless ``vram_gib`` overrides it; a task holds the GiB it needs while it runs and
    waits up to ``slot_wait_timeout_s`` for them instead of running out of memory.

    Example:
        Create this host's VRAM limits from a stored pool:
        ```python
        from blocks import GpuPool
        from gpuflows.core.hardware.devices import discover

        gpu_pool = GpuPool.load("BLOCK_NAME")
        limits = gpu_pool.plan_limits(discover())  # {"vram-gpu0": 79, ...}
        ```
    """

    _block_type_name = "gpuflows GPU Pool"
    _block_type_slug = "gpuflows-gpu-pool"
    _logo_url = "https://raw.githubusercontent.com/gpuflows/gpuflows/main/docs/img/gpu-pool.png"
    _documentation_url = "https://github.com/gpuflows/gpuflows#blocks"

    work_pool_name: str = Field(
        default="gpu-pool",
        description="Prefect work pool (process type) whose workers run the GPU deployments.",
    )
    gpu_indices: list[int] | None = Field(
        default=None,
        description="Physical GPU indices to budget, e.g. [0, 1]; empty means every GPU discovery finds.",
    )
    vram_gib: dict[int, int] | None = Field(
        default=None,
        description="Slots (GiB) per GPU index replacing card memory minus the reserve, e.g. {0: 40}.",
    )
    reserve_gib: int = Field(
        default=1,
        ge=0,
        description="GiB of each card left out of the budget for the CUDA context and allocator.",
    )
    limit_prefix: str = Field(
        default="vram-gpu",
        description="Prefix of the limit names (lowercase letters, digits, dashes): vram-gpu0, vram-gpu1.",
    )
    host: str | None = Field(
        default=None,
        description="Host name prefixed to every limit when several hosts share one Prefect server (myhost-vram-gpu0).",
    )
    cpu_limit_slots: int | None = Field(
        default=None,
        ge=1,
        description="Slots (GiB of host memory) of a vram-cpu limit for CPU-only work; empty means no such limit.",
    )
    slot_wait_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds a task waits for its VRAM slots before it fails.",
    )

    @field_validator("work_pool_name")
    @classmethod
    def _pool_named(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("work_pool_name is empty: name the Prefect work pool, e.g. 'gpu-pool'")
        return v

    @field_validator("gpu_indices")
    @classmethod
    def _indices(cls, v: list[int] | None) -> list[int] | None:
        # An empty list (what a cleared UI field sends) means the same as None: every GPU.
        return check_gpu_indices(v) if v else None

    @field_validator("vram_gib")
    @classmethod
    def _override_values(cls, v: dict[int, int] | None) -> dict[int, int] | None:
        if v is not None:
            check_vram_overrides(v, None)
        return v or None

    @field_validator("limit_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _PREFIX_RE.match(v):
            raise ValueError(
                f"limit_prefix={v!r}: use lowercase letters, digits and dashes, starting with a "
                "letter or digit (e.g. 'vram-gpu')"
            )
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not re.search(r"[A-Za-z0-9]", v):
            raise ValueError(
                f"host={v!r} has no letter or digit: give the host's name (e.g. 'gpu-node-1') "
                "or leave it empty on a server only one host uses"
            )
        return v.strip()

    @model_validator(mode="after")
    def _overrides(self) -> GpuPool:
        if self.vram_gib is not None:
            check_vram_overrides(self.vram_gib, self.gpu_indices)
        limit_name(0, prefix=self.limit_prefix, host=self.host)  # the names must be valid
        return self

    def plan_limits(self, discovery: Discovery) -> dict[str, int]:
        """Limit name -> slots (GiB) for this pool on the GPUs ``discovery`` found.

        Raises:
            BudgetError: a GPU in ``gpu_indices`` or ``vram_gib`` that discovery does not show
                (the message lists the visible ones), an override larger than its card, a card
                too small for ``reserve_gib``.
        """
        return plan_pool_limits(
            discovery.gpus,
            gpu_indices=self.gpu_indices,
            vram_gib=self.vram_gib,
            reserve_gib=self.reserve_gib,
            prefix=self.limit_prefix,
            host=self.host,
            cpu_limit_slots=self.cpu_limit_slots,
        )
