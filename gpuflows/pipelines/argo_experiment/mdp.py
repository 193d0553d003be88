"""ARGO's MDP over information progress U, solved by vectorised value iteration.

State U in [0, U_max] on a uniform grid of ``grid`` points. Actions (reference: ARGO2's
``ARGO_MDP/src/mdp_solver.py``):

* Retrieve: U' = min(U + delta_r, U_max) with probability p_s, else U' = U; reward -mu*c_r.
* Reason: U' = min(U + delta_p, U_max); reward -mu*c_p.
* Terminate: reward sigma(U), the quality of an answer given at progress U.

Next states are snapped to the nearest grid point. Value iteration is Jacobi (every Q from the
previous sweep's V), as the reference, but over whole NumPy arrays: a grid of 1000 converges in
about a thousand sweeps of three vector operations, milliseconds.

Thresholds read from the converged Q:

* theta_star = the first U where Terminate is at least as good as both other actions (U_max
  if it never is);
* theta_cont = 0 if Reason beats Retrieve at U=0; else the first U below theta_star where Reason
  beats Retrieve; theta_star if Reason never does (retrieve until stopping).

Comparisons allow ``atol`` (1e-12) of float noise, ties going to Retrieve as in the reference's
action choice (``Q_retrieve >= Q_reason``). It matters: with c_r = c_p (the calibrated case at
c_r = 0.020) Q(Retrieve) and Q(Reason) are exactly equal on whole stretches of the grid, and a
strict comparison would read a rounding error of 1e-16 as "Reason wins" (theta_cont 0.68
instead of 0.95, measured).

The policy: retrieve while U < theta_cont, reason while theta_cont <= U < theta_star, stop at
U >= theta_star.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

QUALITIES = ("linear", "sqrt", "sigmoid", "saturating")


def quality(u: np.ndarray, *, u_max: float, mode: str = "linear", k: float = 1.0) -> np.ndarray:
    """sigma(U) of x = U/U_max: x, sqrt(x), 1/(1+exp(-k(x-1/2))) or 1-exp(-k x)."""
    x = np.asarray(u, dtype=np.float64) / u_max
    if mode == "linear":
        return x
    if mode == "sqrt":
        return np.sqrt(x)
    if mode == "sigmoid":
        return 1.0 / (1.0 + np.exp(-k * (x - 0.5)))
    if mode == "saturating":
        return 1.0 - np.exp(-k * x)
    raise ValueError(f"quality={mode!r} unknown: use one of {list(QUALITIES)}")


@dataclass(frozen=True)
class Thresholds:
    """The solved policy: the two thresholds, the iterations it took, and the Q table."""

    theta_cont: float
    theta_star: float
    iterations: int
    converged: bool
    u: np.ndarray = field(repr=False)
    q: np.ndarray = field(repr=False)  # (grid, 3): retrieve, reason, terminate

    def action(self, u: float) -> str:
        """'retrieve', 'reason' or 'terminate' at progress ``u`` under the threshold policy."""
        if u >= self.theta_star:
            return "terminate"
        return "retrieve" if u < self.theta_cont else "reason"

    def key(self) -> tuple[float, float]:
        """The pair episodes depend on (rounded to the grid's float noise)."""
        return (round(self.theta_cont, 9), round(self.theta_star, 9))


def _check(name: str, value: float, lo: float, hi: float, *, lo_open: bool = False) -> None:
    bad = value <= lo if lo_open else value < lo
    if bad or value > hi or not np.isfinite(value):
        side = "(" if lo_open else "["
        raise ValueError(f"{name}={value!r} must be in {side}{lo}, {hi}]")


def solve_thresholds(
    *,
    delta_r: float,
    delta_p: float,
    p_s: float,
    c_r: float,
    c_p: float,
    mu: float = 1.0,
    gamma: float = 0.98,
    u_max: float = 1.0,
    grid: int = 1000,
    quality: str = "linear",  # noqa: A002 - the reference's name for sigma's shape
    quality_k: float = 1.0,
    tol: float = 1e-12,
    atol: float = 1e-12,
    max_iter: int = 100_000,
) -> Thresholds:
    """Value iteration on the U grid; returns :class:`Thresholds` (``theta_cont``, ``theta_star``).

    Example:
        >>> t = solve_thresholds(delta_r=0.135, delta_p=0.044, p_s=0.8, c_r=0.02, c_p=0.02)
        >>> round(t.theta_cont, 2), round(t.theta_star, 2)
    """
    _check("u_max", u_max, 0.0, np.inf, lo_open=True)
    _check("delta_r", delta_r, 0.0, u_max)
    _check("delta_p", delta_p, 0.0, u_max)
    _check("p_s", p_s, 0.0, 1.0)
    _check("c_r", c_r, 0.0, np.inf)
    _check("c_p", c_p, 0.0, np.inf)
    _check("mu", mu, 0.0, np.inf)
    _check("gamma", gamma, 0.0, 1.0, lo_open=True)
    if gamma >= 1.0:
        raise ValueError("gamma=1 does not converge with zero costs: use gamma < 1 (e.g. 0.98)")
    if grid < 2:
        raise ValueError(f"grid={grid} must be at least 2 points")
    sigma_fn = globals()["quality"]
    u = np.linspace(0.0, u_max, grid)
    step = u_max / (grid - 1)
    i_r = np.rint(np.minimum(u + delta_r, u_max) / step).astype(np.intp)
    i_p = np.rint(np.minimum(u + delta_p, u_max) / step).astype(np.intp)
    terminate = sigma_fn(u, u_max=u_max, mode=quality, k=quality_k)
    cost_r, cost_p = -mu * c_r, -mu * c_p
    v = terminate.copy()
    converged, it = False, 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        q_r = cost_r + gamma * (p_s * v[i_r] + (1.0 - p_s) * v)
        q_p = cost_p + gamma * v[i_p]
        new = np.maximum(np.maximum(q_r, q_p), terminate)
        diff = float(np.max(np.abs(new - v)))
        v = new
        if diff < tol:
            converged = True
            break
    q_r = cost_r + gamma * (p_s * v[i_r] + (1.0 - p_s) * v)
    q_p = cost_p + gamma * v[i_p]
    q = np.stack([q_r, q_p, terminate], axis=1)
    stop = np.flatnonzero(terminate >= np.maximum(q_r, q_p) - atol)
    i_star = int(stop[0]) if stop.size else grid - 1
    theta_star = float(u[i_star]) if stop.size else float(u_max)
    if q_p[0] - q_r[0] > atol:
        theta_cont = 0.0
    else:
        reason = np.flatnonzero(q_p[:i_star] - q_r[:i_star] > atol)
        theta_cont = float(u[reason[0]]) if reason.size else theta_star
    return Thresholds(theta_cont, theta_star, it, converged, u, q)
