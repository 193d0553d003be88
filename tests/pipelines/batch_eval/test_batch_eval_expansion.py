"""Set expansion hits its size and hard share, hard measured by the model; MDE from the spread."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gpuflows.pipelines.batch_eval import expansion, scoring
from gpuflows.pipelines.batch_eval.generate import grade, query_text


@pytest.mark.parametrize("share", [0.3, 0.5])
def test_hard_share_is_targeted_and_measured(world, encoder, share):
    data, model = world["data"], world["model"]
    base = data.split("test")["query_id"].tolist()
    out, res = expansion.expand(
        data,
        base,
        model,
        encoder,
        target_size=70,
        hard_share=share,
        hard_below=0.85,
        compose=query_text,
        grade=grade,
        diff_sd=0.1,
        seed=0,
    )
    assert res.achieved_size == 70 and res.base_size == 40
    assert abs(res.achieved_hard_share - share) <= 1 / 70 + 1e-12
    # hard is what the model measures on the expanded set, re-scored from scratch
    lists = scoring.build_lists(out, encoder, res.query_ids)
    nd = scoring.per_query(model, lists)["ndcg10"]
    assert np.allclose(nd, res.ndcg10) and ((nd < 0.85) == np.array(res.hard)).all()
    new = [expansion.canonical(c) for c in out.queries["constraints"][len(data.queries) :]]
    old = {expansion.canonical(c) for c in data.queries["constraints"]}
    assert len(new) == 30 and len(set(new)) == 30 and not set(new) & old  # de-duplicated
    assert "selected by this model" in res.note


def test_mde_has_power_080():
    sd, n = 0.12, 500
    d = expansion.min_detectable_effect(sd, n)
    approx = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * sd / math.sqrt(n)
    assert d == pytest.approx(approx, rel=0.01)
    tcrit = stats.t.ppf(0.975, n - 1)
    nc = d * math.sqrt(n) / sd
    assert stats.nct.sf(tcrit, n - 1, nc) + stats.nct.cdf(-tcrit, n - 1, nc) == pytest.approx(0.8)
    assert expansion.min_detectable_effect(sd, 120) > d  # smaller sets detect only larger effects
