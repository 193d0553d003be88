"""How many model swaps each two-stage schedule needs, and the order that needs the fewest.

Schedules over categories c = 1..C with n_c pairs (stage 1 = edit model, stage 2 = reward model):

* ``naive`` (the seed's original loop): per pair, edit then score.
* ``per_category`` (the seed's optimisation): per category, every edit, then every score.
* ``ours``: every edit of every category, then every score.

A *swap* is placing a model that does not fit beside the resident one (one model off, the other
on), counted as :class:`gpuflows.residency.ResidencyManager` counts it; the first placement is a
load, not a swap. When both models fit the budget together no schedule swaps. Otherwise:
naive = 2·n − 1, per_category = 2·C − 1, ours = 1 (the seed writes 540 for naive, 2·270, counting
a final swap back that its own per-category figure, 9 = 2·5 − 1, does not).
"""

from __future__ import annotations

from collections.abc import Mapping

EDIT, SCORE = "edit", "score"
SCHEDULES = ("naive", "per_category", "ours")


def schedule(name: str, sizes: Mapping[str, int]) -> list[tuple[str, str]]:
    """The (model, category) sequence of model uses a schedule makes, one entry per pair-stage."""
    if name == "naive":
        return [(m, c) for c, n in sizes.items() for _ in range(n) for m in (EDIT, SCORE)]
    if name == "per_category":
        return [(m, c) for c, n in sizes.items() for m in (EDIT, SCORE) for _ in range(n)]
    if name == "ours":
        return [(m, c) for m in (EDIT, SCORE) for c, n in sizes.items() for _ in range(n)]
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")


def plan_order(sizes: Mapping[str, int]) -> list[tuple[str, str]]:
    """Our stage order: (stage, category) for stage 1 over every category, then stage 2."""
    return [(m, c) for m in (EDIT, SCORE) for c, n in sizes.items() if n > 0]


def swaps(
    name: str, sizes: Mapping[str, int], need_edit: int, need_score: int, capacity: int
) -> int:
    """Swaps a schedule needs under ``capacity`` bytes (0 when both models fit together)."""
    if need_edit + need_score <= capacity:
        return 0
    seq = [m for m, _ in schedule(name, sizes)]
    return sum(a != b for a, b in zip(seq, seq[1:], strict=False))


def compare(sizes: Mapping[str, int], need_edit: int, need_score: int, capacity: int) -> dict:
    """Swaps for every schedule, for the report: {"naive": ..., "per_category": ..., "ours": ...}."""
    return {s: swaps(s, sizes, need_edit, need_score, capacity) for s in SCHEDULES}


def simulate(name: str, sizes: Mapping[str, int], manager) -> int:
    """Drive ``manager.acquire`` through a schedule; returns the swaps the manager counted."""
    before = manager.swaps
    for model, _ in schedule(name, sizes):
        manager.acquire(model)
    return manager.swaps - before
