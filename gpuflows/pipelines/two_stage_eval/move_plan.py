"""How many model moves each two-stage schedule needs: naive, per category (the seed), ours.

Stage 1 uses the edit model, stage 2 the reward ("score") model; categories c = 1..C hold n_c
pairs, n = Σ n_c. The schedules, as seed 004 describes its loops:

* ``naive`` (the seed's original loop): per pair, edit, score, and bring the edit model back
  ("每个pair需要切换2次: Diffusion → Reward, Reward → Diffusion").
* ``per_category`` (the seed's optimisation): per category, every edit, then every score; the
  edit model comes back before the next category only ("4次类别间恢复").
* ``ours``: every edit of every category, then every score.

Counting convention (the same as :class:`gpuflows.core.memory.residency.ResidencyManager` records):

* One **swap** = one placement of a model that needs the other off the device first: model A
  off + model B on, counted once. The first placement on an empty device is a *load*, not a swap.
  With a budget that holds one model: naive = 2·n (540 for the seed's 270 pairs), per_category =
  2·C − 1 (9 for 5 categories), ours = 1. With a budget that holds both: 0 for every schedule.
* One **transfer** = one load or one offload (one
  :class:`~gpuflows.core.memory.residency.MoveRecord`): transfers = 1 + 2·swaps when one model
  fits (the initial load, then off + on per swap), and the number of models used when both fit
  (their initial loads). Nothing is offloaded at the end.

Bytes are the units of every need and capacity. Pure arithmetic: no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

EDIT, SCORE = "edit", "score"
SCHEDULES = ("naive", "per_category", "ours")


class Use(NamedTuple):
    """One use of a model in a schedule: a pair-stage, or a ``restore`` (bring it back, no work)."""

    model: str
    category: str
    restore: bool = False


class _Manager(Protocol):
    swaps: int

    def acquire(self, name: str) -> Any: ...


def _check_sizes(sizes: Mapping[str, int]) -> None:
    for c, n in sizes.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"sizes[{c!r}]={n!r}: a category size must be an integer >= 0 pairs")


def _check_needs(need_edit: int, need_score: int, capacity: int) -> bool:
    """True when both models fit together; ValueError when one can never fit."""
    if capacity <= 0:
        raise ValueError(f"capacity={capacity} bytes: give the VRAM budget in bytes > 0")
    for name, need in ((EDIT, need_edit), (SCORE, need_score)):
        if not 0 <= need <= capacity:
            raise ValueError(
                f"need of the {name} model = {need} bytes, budget {capacity} bytes: a need must be "
                ">= 0 and fit the budget alone; use a smaller dtype, shard the model or a larger "
                "GPU"
            )
    return need_edit + need_score <= capacity


def resident_need(need_edit: int, need_score: int, capacity: int) -> int:
    """Device bytes the run holds at its peak: both models when they fit together, else the
    larger one (they take turns). What a flow holds of the GPU's VRAM limit.

    Example:
        >>> resident_need(6, 8, 20), resident_need(6, 8, 10)
        (14, 8)
    """
    both = _check_needs(need_edit, need_score, capacity)
    return need_edit + need_score if both else max(need_edit, need_score)


def schedule(name: str, sizes: Mapping[str, int]) -> list[Use]:
    """The sequence of model uses a schedule makes, in order (one per pair-stage, plus restores)."""
    _check_sizes(sizes)
    cats = [(c, n) for c, n in sizes.items() if n > 0]
    if name == "naive":
        return [
            u
            for c, n in cats
            for _ in range(n)
            for u in (Use(EDIT, c), Use(SCORE, c), Use(EDIT, c, True))
        ]
    if name == "per_category":
        out: list[Use] = []
        for i, (c, n) in enumerate(cats):
            if i:
                out.append(Use(EDIT, c, True))
            out += [Use(EDIT, c)] * n + [Use(SCORE, c)] * n
        return out
    if name == "ours":
        return [Use(m, c) for m, c in plan_order(sizes) for _ in range(sizes[c])]
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")


def plan_order(sizes: Mapping[str, int]) -> list[tuple[str, str]]:
    """Our stage order: (stage, category) for stage 1 over every non-empty category, then
    stage 2."""
    _check_sizes(sizes)
    return [(m, c) for m in (EDIT, SCORE) for c, n in sizes.items() if n > 0]


def count_sequence(models: Iterable[str], *, fits_both: bool) -> tuple[int, int]:
    """(swaps, transfers) of acquiring ``models`` in order from an empty device, by replay."""
    seq = list(models)
    if fits_both:
        return 0, len(set(seq))
    swaps = sum(a != b for a, b in zip(seq, seq[1:], strict=False))
    return swaps, (1 + 2 * swaps) if seq else 0


def swaps(
    name: str, sizes: Mapping[str, int], need_edit: int, need_score: int, capacity: int
) -> int:
    """Swaps a schedule needs under ``capacity`` bytes, in closed form (see the module doc)."""
    _check_sizes(sizes)
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
    n, c = sum(sizes.values()), sum(1 for v in sizes.values() if v > 0)
    if _check_needs(need_edit, need_score, capacity) or n == 0:
        return 0
    return {"naive": 2 * n, "per_category": 2 * c - 1, "ours": 1}[name]


def transfers(
    name: str, sizes: Mapping[str, int], need_edit: int, need_score: int, capacity: int
) -> int:
    """Loads + offloads a schedule makes from an empty device (initial loads included)."""
    k = swaps(name, sizes, need_edit, need_score, capacity)
    if sum(sizes.values()) == 0:
        return 0
    return 2 if need_edit + need_score <= capacity else 1 + 2 * k


def compare(sizes: Mapping[str, int], need_edit: int, need_score: int, capacity: int) -> dict:
    """Swaps of every schedule, for the report: {"naive": ..., "per_category": ..., "ours": ...}."""
    return {s: swaps(s, sizes, need_edit, need_score, capacity) for s in SCHEDULES}


def compare_transfers(
    sizes: Mapping[str, int], need_edit: int, need_score: int, capacity: int
) -> dict:
    """Transfers (loads + offloads) of every schedule: {"naive": ..., ...}."""
    return {s: transfers(s, sizes, need_edit, need_score, capacity) for s in SCHEDULES}


def swaps_from_records(records: Sequence[Any]) -> int:
    """Swaps in a list of :class:`~gpuflows.core.memory.residency.MoveRecord`: loads that follow
    at least one offload since the previous load (the convention above; the manager's ``swaps``
    agrees)."""
    n, off = 0, False
    for r in records:
        if r.direction == "offload":
            off = True
        elif off:
            n, off = n + 1, False
    return n


def simulate(name: str, sizes: Mapping[str, int], manager: _Manager) -> int:
    """Drive ``manager.acquire`` through a schedule; returns the swaps the manager counted."""
    before = manager.swaps
    for use in schedule(name, sizes):
        manager.acquire(use.model)
    return manager.swaps - before
