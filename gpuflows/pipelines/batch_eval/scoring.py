"""From a dataset to padded model inputs, a trained re-ranker, and scored lists.

Every score here is a forward pass of :class:`gpuflows.models.reranker.Reranker`; nothing is
drawn from a random number generator to stand in for one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gpuflows.models.reranker import FusionHead, Reranker, TextEncoder, TrainReport, train_head
from gpuflows.pipelines.batch_eval import metrics
from gpuflows.pipelines.batch_eval.schema import BatchEvalData


@dataclass
class Lists:
    """Padded candidate lists of B queries (K = longest list)."""

    qids: list[str]
    texts: list[str]
    q: np.ndarray  # (B, D) query embeddings
    t: np.ndarray  # (B, K, D) caption embeddings
    v: np.ndarray  # (B, K, V) visual vectors
    rel: np.ndarray  # (B, K) graded relevance
    ok: np.ndarray  # (B, K) meets every hard constraint
    mask: np.ndarray  # (B, K) real candidate (not padding)
    cand_ids: np.ndarray  # (B, K) candidate ids ('' for padding)

    def __len__(self) -> int:
        return len(self.qids)

    def subset(self, rows: np.ndarray) -> Lists:
        rows = np.asarray(rows)
        return Lists(
            [self.qids[i] for i in rows],
            [self.texts[i] for i in rows],
            *(getattr(self, k)[rows] for k in ("q", "t", "v", "rel", "ok", "mask", "cand_ids")),
        )


def meets(attrs: dict, constraints: dict) -> bool:
    return all(attrs.get(k) == v for k, v in constraints.items())


def build_lists(data: BatchEvalData, encoder: TextEncoder, query_ids: list[str]) -> Lists:
    """Encode the queries and captions (each distinct text once) and pad the lists."""
    lists = data.lists()
    qrows = data.queries.set_index("query_id")
    K = max(len(lists[q][0]) for q in query_ids)
    B, D, V = len(query_ids), 384, data.visual_dim
    captions = data.candidates["caption"].tolist()
    attrs = data.candidates["attributes"].tolist()
    cids = data.candidates["candidate_id"].to_numpy()
    texts = [str(qrows.loc[q, "text"]) for q in query_ids]
    needed = sorted({captions[i] for q in query_ids for i in lists[q][0]})
    cap_emb = dict(zip(needed, encoder.encode(needed), strict=True))
    t = np.zeros((B, K, D), np.float32)
    v = np.zeros((B, K, V), np.float32)
    rel = np.zeros((B, K), np.int64)
    ok = np.zeros((B, K), bool)
    mask = np.zeros((B, K), bool)
    ids = np.full((B, K), "", dtype=object)
    for b, qid in enumerate(query_ids):
        idx, r = lists[qid]
        n = len(idx)
        cons = qrows.loc[qid, "constraints"]
        t[b, :n] = np.stack([cap_emb[captions[i]] for i in idx])
        v[b, :n] = data.visual[idx]
        rel[b, :n], mask[b, :n], ids[b, :n] = r, True, cids[idx]
        ok[b, :n] = [meets(attrs[i], cons) for i in idx]
    q = encoder.encode(texts).astype(np.float32)
    return Lists(list(query_ids), texts, q, t, v, rel, ok, mask, ids)


def fit(
    encoder: TextEncoder, train: Lists, *, epochs: int, seed: int, out: str | Path
) -> tuple[Reranker, TrainReport]:
    """Train the fusion head on the train lists; the re-ranker with it."""
    head, report = train_head(
        train.q, train.t, train.v, train.rel, train.mask, epochs=epochs, seed=seed, out=out
    )
    return Reranker(encoder=encoder, head=head), report


def score(model: Reranker, lists: Lists, batch_size: int = 256) -> np.ndarray:
    """Scores (B, K) in batches of queries; padding gets -inf."""
    out = np.full(lists.rel.shape, -np.inf)
    for i in range(0, len(lists), batch_size):
        sl = slice(i, i + batch_size)
        out[sl] = model.score(lists.q[sl], lists.t[sl], lists.v[sl])
    return np.where(lists.mask, out, -np.inf)


def per_query(model: Reranker, lists: Lists) -> dict[str, np.ndarray]:
    """nDCG@10, compliance@10 and top-2 margin per query."""
    s = score(model, lists)
    return {
        "ndcg10": metrics.ndcg_at(s, lists.rel, lists.mask),
        "compliance10": metrics.compliance_at(s, lists.ok, lists.mask),
        "margin": metrics.top2_margin(s, lists.mask),
    }


def blind(model: Reranker, channel: str) -> Reranker:
    """The same model made to ignore ``channel`` ('text' or 'visual')."""
    return replace(model, ignore=(*model.ignore, channel), name=f"{model.name}-no-{channel}")


__all__ = ["FusionHead", "Lists", "blind", "build_lists", "fit", "per_query", "score"]
