"""GPU telemetry beside running work: an NVML sampler thread (summary, table, plot:
:mod:`gpuflows.core.hardware.monitor_report`).

Pure (no Prefect). ``pynvml`` (PyPI package ``nvidia-ml-py``, the ``[gpu]`` extra) is imported
only when a sampler starts, so CPU-only code never needs it. Without pynvml, without an NVIDIA
driver or without visible GPUs the sampler is a no-op that says why in ``reason``.

NVML never initialises CUDA, so sampling is safe in forked workers and does not take GPU memory.

Example:
    >>> with GpuSampler(interval_s=0.5) as s:
    ...     run_the_work()
    >>> s.active, len(s.samples), s.reason
    >>> summarize(s.samples)  # gpuflows.core.hardware.monitor_report
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MIB = 1024 * 1024
PYNVML_MISSING = "pynvml not installed (pip install 'gpuflows[gpu]')"
NO_GPUS = "no GPUs visible"
_TEMPERATURE_GPU = 0  # NVML_TEMPERATURE_GPU in every pynvml release


class GpuSample(BaseModel):
    """One reading of one GPU."""

    model_config = ConfigDict(frozen=True)

    t_s: float = Field(description="Seconds since the sampler started (monotonic clock).")
    gpu_index: int = Field(description="NVML device index (PCI bus order, not CUDA order).")
    name: str = Field(description="Device name as NVML reports it.")
    utilization_pct: float | None = Field(
        description="GPU busy time over NVML's last period, percent; None if unsupported (MIG)."
    )
    memory_used_mib: float = Field(description="Device memory in use, MiB.")
    memory_total_mib: float = Field(description="Device memory in total, MiB.")
    power_w: float | None = Field(description="Board power draw, watts; None if unsupported.")
    temperature_c: float | None = Field(
        description="GPU core temperature, °C; None if unsupported."
    )


class GpuSampler:
    """Sample every visible GPU every ``interval_s`` seconds in a daemon thread.

    One sample is taken at ``start()`` and one at ``stop()``, so even short work has two.
    Nothing here raises into the watched work: NVML problems become ``reason`` (sampler
    inactive) or entries in ``errors`` (sampling goes on; after ``max_consecutive_errors``
    failed ticks in a row it stops and says so in ``reason``).

    Args:
        interval_s: seconds between samples (> 0).
        gpu_indices: NVML indices to watch; default: those ``CUDA_VISIBLE_DEVICES`` names
            (integers or ``GPU-<uuid>``), else all. Integer entries are mapped as NVML indices,
            which equal CUDA indices only with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (or identical GPUs).
        nvml: a pynvml-like module (tests pass a fake); default: ``import pynvml`` lazily.
        max_consecutive_errors: failed ticks in a row before sampling stops (>= 1).

    Attributes:
        samples: readings so far (a copy), in time order.
        errors: problems met while sampling, each recorded once.
        reason: why there is no (or no more) telemetry; None while all is well.
        active: True once NVML initialised and at least one GPU is watched (stays True if
            sampling later stops on errors: ``reason`` then says so).
        gpu_indices: the NVML indices actually watched.
        report: free slot for whoever publishes the samples (``tasks.monitoring`` puts its
            ``MonitorReport`` here after exit).

    Example:
        >>> with GpuSampler(interval_s=0.5) as s:
        ...     train()
        >>> summarize(s.samples)
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        *,
        gpu_indices: Sequence[int] | None = None,
        nvml: ModuleType | Any | None = None,
        max_consecutive_errors: int = 10,
    ) -> None:
        if isinstance(interval_s, bool) or not isinstance(interval_s, int | float):
            raise TypeError(f"interval_s must be a number of seconds, got {interval_s!r}")
        if not interval_s > 0 or interval_s == float("inf"):
            raise ValueError(
                f"interval_s must be a finite number of seconds > 0, got {interval_s!r}"
            )
        if max_consecutive_errors < 1:
            raise ValueError(f"max_consecutive_errors must be >= 1, got {max_consecutive_errors}")
        self.interval_s = float(interval_s)
        self.max_consecutive_errors = max_consecutive_errors
        self._requested = None if gpu_indices is None else [int(i) for i in gpu_indices]
        self._nvml = nvml
        self._nvml_error: type[BaseException] = Exception
        self._handles: list[tuple[int, Any, str]] = []
        self._samples: list[GpuSample] = []
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._initialised = False
        self._started = False
        self._stopped = False
        self._error_keys: set[str] = set()
        self._failed_ticks = 0
        self._last_failure = ""
        self._gave_up = False
        self.errors: list[str] = []
        self.reason: str | None = None
        self.active = False
        self.gpu_indices: list[int] = []
        self.report: Any = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> GpuSampler:
        """Initialise NVML, take the first sample and start the thread (a no-op without GPUs)."""
        if self._started:
            raise RuntimeError("GpuSampler.start() called twice; use a new sampler per run")
        self._started = True
        self._t0 = time.monotonic()
        nvml = self._nvml
        if nvml is None:
            if importlib.util.find_spec("pynvml") is None:
                self.reason = PYNVML_MISSING
                return self
            try:
                nvml = importlib.import_module("pynvml")
            except Exception as exc:  # noqa: BLE001 - a broken install is a reason, not a crash
                self.reason = f"pynvml import failed: {exc!r}"
                return self
            self._nvml = nvml
        self._nvml_error = getattr(nvml, "NVMLError", Exception)
        try:
            nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - no driver / library is the CPU path
            self.reason = f"NVML init failed: {exc}"
            return self
        self._initialised = True
        try:
            self._open_devices()
        except Exception as exc:  # noqa: BLE001
            self.reason = f"NVML device query failed: {exc}"
        if not self._handles:
            self.reason = self.reason or self._no_gpu_reason()
            self._shutdown()
            return self
        self.active = True
        self._tick()
        self._thread = threading.Thread(target=self._run, name="gpuflows-gpu-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> GpuSampler:
        """Stop the thread, take the last sample and shut NVML down (safe to call twice)."""
        if self._stopped or not self._started:
            return self
        self._stopped = True
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))
            if self._thread.is_alive():
                self._record("sampler thread did not stop within its join timeout")
        if self.active and not self._gave_up:
            self._tick()
        self._shutdown()
        return self

    def __enter__(self) -> GpuSampler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def samples(self) -> list[GpuSample]:
        """A copy of the readings so far, in time order."""
        with self._lock:
            return list(self._samples)

    # -- internals ---------------------------------------------------------------------------

    def _open_devices(self) -> None:
        nvml = self._nvml
        count = int(nvml.nvmlDeviceGetCount())
        if self._requested is not None:
            wanted = []
            for i in self._requested:
                if 0 <= i < count:
                    wanted.append(i)
                else:
                    self._record(f"gpu index {i} out of range (NVML sees {count} devices)")
        else:
            wanted = self._visible_from_env(count)
        for i in dict.fromkeys(wanted):  # keep order, drop repeats
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            try:
                name = nvml.nvmlDeviceGetName(handle)
                name = name.decode() if isinstance(name, bytes) else str(name)
            except self._nvml_error as exc:
                self._record(f"gpu {i}: name unavailable: {exc}")
                name = f"gpu{i}"
            self._handles.append((i, handle, name))
        self.gpu_indices = [i for i, _, _ in self._handles]

    def _visible_from_env(self, count: int) -> list[int]:
        """NVML indices named by CUDA_VISIBLE_DEVICES (CUDA stops at the first invalid entry)."""
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        if env is None:
            return list(range(count))
        out: list[int] = []
        for token in (t.strip() for t in env.split(",")):
            if not token:
                break
            if token.startswith("GPU-"):
                try:
                    handle = self._nvml.nvmlDeviceGetHandleByUUID(token)
                    out.append(int(self._nvml.nvmlDeviceGetIndex(handle)))
                except Exception as exc:  # noqa: BLE001 - partial UUIDs, fakes without UUIDs
                    self._record(f"CUDA_VISIBLE_DEVICES entry {token!r} not resolved: {exc}")
                    break
                continue
            try:
                i = int(token)
            except ValueError:
                self._record(f"CUDA_VISIBLE_DEVICES entry {token!r} not understood (MIG?)")
                break
            if not 0 <= i < count:
                break
            out.append(i)
        return out

    def _no_gpu_reason(self) -> str:
        env = os.environ.get("CUDA_VISIBLE_DEVICES")
        if self._requested is None and env is not None:
            return f"{NO_GPUS} (CUDA_VISIBLE_DEVICES={env!r})"
        return NO_GPUS

    def _run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            if not self._tick():
                return

    def _tick(self) -> bool:
        """Sample every GPU once; False once too many ticks in a row have failed."""
        t_s = time.monotonic() - self._t0
        got: list[GpuSample] = []
        for index, handle, name in self._handles:
            try:
                got.append(self._read(t_s, index, handle, name))
            except Exception as exc:  # noqa: BLE001 - recorded; must not reach the work
                self._last_failure = f"gpu {index}: sample failed: {exc!r}"
                self._record(self._last_failure)
        with self._lock:
            self._samples.extend(got)
        if got:
            self._failed_ticks = 0
            return True
        self._failed_ticks += 1
        if self._failed_ticks >= self.max_consecutive_errors:
            self._gave_up = True
            self.reason = (
                f"sampling stopped after {self._failed_ticks} failed ticks in a row; "
                f"last error: {self._last_failure}"
            )
            return False
        return True

    def _read(self, t_s: float, index: int, handle: Any, name: str) -> GpuSample:
        nvml = self._nvml
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        util = self._optional(index, "utilization", nvml.nvmlDeviceGetUtilizationRates, handle)
        power_mw = self._optional(index, "power", nvml.nvmlDeviceGetPowerUsage, handle)
        temp = self._optional(
            index,
            "temperature",
            nvml.nvmlDeviceGetTemperature,
            handle,
            getattr(nvml, "NVML_TEMPERATURE_GPU", _TEMPERATURE_GPU),
        )
        return GpuSample(
            t_s=t_s,
            gpu_index=index,
            name=name,
            utilization_pct=None if util is None else float(util.gpu),
            memory_used_mib=mem.used / MIB,
            memory_total_mib=mem.total / MIB,
            power_w=None if power_mw is None else power_mw / 1000.0,
            temperature_c=None if temp is None else float(temp),
        )

    def _optional(self, index: int, field: str, fn: Any, *args: Any) -> Any:
        """Call an NVML getter; an NVMLError (e.g. NOT_SUPPORTED) gives None, recorded once."""
        try:
            return fn(*args)
        except self._nvml_error as exc:
            self._record(f"gpu {index}: {field} unavailable: {exc}")
            return None

    def _record(self, message: str) -> None:
        with self._lock:
            if message not in self._error_keys:
                self._error_keys.add(message)
                self.errors.append(message)

    def _shutdown(self) -> None:
        if not self._initialised:
            return
        self._initialised = False
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:  # noqa: BLE001
            self._record(f"nvmlShutdown failed: {exc}")
