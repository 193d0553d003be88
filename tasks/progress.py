"""A Prefect progress artifact that shows done/total and ETA (the seeds' dashboards, in the UI)."""

from __future__ import annotations

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from gpuflows.core.store.progress import ProgressClock
from tasks.artifacts import validate_key


class RunProgress:
    """One progress artifact per run, updated as work finishes.

    Example:
        >>> prog = RunProgress("rqa-sweep-progress", total=len(combos), what="combinations")
        >>> for fut in futures:
        ...     fut.result(); prog.advance()
    """

    def __init__(
        self, key: str, *, total: int, what: str = "units", min_interval_s: float = 1.0
    ) -> None:
        self.clock = ProgressClock(total=total)
        self.what = what
        self.min_interval_s = min_interval_s
        self._last = float("-inf")
        self.artifact_id = create_progress_artifact(
            0.0, key=validate_key(key), description=self.clock.describe(what)
        )

    def advance(self, n: int = 1) -> None:
        """Count ``n`` finished units; the artifact is updated at most every ``min_interval_s``
        (always on the last unit), so thousands of small steps do not flood the API."""
        self.clock.advance(n)
        now = self.clock.elapsed_s
        if self.clock.done == self.clock.total or now - self._last >= self.min_interval_s:
            self._last = now
            update_progress_artifact(
                self.artifact_id, self.clock.percent, description=self.clock.describe(self.what)
            )
