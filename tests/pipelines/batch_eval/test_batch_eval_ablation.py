"""Modality ablation: the trained model passes; a model that ignores a channel fails; the
statistics are SciPy's with the stated conventions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gpuflows.pipelines.batch_eval import ablation, scoring


@pytest.fixture(scope="module")
def result(world):
    return ablation.run_ablation(
        world["model"], world["test"], n_bootstrap=500, n_permutations=500, seed=0
    )


def test_trained_model_uses_both_channels(result):
    assert result.passed, result.check().reason
    assert {d.ablation for d in result.drops} == set(ablation.ABLATIONS)
    for d in result.drops:
        assert d.ci_low > 0.01 and d.ci_low <= d.mean_drop <= d.ci_high
        assert d.p_holm >= d.p_value
    assert result.check().passed


@pytest.mark.parametrize("channel", ["visual", "text"])
def test_model_ignoring_a_channel_fails(world, channel):
    blind = scoring.blind(world["model"], channel)
    res = ablation.run_ablation(blind, world["test"], n_bootstrap=200, n_permutations=200)
    assert not res.passed
    failed = {d.ablation for d in res.drops if not d.passed}
    assert failed == {f"{channel}-zero", f"{channel}-perm"}
    for d in res.drops:
        if d.ablation.startswith(channel):
            assert d.mean_drop == 0.0 and d.p_value == 1.0
    check = res.check()
    assert not check.passed and f"{channel}-zero" in check.reason


def test_permutation_moves_every_query():
    perm = ablation.derangement(17, seed=3)
    assert sorted(perm) == list(range(17)) and (perm != np.arange(17)).all()


def test_randomization_p_is_b_plus_one_over_n_plus_one():
    rng = np.random.default_rng(0)
    base = rng.random(40)
    abl = base - rng.normal(0.01, 0.05, 40)
    p = ablation.paired_p(base, abl, 999, seed=1)
    ref = stats.permutation_test(
        (base, abl),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        alternative="greater",
        n_resamples=999,
        vectorized=True,
        rng=np.random.default_rng([1, 19]),
    )
    b = int((ref.null_distribution >= ref.statistic * (1 - 1e-14)).sum())
    assert p == pytest.approx((b + 1) / 1000, abs=1e-12)


def test_holm_by_hand():
    # p sorted 0.01, 0.02, 0.04 -> 0.03, max(0.03, 0.04)=0.04, max(0.04, 0.04)=0.04
    assert ablation.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert ablation.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
