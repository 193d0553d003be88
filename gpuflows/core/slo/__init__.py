"""SLOs: measure a service, check it against a policy, compare it with its stored baseline.

- :mod:`~gpuflows.core.slo.measure`: latency statistics, :class:`SloPolicy`, measurements, checks.
- :mod:`~gpuflows.core.slo.baseline`: one baseline per (service, hardware), and regressions.
- :mod:`~gpuflows.core.slo.report`: the markdown and the latency plot.

The Prefect side (artifact, events) is ``tasks/slo_report.py``.
"""

from gpuflows.core.slo.baseline import BaselineStore, compare_to_baseline
from gpuflows.core.slo.measure import (
    SloMeasurement,
    SloPolicy,
    check_slo,
    latency_stats,
    with_goodput_bound,
)
from gpuflows.core.slo.report import plot_latency, render_slo_markdown

__all__ = [
    "BaselineStore",
    "SloMeasurement",
    "SloPolicy",
    "check_slo",
    "compare_to_baseline",
    "latency_stats",
    "plot_latency",
    "render_slo_markdown",
    "with_goodput_bound",
]
