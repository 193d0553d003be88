"""Progress of long work: done/total, rate and ETA, with no orchestration attached."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ProgressClock:
    """Counts units of work and estimates the time left from the rate so far.

    Example:
        >>> p = ProgressClock(total=10)
        >>> p.advance(4).percent
        40.0
    """

    total: int
    done: int = 0
    started: float = field(default_factory=lambda: time.monotonic())

    def __post_init__(self) -> None:
        if self.total < 1:
            raise ValueError(f"total={self.total}: progress needs at least one unit of work")

    def advance(self, n: int = 1) -> ProgressClock:
        if n < 0:
            raise ValueError(f"advance({n}): progress only moves forward")
        self.done = min(self.total, self.done + n)
        return self

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None before the first unit is done)."""
        if self.done == 0:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)

    def describe(self, what: str = "units") -> str:
        eta = "unknown" if self.eta_s is None else f"{self.eta_s:.0f} s"
        return f"{self.done}/{self.total} {what} ({self.percent:.1f} %), elapsed {self.elapsed_s:.0f} s, ETA {eta}"
