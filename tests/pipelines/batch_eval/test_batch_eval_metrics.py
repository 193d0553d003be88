"""nDCG@10 against ir-measures (pytrec_eval) to 1e-9, ties, compliance, TREC files re-scored."""

from __future__ import annotations

import numpy as np
import pytest

from gpuflows.pipelines.batch_eval import metrics


def _random_lists(seed, b=30, k=15):
    rng = np.random.default_rng(seed)
    rel = rng.integers(0, 4, (b, k))
    mask = np.ones((b, k), bool)
    for i in range(b):
        mask[i, rng.integers(5, k + 1) :] = False
    scores = np.round(rng.standard_normal((b, k)), 1)  # rounding makes ties
    rel[3] = 0  # a query with no relevant candidate: nDCG 0 on both sides
    return scores, rel, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ndcg_matches_ir_measures(tmp_path, seed):
    scores, rel, mask = _random_lists(seed)
    qids = [f"q{i}" for i in range(len(rel))]
    ids = np.array([[f"d{i}-{j}" for j in range(rel.shape[1])] for i in range(len(rel))])
    qrels = metrics.write_qrels(tmp_path / "qrels.txt", qids, ids, rel, mask)
    run = metrics.write_run(tmp_path / "run.txt", qids, ids, scores, mask, "test")
    ours = metrics.ndcg_at(scores, rel, mask)
    lib = metrics.library_ndcg10(qrels, run)
    for i, q in enumerate(qids):
        assert abs(ours[i] - lib.get(q, 0.0)) < 1e-9, q
    assert ours[3] == 0.0


def test_ties_broken_by_position_and_hand_value():
    scores = np.array([[1.0, 1.0, 0.5]])
    rel = np.array([[0, 3, 1]])
    mask = np.ones((1, 3), bool)
    assert metrics.ranking(scores, mask).tolist() == [[0, 1, 2]]
    dcg = 0 + 3 / np.log2(3) + 1 / np.log2(4)
    idcg = 3 + 1 / np.log2(3)
    assert metrics.ndcg_at(scores, rel, mask)[0] == pytest.approx(dcg / idcg, abs=1e-12)


def test_compliance_counts_top10_only():
    scores = -np.arange(12.0)[None, :]  # candidate j ranked j-th
    ok = np.zeros((1, 12), bool)
    ok[0, [0, 1, 11]] = True
    assert metrics.compliance_at(scores, ok, np.ones((1, 12), bool))[0] == pytest.approx(0.2)
