"""What the suite measures on a device: its sizes (with validated overrides) and the record of
its operands that the environment lock keeps."""

from __future__ import annotations

from gpuflows.core.evidence.digest import value_digest
from gpuflows.core.evidence.envlock import DatasetRef
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.pipelines.gpu_baseline.hwbench import HwMeasurement, default_sizes

OPERANDS_VERSION = "1"
"""Versioned identity of the operands: the measured quantity is device throughput, which does
not depend on operand values, so the "data" is the seeded generator spec and the sizes."""


def suite_sizes(choice: DeviceChoice, overrides: dict[str, int] | None = None) -> dict[str, int]:
    """Sizes for the suite on this device, with caller overrides (validated by name).

    Raises:
        ValueError: an unknown size name (the known ones listed), or a size < 1.
    """
    sizes = default_sizes(choice.kind, choice.total_memory_bytes)
    for k, v in (overrides or {}).items():
        if k not in sizes:
            raise ValueError(f"sizes.{k} is unknown: use any of {sorted(sizes)}")
        if int(v) < 1:
            raise ValueError(f"sizes.{k}={v} must be >= 1")
        sizes[k] = int(v)
    return sizes


def operands_ref(seed: int, sizes: dict[str, int]) -> DatasetRef:
    """The suite's "dataset": the seeded operand generator and the sizes, by digest."""
    spec = {"generator": "torch.Generator(manual_seed)", "seed": seed, "sizes": sizes}
    return DatasetRef(
        name="gpu-baseline-operands",
        version=OPERANDS_VERSION,
        digest=value_digest(spec),
        synthetic=False,
        description="seeded operands of a hardware microbenchmark; what is measured is the "
        "device's throughput, which does not depend on operand values",
    )


def measured(measurements: list[HwMeasurement]) -> list[HwMeasurement]:
    """The measurements that produced a figure (skipped ones carry ``value=None``)."""
    return [m for m in measurements if m.value is not None]
