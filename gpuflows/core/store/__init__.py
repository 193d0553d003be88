"""store."""

from gpuflows.core.store.stage_runner import StageRunner

__all__ = ["StageRunner"]
