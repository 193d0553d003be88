"""Set expansion: from the base evaluation set to a target size with a target share of hard queries.

* New queries are composed from the dataset's attribute vocabulary: a category plus one or more
  other hard constraints, worded by ``compose`` (the generator's template for the embedded
  default; paraphrasing through an LLM is not wired here). A constraint set already in the
  dataset, or composed twice, is dropped (de-duplication on the canonical constraint set, so
  two wordings of one request count once).
* Each new query's candidate list is drawn (seeded) from the dataset's candidate pool: mostly
  candidates of the query's category, half of them meeting at least one other constraint, a
  few of other categories; relevance is graded from the candidates' attributes (``grade``).
* *Hard* is measured with the model: nDCG@10 below ``hard_below`` (stated in the report), never
  a label. Hard queries are kept until the expanded set holds ``hard_share`` of them, the rest
  are filled with easy ones. Selecting by the model's own score biases the set's mean nDCG
  downwards for this model: that is the purpose (stress the model), and the report says so.
* Minimum detectable effect at the achieved size: the smallest mean paired difference a
  two-sided one-sample t-test (alpha 0.05) detects with power 0.8, from the measured standard
  deviation of per-query differences (noncentral t, solved with ``scipy.optimize.brentq``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import optimize, stats

from gpuflows.models.reranker import Reranker, TextEncoder
from gpuflows.pipelines.batch_eval import scoring
from gpuflows.pipelines.batch_eval.schema import BatchEvalData

Grade = Callable[[dict, dict], int]
Compose = Callable[[dict, int], str]


class ExpansionResult(BaseModel):
    base_size: int
    target_size: int
    achieved_size: int
    target_hard_share: float
    achieved_hard_share: float
    hard_rule: str
    composed: int
    duplicates_dropped: int
    query_ids: list[str]
    hard: list[bool]
    ndcg10: list[float]
    mde: float | None
    mde_sd: float
    note: str


def canonical(constraints: dict) -> tuple:
    return tuple(sorted((str(k), str(v)) for k, v in constraints.items()))


def constraint_space(vocab: dict[str, list[str]], seed: int) -> list[dict[str, str]]:
    """Every (category + >= 1 other constraint) set over the vocabulary, in a seeded order."""
    others = [k for k in vocab if k != "category"]
    out = []
    for cat in vocab.get("category", []):
        for r in range(1, len(others) + 1):
            for keys in itertools.combinations(others, r):
                for vals in itertools.product(*(vocab[k] for k in keys)):
                    out.append({"category": cat, **dict(zip(keys, vals, strict=True))})
    order = np.random.default_rng([seed, 29]).permutation(len(out))
    return [out[i] for i in order]


def draw_list(data: BatchEvalData, cons: dict, k: int, rng: np.random.Generator) -> np.ndarray:
    """Candidate rows for a composed query: ~90 % its category (half of those meeting another
    constraint), the rest from other categories; no candidate twice."""
    attrs = data.candidates["attributes"].tolist()
    same = [i for i, a in enumerate(attrs) if a.get("category") == cons["category"]]
    near = [
        i
        for i in same
        if any(a == cons[c] for c, a in attrs[i].items() if c in cons and c != "category")
    ]
    other = [i for i, a in enumerate(attrs) if a.get("category") != cons["category"]]
    n_other = max(1, k // 10) if other else 0
    n_near = min(len(near), (k - n_other) // 2)
    pick = list(rng.choice(near, n_near, replace=False)) if n_near else []
    rest = [i for i in same if i not in set(pick)]
    pick += list(rng.choice(rest, min(len(rest), k - n_other - len(pick)), replace=False))
    pick += list(rng.choice(other, min(n_other, k - len(pick)), replace=False)) if other else []
    return np.asarray(pick, dtype=np.int64)


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean paired difference detectable by a two-sided one-sample t-test."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    df, tcrit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)

    def gap(delta: float) -> float:
        nc = delta * math.sqrt(n) / sd
        lower = stats.nct.cdf(-tcrit, df, nc)  # the far tail: NaN in SciPy where it is ~0
        return stats.nct.sf(tcrit, df, nc) + (0.0 if math.isnan(lower) else lower) - power

    approx = (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * sd / math.sqrt(n)
    return float(optimize.brentq(gap, 0.5 * approx, 2 * approx))


def expand(
    data: BatchEvalData,
    base_ids: list[str],
    model: Reranker,
    encoder: TextEncoder,
    *,
    target_size: int,
    hard_share: float,
    hard_below: float,
    compose: Compose,
    grade: Grade,
    diff_sd: float,
    seed: int = 0,
    chunk: int = 64,
) -> tuple[BatchEvalData, ExpansionResult]:
    """The expanded dataset (new queries in the test split) and what was achieved."""
    base = scoring.build_lists(data, encoder, base_ids)
    base_ndcg = scoring.per_query(model, base)["ndcg10"]
    hard = (base_ndcg < hard_below).tolist()
    ids, ndcg = list(base_ids), base_ndcg.tolist()
    need_hard = max(0, math.ceil(hard_share * target_size) - sum(hard))
    need_easy = max(0, target_size - len(ids) - need_hard)
    seen = {canonical(c) for c in data.queries["constraints"]}
    k = int(data.judgments.groupby("query_id").size().median())
    rng = np.random.default_rng([seed, 31])
    new_q, new_j, composed, dup = [], [], 0, 0
    space = constraint_space(data.vocabulary(), seed)
    cursor = 0
    while (need_hard or need_easy) and cursor < len(space):
        batch = []
        while len(batch) < chunk and cursor < len(space):
            cons = space[cursor]
            cursor += 1
            composed += 1
            if canonical(cons) in seen:
                dup += 1
                continue
            seen.add(canonical(cons))
            batch.append(cons)
        trial = _with_queries(data, batch, compose, grade, k, rng)
        tids = trial.queries["query_id"].tolist()[len(data.queries) :]
        lists = scoring.build_lists(trial, encoder, tids)
        nd = scoring.per_query(model, lists)["ndcg10"]
        qrows = trial.queries.iloc[len(data.queries) :].reset_index(drop=True)
        jrows = trial.judgments.iloc[len(data.judgments) :]
        for i, qid in enumerate(tids):
            is_hard = bool(nd[i] < hard_below)
            if is_hard and need_hard:
                need_hard -= 1
            elif not is_hard and need_easy:
                need_easy -= 1
            else:
                continue
            nid = f"x{len(new_q):05d}"
            new_q.append({**qrows.iloc[i].to_dict(), "query_id": nid})
            new_j.append(jrows[jrows["query_id"] == qid].assign(query_id=nid))
            ids.append(nid)
            hard.append(is_hard)
            ndcg.append(float(nd[i]))
    out = BatchEvalData(
        pd.concat(
            [data.queries, pd.DataFrame(new_q, columns=data.queries.columns)], ignore_index=True
        ),
        data.candidates,
        pd.concat([data.judgments, *new_j], ignore_index=True),
        name=data.name + "-expanded",
        version=data.version,
        synthetic=data.synthetic,
        description=data.description + f"; expanded to {len(ids)} test queries",
    )
    n = len(ids)
    note = (
        "hard queries were selected by this model's own nDCG@10, so the expanded set is harder "
        "for it by construction"
        + ("" if n >= target_size else f"; the vocabulary ran out at {n} < {target_size}")
    )
    return out, ExpansionResult(
        base_size=len(base_ids),
        target_size=target_size,
        achieved_size=n,
        target_hard_share=hard_share,
        achieved_hard_share=sum(hard) / n,
        hard_rule=f"nDCG@10 of the model < {hard_below:g}",
        composed=composed,
        duplicates_dropped=dup,
        query_ids=ids,
        hard=hard,
        ndcg10=ndcg,
        mde=min_detectable_effect(diff_sd, n),
        mde_sd=diff_sd,
        note=note,
    )


def _with_queries(data, batch, compose, grade, k, rng) -> BatchEvalData:
    attrs = data.candidates["attributes"].tolist()
    cids = data.candidates["candidate_id"].tolist()
    qs, js = [], []
    for i, cons in enumerate(batch):
        qid = f"tmp{i:05d}"
        qs.append({"query_id": qid, "text": compose(cons, i), "split": "test", "constraints": cons})
        for r in draw_list(data, cons, k, rng):
            js.append(
                {"query_id": qid, "candidate_id": cids[r], "relevance": grade(attrs[r], cons)}
            )
    return BatchEvalData(
        pd.concat([data.queries, pd.DataFrame(qs)], ignore_index=True),
        data.candidates,
        pd.concat([data.judgments, pd.DataFrame(js)], ignore_index=True),
    )
