"""Scoring: option parsing (unparsed = wrong), Wilson CIs against SciPy, rows per c_r."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from gpuflows.pipelines.argo_experiment.data import Question
from gpuflows.pipelines.argo_experiment.scoring import (
    aggregate,
    expand_rows,
    majority_baseline,
    parse_choice,
    wilson,
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("The evidence says 312. <choice>2</choice>", 2),
        ("Reasoning... <choice>3", 3),  # the synthesizer stops at </choice>
        ("So the answer is 4.", 4),
        ("Option 1 is correct because ...", 1),
        ("blah\n3", 3),
        ("<choice>7</choice>", None),  # out of range
        ("I am not sure.", None),
        ("", None),
    ],
)
def test_parse_choice(text, want):
    assert parse_choice(text, 4) == want


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (57, 100)])
def test_wilson_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def _ep(strategy, answer, tc=0.0, ts=0.9, retrievals=1, qid="q1"):
    return {
        "episode": f"{qid}|{strategy}|{tc}",
        "question_id": qid,
        "difficulty": "easy",
        "strategy": strategy,
        "seed": 0,
        "theta_cont": tc,
        "theta_star": ts,
        "actions": ["retrieve"] * retrievals,
        "retrievals": retrievals,
        "successful_retrievals": retrievals,
        "reasoning_steps": 0,
        "answer": answer,
        "answer_key": 2,
        "n_options": 4,
        "errors": [],
    }


def test_rows_share_baselines_across_c_r_and_argo_by_thresholds():
    eps = [
        _ep("always_retrieve", "<choice>2"),
        _ep("argo", "<choice>1", tc=0.9, ts=0.96, retrievals=3),
        _ep("argo", "no idea", tc=0.0, ts=0.96, retrievals=0),
    ]
    table = [
        {"c_r": 0.01, "theta_cont": 0.9, "theta_star": 0.96},
        {"c_r": 0.02, "theta_cont": 0.9, "theta_star": 0.96},
        {"c_r": 0.05, "theta_cont": 0.0, "theta_star": 0.96},
    ]
    rows = expand_rows(eps, table, c_p=0.02)
    assert len(rows) == 6  # 3 c_r points x (1 baseline + 1 ARGO)
    base = [r for r in rows if r["strategy"] == "always_retrieve"]
    assert {r["episode"] for r in base} == {eps[0]["episode"]} and all(r["correct"] for r in base)
    argo = {r["c_r"]: r for r in rows if r["strategy"] == "argo"}
    assert argo[0.02]["cost"] == pytest.approx(0.06) and not argo[0.02]["correct"]
    assert argo[0.05]["parsed_choice"] is None and not argo[0.05]["correct"]  # unparsed = wrong
    agg = {(a["strategy"], a["c_r"]): a for a in aggregate(rows)}
    assert agg[("argo", 0.05)]["parse_fail_rate"] == 1.0
    assert agg[("always_retrieve", 0.01)]["accuracy"] == 1.0


def test_majority_baseline():
    qs = [
        Question(
            id=f"q{i}", question=f"Q{i}?", options=("a", "b", "c", "d"), answer=a, difficulty="easy"
        )
        for i, a in enumerate([1, 2, 2, 3])
    ]
    mb = majority_baseline(qs)
    assert mb["easy"] == {"option": 2, "accuracy": 0.5, "n": 4}
