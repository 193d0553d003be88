"""The four strategies as threshold policies over progress U, and the deduplicated run plan.

Every strategy is "retrieve while U < theta_cont, reason while U < theta_star, then stop":

* ``argo`` -- theta_cont and theta_star from the MDP solver at the run's c_r;
* ``always_retrieve`` -- theta_cont above any U; stops at ``baseline_theta_star`` (0.9, as the
  reference's baselines);
* ``always_reason`` -- theta_cont = 0;
* ``random`` -- Retrieve or Reason 50/50 per step, drawn from (question, seed, step).

U moves as in the MDP: +delta_r on a successful retrieval, +delta_p per reasoning step, capped
at U_max. Episodes end at theta_star or after ``max_steps`` steps.

Deduplication (:func:`plan_groups`): the baselines do not depend on c_r, so they form one group
run once per (question, seed) for every c_r point; ARGO depends on c_r only through
(theta_cont, theta_star), so c_r points with equal thresholds share one ARGO group.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gpuflows.pipelines.argo_experiment.mdp import solve_thresholds
from gpuflows.pipelines.argo_experiment.params import ArgoParams

ALWAYS = 2.0  # a theta_cont above every U: always retrieve


@dataclass(frozen=True)
class Policy:
    strategy: str
    theta_cont: float
    theta_star: float

    def action(self, u: float, *, question_id: str, seed: int, step: int) -> str:
        """'retrieve', 'reason' or 'terminate' at progress ``u``."""
        if u >= self.theta_star:
            return "terminate"
        if self.strategy == "random":
            raw = hashlib.sha256(f"random|{question_id}|{seed}|{step}".encode()).digest()
            return "retrieve" if raw[0] < 128 else "reason"
        return "retrieve" if u < self.theta_cont else "reason"

    @property
    def key(self) -> str:
        return f"{self.strategy}@{self.theta_cont:.6f},{self.theta_star:.6f}"


@dataclass(frozen=True)
class Group:
    """Policies run together (one task per chunk of questions), and the c_r points they serve."""

    name: str
    policies: tuple[Policy, ...]
    c_r: tuple[float, ...]


def baseline_policy(strategy: str, theta_star: float) -> Policy:
    cont = {"always_retrieve": ALWAYS, "always_reason": 0.0, "random": 0.0}[strategy]
    return Policy(strategy, cont, theta_star)


def plan_groups(p: ArgoParams) -> tuple[list[Group], list[dict]]:
    """The groups to run and the thresholds table (one row per c_r point)."""
    groups: list[Group] = []
    base = [s for s in p.strategies if s != "argo"]
    if base:
        pols = tuple(baseline_policy(s, p.baseline_theta_star) for s in base)
        groups.append(Group("baselines", pols, tuple(p.c_r)))
    table: list[dict] = []
    by_key: dict[tuple[float, float], list[float]] = {}
    for c in p.c_r:
        t = solve_thresholds(c_r=c, u_max=1.0, **p.mdp_kwargs())
        table.append(
            {
                "c_r": c,
                "theta_cont": t.theta_cont,
                "theta_star": t.theta_star,
                "iterations": t.iterations,
                "converged": t.converged,
            }
        )
        by_key.setdefault(t.key(), []).append(c)
    if "argo" in p.strategies:
        for i, ((cont, star), costs) in enumerate(sorted(by_key.items())):
            groups.append(Group(f"argo-{i}", (Policy("argo", cont, star),), tuple(costs)))
            for row in table:
                if row["c_r"] in costs:
                    row["group"] = f"argo-{i}"
    return groups, table
