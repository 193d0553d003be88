"""two-stage-eval score statistics against numpy / scipy, edge cases, the markdown table."""

import math

import numpy as np
import pytest
from scipy import stats

from gpuflows.pipelines.two_stage_eval.bench import CATEGORIES
from gpuflows.pipelines.two_stage_eval.score_stats import (
    describe,
    render_markdown,
    summarize,
    summarize_scores,
)


def _reference(x: np.ndarray, level: float = 0.95) -> dict:
    # the scale-respecting interval: SciPy's BCa bootstrap of the mean (n >= 5, some spread)
    if len(x) < 5:
        lo = hi = math.nan
    else:
        ci = stats.bootstrap(
            (np.sort(x),),
            np.mean,
            confidence_level=level,
            n_resamples=9999,
            method="BCa",
            rng=np.random.default_rng(0),
        ).confidence_interval
        lo, hi = max(0.0, ci.low), min(10.0, ci.high)
    return {
        "mean": np.mean(x),
        "std": np.std(x, ddof=1),
        "ci_low": lo,
        "ci_high": hi,
        "min": np.min(x),
        "max": np.max(x),
    }


@pytest.mark.parametrize("seed", range(5))
def test_describe_matches_numpy_and_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 10, int(rng.integers(2, 200)))
    level = (0.95, 0.9, 0.99)[seed % 3]
    d = describe(x, n_failed=seed, level=level)
    assert d["n_scored"] == len(x) and d["n_failed"] == seed
    for key, want in _reference(x, level).items():
        assert d[key] == pytest.approx(want, abs=1e-12, nan_ok=True), key


def test_summarize_per_category_and_overall_on_random_records():
    rng = np.random.default_rng(7)
    records, kept = [], {c: [] for c in CATEGORIES}
    for _ in range(400):
        cat = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        u = rng.random()
        if u < 0.1:
            records.append((cat, None, "no score in the answer"))
        elif u < 0.15:
            records.append((cat, 5.0, "scored but flagged"))  # an error makes it a failure
        elif u < 0.2:
            records.append((cat, float("nan"), None))
        else:
            s = float(rng.integers(0, 11))
            records.append((cat, s, None))
            kept[cat].append(s)
    out = summarize_scores(records)
    assert list(out) == [*CATEGORIES, "overall"]
    for cat, xs in kept.items():
        n_cat = sum(r[0] == cat for r in records)
        assert out[cat]["n_scored"] == len(xs) and out[cat]["n_failed"] == n_cat - len(xs)
        for key, want in _reference(np.array(xs)).items():
            assert out[cat][key] == pytest.approx(want, abs=1e-12, nan_ok=True), (cat, key)
    every = np.array([s for xs in kept.values() for s in xs])
    assert out["overall"]["n_scored"] == len(every)
    assert out["overall"]["n_failed"] == len(records) - len(every)
    for key, want in _reference(every).items():
        assert out["overall"][key] == pytest.approx(want, abs=1e-12), key


def test_edge_cases_all_failed_and_single_score():
    out = summarize_scores(
        [("physical", None, "timeout"), ("物理", None, None), ("social", 7.0, None)]
    )
    phys, social = out["physical"], out["social"]
    assert (phys["n_scored"], phys["n_failed"]) == (0, 2)
    assert all(math.isnan(phys[k]) for k in ("mean", "std", "ci_low", "ci_high", "min", "max"))
    assert social["mean"] == social["min"] == social["max"] == 7.0 and social["n_scored"] == 1
    assert all(math.isnan(social[k]) for k in ("std", "ci_low", "ci_high"))
    assert out["overall"]["n_scored"] == 1 and out["overall"]["n_failed"] == 2
    empty = summarize_scores([])
    assert list(empty) == ["overall"] and empty["overall"]["n_scored"] == 0


def test_fixed_rows_two_tuples_and_other_categories():
    out = summarize_scores(
        [("causal", 4.0), ("causal", 6.0), ("extra", 1.0)], categories=CATEGORIES
    )
    assert list(out) == [*CATEGORIES, "extra", "overall"]
    assert out["physical"]["n_scored"] == 0 and out["causal"]["mean"] == 5.0
    assert summarize([("causal", 4.0), ("causal", None)])["causal"]["n_failed"] == 1


def test_render_markdown():
    table = render_markdown(
        summarize_scores(
            [("social", 6.0, None), ("social", 8.0, None), ("causal", None, "bad answer")]
        )
    )
    lines = table.splitlines()
    assert lines[0].startswith("| category | scored | failed | mean | std | 95 % CI |")
    social = next(ln for ln in lines if ln.startswith("| social "))
    assert social.startswith("| social | 2 | 0 | 7.00 | 1.41 | n/a |")  # n = 2: no interval
    assert "| causal | 0 | 1 | n/a | n/a | n/a | n/a | n/a |" in lines
    assert lines[-1].startswith("| overall | 2 | 1 | 7.00 |")


def test_interval_respects_the_scale_and_says_when_n_is_too_small():
    # high scores at small n: a Student-t interval reached 10.95; this one stays on the scale
    high = describe([10.0, 10.0, 9.0, 10.0, 7.0, 10.0])
    assert 0.0 <= high["ci_low"] <= high["mean"] <= high["ci_high"] <= 10.0
    assert high["ci_method"] == "bootstrap BCa"
    xs = np.array([10.0, 10.0, 9.0, 10.0, 7.0, 10.0])
    t_hi = stats.t.interval(0.95, len(xs) - 1, loc=xs.mean(), scale=stats.sem(xs))[1]
    assert t_hi > 10.0  # what the old interval said
    # equal scores: no spread to resample; Hoeffding's bounded interval, not [9.90, 9.90]
    same = describe([9.9] * 8)
    assert same["std"] == 0.0 and same["ci_method"] == "hoeffding (no spread)"
    assert same["ci_low"] < 9.9 and same["ci_high"] == 10.0
    half = 10.0 * math.sqrt(math.log(2 / 0.05) / 16)
    assert same["ci_low"] == pytest.approx(9.9 - half)
    # n = 2: too few for an interval, and the reason is stated
    two = describe([9.9, 9.9])
    assert math.isnan(two["ci_low"]) and two["ci_method"] == "none: n=2 < 5 scores"


def test_rejected_pairs_are_counted_apart_from_failed_ones():
    out = summarize_scores(
        [("social", 6.0, None), ("social", None, "no number"), ("causal", 5.0, None)],
        rejected=["social", "社会", None, "no-such-category"],
    )
    assert (out["social"]["n_failed"], out["social"]["n_rejected"]) == (1, 2)
    assert out["causal"]["n_rejected"] == 0
    assert (out["overall"]["n_failed"], out["overall"]["n_rejected"]) == (1, 4)  # all of them
    lines = render_markdown(out).splitlines()
    assert lines[0].startswith("| category | scored | failed | rejected | mean |")
    assert any(ln.startswith("| social | 1 | 1 | 2 | 6.00 |") for ln in lines)
    assert "rejected" not in render_markdown(summarize_scores([("social", 6.0, None)]))
