"""The one shape of a quality gate: a named check with its verdict, its numbers and its reason.

Trust Tiers and SLO reports are both computed from lists of these (Dagster-style asset checks):
a check never hides a failure behind a number, and the numbers that decided it travel with it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CheckResult(BaseModel):
    """Outcome of one ``check_<property>`` function.

    Example:
        >>> CheckResult(name="sample_size", passed=False, numbers={"n": 12, "min": 30},
        ...             reason="12 samples < policy minimum 30")
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Property checked, e.g. 'sample_size'.")
    passed: bool = Field(description="Whether the property holds.")
    numbers: dict[str, Any] = Field(default_factory=dict, description="Figures behind the verdict.")
    reason: str = Field(description="One sentence a reader can act on.")

    def line(self) -> str:
        """One markdown table row: ``| name | pass/FAIL | numbers | reason |``."""
        nums = ", ".join(f"{k}={_fmt(v)}" for k, v in self.numbers.items())
        mark = "pass" if self.passed else "**FAIL**"
        return f"| {self.name} | {mark} | {nums} | {self.reason} |"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def checks_table(checks: list[CheckResult]) -> str:
    """Render checks as a markdown table."""
    head = "| check | result | numbers | reason |\n|---|---|---|---|\n"
    return head + "\n".join(c.line() for c in checks)
