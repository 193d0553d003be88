"""Hardware: find and choose devices without initialising CUDA, time work on them, sample them.

- :mod:`~gpuflows.core.hardware.devices`: discovery (NVML first), the device a run uses, kinds.
- :mod:`~gpuflows.core.hardware.pool_plan`: a host's GPUs as VRAM limits (names and slots).
- :mod:`~gpuflows.core.hardware.timing`: device sync and timed calls.
- :mod:`~gpuflows.core.hardware.runner_spec`: where a run's tasks execute (threads, Dask).
- :mod:`~gpuflows.core.hardware.monitor` / :mod:`~gpuflows.core.hardware.monitor_report`: the
  GPU sampler and its summary, table and plot.

The names below are what the rest of the project uses; import them from here or from their module.
"""

from gpuflows.core.hardware.devices import (
    DeviceChoice,
    Discovery,
    choose_device,
    cpu_name,
    device_kind,
    discover,
    parse_visible_devices,
)
from gpuflows.core.hardware.monitor import GpuSampler
from gpuflows.core.hardware.monitor_report import plot_samples, samples_table, summarize
from gpuflows.core.hardware.pool_plan import (
    check_gpu_indices,
    check_vram_overrides,
    gpu_id,
    parse_memory_size,
    plan_pool_limits,
)
from gpuflows.core.hardware.runner_spec import GPU_RESOURCE, RunnerError, TaskRunnerSpec
from gpuflows.core.hardware.timing import device_sync, time_callable

__all__ = [
    "GPU_RESOURCE",
    "DeviceChoice",
    "Discovery",
    "GpuSampler",
    "RunnerError",
    "TaskRunnerSpec",
    "check_gpu_indices",
    "check_vram_overrides",
    "choose_device",
    "cpu_name",
    "device_kind",
    "device_sync",
    "discover",
    "gpu_id",
    "parse_memory_size",
    "parse_visible_devices",
    "plan_pool_limits",
    "plot_samples",
    "samples_table",
    "summarize",
    "time_callable",
]
