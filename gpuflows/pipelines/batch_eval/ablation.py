"""Integrity by modality ablation: does the model use both channels?

Per query, nDCG@10 of the baseline against four ablations of the *candidates'* features:

* ``visual-zero`` / ``text-zero``: the channel's vectors set to zero;
* ``visual-perm`` / ``text-perm``: the channel's vectors replaced by those of another query's
  candidates (a derangement of the queries, candidate position j kept, modulo the other list's
  length): the "perceptual score" way, which keeps the inputs realistic.

Statistics of each per-query paired drop ``d = nDCG(baseline) - nDCG(ablated)``:

* mean and a 95 % bootstrap CI (``scipy.stats.bootstrap``, BCa; percentile when every drop is
  equal and BCa is undefined);
* a paired randomization test (sign flips of d, one-sided: drop > 0) by
  ``scipy.stats.permutation_test``, whose randomized p-value is ``(b + 1) / (N + 1)`` (b = null
  statistics at least the observed one, N = resamples);
* Holm's step-down correction across the four ablations.

The check passes when the lower CI bound of every drop exceeds ``threshold`` (0.01): a model
that ignores a channel shows drops of 0 for it and fails.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.models.reranker import Reranker
from gpuflows.pipelines.batch_eval import scoring

ABLATIONS = ("visual-zero", "visual-perm", "text-zero", "text-perm")


class DropStats(BaseModel):
    """One ablation's per-query drops, summarised."""

    ablation: str
    n: int
    mean_drop: float
    ci_low: float
    ci_high: float
    ci_method: str
    p_value: float = Field(description="Randomization test, (b+1)/(N+1), one-sided.")
    p_holm: float = Field(description="Holm-adjusted across the ablations.")
    n_permutations: int
    passed: bool
    drops: list[float] = Field(description="Per-query drops, in query order.")


class AblationResult(BaseModel):
    baseline_ndcg10: float
    threshold: float
    drops: list[DropStats]
    query_ids: list[str]
    passed: bool

    def check(self) -> CheckResult:
        worst = min(self.drops, key=lambda d: d.ci_low)
        failed = [d.ablation for d in self.drops if not d.passed]
        return CheckResult(
            name="modality_ablation",
            passed=self.passed,
            numbers={d.ablation: round(d.ci_low, 4) for d in self.drops}
            | {"threshold": self.threshold},
            reason=(
                f"every drop's lower 95 % bound > {self.threshold} (lowest: {worst.ablation} "
                f"{worst.ci_low:.4f})"
                if self.passed
                else f"lower 95 % bound <= {self.threshold} for {', '.join(failed)}: the model "
                "does not rely on that channel"
            ),
        )


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation of range(n) with no fixed point (a cyclic shift of a shuffled order)."""
    if n < 2:
        raise ValueError("permutation ablation needs at least 2 queries")
    order = np.random.default_rng([seed, 13]).permutation(n)
    perm = np.empty(n, np.int64)
    perm[order] = np.roll(order, 1)
    return perm


def permuted(lists: scoring.Lists, channel: str, seed: int) -> scoring.Lists:
    """``lists`` with ``channel`` ('t' or 'v') taken from another query's candidates."""
    src = getattr(lists, channel)
    perm = derangement(len(lists), seed)
    out = np.zeros_like(src)
    lengths = lists.mask.sum(1)
    for i, p in enumerate(perm):
        n = int(lengths[i])
        pos = np.arange(n) % int(lengths[p])
        out[i, :n] = src[p, pos]
    return replace(lists, **{channel: out})


def ablated(lists: scoring.Lists, name: str, seed: int) -> scoring.Lists:
    ch = {"visual": "v", "text": "t"}[name.split("-")[0]]
    if name.endswith("zero"):
        return replace(lists, **{ch: np.zeros_like(getattr(lists, ch))})
    return permuted(lists, ch, seed)


def holm(p: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (same order as given)."""
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def drop_ci(d: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, str]:
    if np.ptp(d) == 0:  # every drop equal: the bootstrap distribution is one point
        return float(d[0]), float(d[0]), "degenerate (all drops equal)"
    rng = np.random.default_rng([seed, 17])
    res = stats.bootstrap((d,), np.mean, n_resamples=n_boot, method="BCa", rng=rng)
    lo, hi = res.confidence_interval
    if not (np.isfinite(lo) and np.isfinite(hi)):
        res = stats.bootstrap((d,), np.mean, n_resamples=n_boot, method="percentile", rng=rng)
        return float(res.confidence_interval.low), float(res.confidence_interval.high), "percentile"
    return float(lo), float(hi), "BCa"


def paired_p(base: np.ndarray, abl: np.ndarray, n_perm: int, seed: int) -> float:
    res = stats.permutation_test(
        (base, abl),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        alternative="greater",
        n_resamples=n_perm,
        vectorized=True,
        rng=np.random.default_rng([seed, 19]),
    )
    return float(res.pvalue)


def run_ablation(
    model: Reranker,
    lists: scoring.Lists,
    *,
    threshold: float = 0.01,
    n_bootstrap: int = 2000,
    n_permutations: int = 2000,
    seed: int = 0,
) -> AblationResult:
    """Baseline vs the four ablations on ``lists``; statistics as in the module docstring."""
    base = scoring.per_query(model, lists)["ndcg10"]
    raw = []
    for name in ABLATIONS:
        abl = scoring.per_query(model, ablated(lists, name, seed))["ndcg10"]
        d = base - abl
        lo, hi, how = drop_ci(d, n_bootstrap, seed)
        raw.append((name, d, lo, hi, how, paired_p(base, abl, n_permutations, seed)))
    adj = holm([r[5] for r in raw])
    drops = [
        DropStats(
            ablation=name,
            n=len(d),
            mean_drop=float(d.mean()),
            ci_low=lo,
            ci_high=hi,
            ci_method=how,
            p_value=p,
            p_holm=a,
            n_permutations=n_permutations,
            passed=lo > threshold,
            drops=d.tolist(),
        )
        for (name, d, lo, hi, how, p), a in zip(raw, adj, strict=True)
    ]
    return AblationResult(
        baseline_ndcg10=float(base.mean()),
        threshold=threshold,
        drops=drops,
        query_ids=list(lists.qids),
        passed=all(x.passed for x in drops),
    )
