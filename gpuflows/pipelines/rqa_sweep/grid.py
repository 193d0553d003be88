"""The sweep grid: named presets and the compute units a grid needs.

Presets (m, tau, eps, l_min; eps in z-score units of the normalised series):

- ``smoke``: 3 x 2 x 3 x 2 = 36 combinations, for the demo and the tests.
- ``seed-test``: the seed's benchmark, m = 1..12, tau = 1, eps = 0.06, l_min = 2.
- ``full``: m 1..12 x tau 1..5 x 17 eps (0.02..0.34 in steps of 0.02, bracketing the seed's
  0.06 and 0.08) x l_min 2..11 = 10,200 combinations, the seed's task size.

A compute unit is one (m, tau): its distances serve every eps and l_min. m = 1 embeds x[i]
alone, so its distances do not depend on tau: it is computed once and reused for every tau.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "smoke": {"m": [1, 2, 3], "tau": [1, 2], "eps": [0.1, 0.3, 0.6], "l_min": [2, 3]},
    "seed-test": {"m": list(range(1, 13)), "tau": [1], "eps": [0.06], "l_min": [2]},
    "full": {
        "m": list(range(1, 13)),
        "tau": list(range(1, 6)),
        "eps": [round(0.02 * k, 2) for k in range(1, 18)],
        "l_min": list(range(2, 12)),
    },
}


def compute_units(ms, taus) -> list[tuple[int, int, int]]:
    """(m, tau, tau_computed) for every grid point, in grid order: the other taus of m = 1
    reuse the rows of its first tau (``tau_computed`` names the unit whose rows they are)."""
    first = list(taus)[0]
    return [(m, t, first if m == 1 else t) for m in ms for t in taus]


def n_computed(ms, taus) -> int:
    """How many (m, tau) units a grid computes (m = 1 once)."""
    return len({(m, tc) for m, _, tc in compute_units(ms, taus)})


def relabel_tau(columns: dict[str, list], tau: int) -> dict[str, list]:
    """A copy of a unit's tidy columns with its ``tau`` column set to ``tau``."""
    out = {k: list(v) for k, v in columns.items()}
    out["tau"] = [tau] * len(out["tau"])
    return out


def combinations_per_unit(ms, taus, n_eps: int, n_l_min: int) -> dict[tuple[int, int], int]:
    """Grid combinations each computed (m, tau) unit accounts for, in grid order (m = 1 stands
    for every tau): the progress a finished unit adds."""
    per_unit: dict[tuple[int, int], int] = {}
    for m, _, tau_c in compute_units(ms, taus):
        per_unit[(m, tau_c)] = per_unit.get((m, tau_c), 0) + n_eps * n_l_min
    return per_unit


def expand_units(computed: dict[tuple[int, int], dict], ms, taus) -> list[dict]:
    """One unit result per grid (m, tau), in grid order: the m = 1 unit's result once per tau,
    each copy's ``columns`` relabelled with its own tau."""
    return [
        {**computed[(m, tau_c)], "columns": relabel_tau(computed[(m, tau_c)]["columns"], tau)}
        if tau != tau_c
        else computed[(m, tau)]
        for m, tau, tau_c in compute_units(ms, taus)
    ]


def units_by_pair(rows: list[dict]) -> dict[tuple[int, int], dict]:
    """``{(m, tau): result}`` of a ``[{"m", "tau", "result"}]`` list (a subflow's JSON return)."""
    return {(r["m"], r["tau"]): r["result"] for r in rows}
