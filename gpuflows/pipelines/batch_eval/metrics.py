"""nDCG@10, compliance@10, and the TREC run / qrels files any IR tool can re-score.

Conventions (those of ``trec_eval``'s ``ndcg_cut.10``, so ``ir-measures`` / ``pytrec_eval`` give
the same numbers, tested to 1e-9):

* gain = the graded relevance (linear, 0..3), discount = 1 / log2(rank + 1), rank from 1;
* ideal DCG from every judged candidate of the query; a query with no relevant candidate has
  nDCG 0;
* ties: scores are made strictly decreasing before ranking, ties broken by the candidate's
  position in its list (first wins). The run file carries ``K - rank`` as its score, so a tool's
  own tie-breaking (``trec_eval`` sorts ties by document id) cannot reorder it.

compliance@10 = share of the top 10 that meets every hard constraint of the query (a query with
fewer than 10 candidates: share of its whole list).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

K = 10


def ranking(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Order (B, K) of candidate positions, best first; padding last; ties: earlier position."""
    s = np.where(mask, scores, -np.inf)
    # lexsort: last key primary -> by -score, then by position
    pos = np.broadcast_to(np.arange(s.shape[1]), s.shape)
    return np.stack([np.lexsort((pos[i], -s[i])) for i in range(s.shape[0])])


def ndcg_at(scores: np.ndarray, rel: np.ndarray, mask: np.ndarray, k: int = K) -> np.ndarray:
    """Per-query nDCG@k (B,) with linear gain (trec_eval's convention)."""
    order = ranking(scores, mask)
    rel = np.where(mask, rel, 0).astype(np.float64)
    ranked = np.take_along_axis(rel, order, axis=1)[:, :k]
    disc = 1.0 / np.log2(np.arange(2, ranked.shape[1] + 2))
    dcg = (ranked * disc).sum(1)
    ideal = -np.sort(-rel, axis=1)[:, :k]
    idcg = (ideal * disc[: ideal.shape[1]]).sum(1)
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def compliance_at(scores: np.ndarray, ok: np.ndarray, mask: np.ndarray, k: int = K) -> np.ndarray:
    """Per-query share of the top k meeting every hard constraint (B,)."""
    order = ranking(scores, mask)
    top = order[:, :k]
    valid = np.take_along_axis(mask, top, axis=1)
    hit = np.take_along_axis(ok, top, axis=1) & valid
    return hit.sum(1) / np.maximum(valid.sum(1), 1)


def top2_margin(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Score of the best candidate minus the second best, per query."""
    s = np.sort(np.where(mask, scores, -np.inf), axis=1)
    return s[:, -1] - s[:, -2]


def write_qrels(path: str | Path, qids, cand_ids: np.ndarray, rel, mask) -> Path:
    """TREC qrels: ``qid 0 docno relevance`` per judged candidate."""
    lines = []
    for qi, qid in enumerate(qids):
        for j in np.flatnonzero(mask[qi]):
            lines.append(f"{qid} 0 {cand_ids[qi][j]} {int(rel[qi, j])}")
    return _write(path, lines)


def write_run(path: str | Path, qids, cand_ids: np.ndarray, scores, mask, tag: str) -> Path:
    """TREC run: ``qid Q0 docno rank score tag``, score ``K - rank`` (strictly decreasing)."""
    order = ranking(scores, mask)
    lines = []
    for qi, qid in enumerate(qids):
        n = int(mask[qi].sum())
        for r, j in enumerate(order[qi][:n], start=1):
            lines.append(f"{qid} Q0 {cand_ids[qi][j]} {r} {n - r + 1} {tag}")
    return _write(path, lines)


def _write(path: str | Path, lines: list[str]) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(p)
    return p


def library_ndcg10(qrels_path: str | Path, run_path: str | Path) -> dict[str, float]:
    """Per-query nDCG@10 of TREC files by ``ir-measures`` (pytrec_eval underneath)."""
    import ir_measures
    from ir_measures import nDCG

    qrels = ir_measures.read_trec_qrels(str(qrels_path))
    run = ir_measures.read_trec_run(str(run_path))
    return {m.query_id: float(m.value) for m in ir_measures.iter_calc([nDCG @ K], qrels, run)}
