"""The core: Prefect-free machinery every pipeline shares, one subpackage per concern.

- :mod:`gpuflows.core.hardware`: devices (NVML, no CUDA init), pool limits, timing, the monitor.
- :mod:`gpuflows.core.memory`: VRAM budgets, model sizes, batch sizing, model residency.
- :mod:`gpuflows.core.evidence`: checks, digests, the environment lock, history, Trust Tiers.
- :mod:`gpuflows.core.slo`: SLO measurements, policies, baselines, reports.
- :mod:`gpuflows.core.store`: atomic files, the item ledger, progress, the batched stage runner.
- :mod:`gpuflows.core.faults` (OOM and transient errors) and :mod:`gpuflows.core.naming` (slugs).

Rules: nothing here imports Prefect, ``tasks``, ``flows``, ``blocks``, ``deployments``,
``gpuflows.models`` or ``gpuflows.pipelines`` (``tests/test_layers.py``); torch, CuPy and NVML
load lazily, inside the functions that use them. Nothing is imported from this package itself:
import a subpackage's public names from the subpackage (``from gpuflows.core.memory import
BatchSizer``) or from their module; the subpackages load on first use, so ``import
gpuflows.core`` stays cheap.
"""

__all__ = ["evidence", "faults", "hardware", "memory", "naming", "slo", "store"]
