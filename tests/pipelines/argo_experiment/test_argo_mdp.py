"""The ARGO MDP solver: hand-solvable cases, the calibrated step, speed, bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest

from gpuflows.pipelines.argo_experiment.mdp import quality, solve_thresholds

CAL = {"delta_r": 0.135, "delta_p": 0.044, "p_s": 0.8, "c_p": 0.02, "mu": 1.0, "gamma": 0.98}


def test_costly_steps_terminate_at_once():
    # every step costs more than the whole quality range: stopping at U=0 is optimal
    t = solve_thresholds(delta_r=0.1, delta_p=0.1, p_s=1.0, c_r=2.0, c_p=2.0, grid=101)
    assert t.theta_star == 0.0 and t.theta_cont == 0.0
    assert t.action(0.0) == "terminate"


def test_reason_only_stops_at_gamma_minus_cost():
    # p_s = 0: Retrieve never moves U, so Reason wins at U=0 (theta_cont = 0). Reasoning from
    # U >= 1 - delta reaches U_max: worth gamma*1 - c_p, so stop where U >= 0.98 - 0.025 = 0.955;
    # the first grid point (step 0.01) at or above it is 0.96.
    t = solve_thresholds(delta_r=0.1, delta_p=0.1, p_s=0.0, c_r=0.01, c_p=0.025, grid=101)
    assert t.theta_cont == 0.0
    assert t.theta_star == pytest.approx(0.96)
    assert t.action(0.5) == "reason" and t.action(0.96) == "terminate"


def test_cheaper_retrieve_with_same_gain_never_reasons():
    # same sure gain, lower cost: Retrieve dominates everywhere, theta_cont = theta_star
    t = solve_thresholds(delta_r=0.1, delta_p=0.1, p_s=1.0, c_r=0.01, c_p=0.02, grid=101)
    assert t.theta_cont == t.theta_star
    assert t.theta_star == pytest.approx(0.97)  # U >= gamma - c_r = 0.97 stops
    assert t.action(0.2) == "retrieve"


def test_dearer_retrieve_with_same_gain_reasons_from_zero():
    t = solve_thresholds(delta_r=0.1, delta_p=0.1, p_s=1.0, c_r=0.02, c_p=0.01, grid=101)
    assert t.theta_cont == 0.0 and t.theta_star == pytest.approx(0.97)


def test_calibrated_theta_cont_steps_between_0020_and_00205():
    at_020 = solve_thresholds(c_r=0.020, **CAL)
    at_0205 = solve_thresholds(c_r=0.0205, **CAL)
    assert at_020.theta_cont == pytest.approx(0.95, abs=0.01)
    assert at_0205.theta_cont == 0.0
    assert at_020.theta_star == pytest.approx(at_0205.theta_star)  # only theta_cont jumps
    # the step is monotone over the reference's sweep: retrieve-heavy below, reason-only above
    conts = [solve_thresholds(c_r=c, **CAL).theta_cont for c in (0.005, 0.01, 0.015, 0.02)]
    assert min(conts) > 0.9
    assert all(solve_thresholds(c_r=c, **CAL).theta_cont == 0.0 for c in (0.021, 0.025, 0.05))


def test_ties_go_to_retrieve_not_to_rounding_noise():
    # c_r == c_p: Q(Retrieve) == Q(Reason) exactly on stretches of the grid; a strict
    # comparison without tolerance read 1e-16 as "Reason wins" and gave theta_cont 0.68
    strict = solve_thresholds(c_r=0.020, atol=0.0, **CAL)
    assert strict.theta_cont < 0.7
    assert solve_thresholds(c_r=0.020, **CAL).theta_cont > 0.9


def test_grid_of_1000_well_under_a_second():
    t0 = time.perf_counter()
    t = solve_thresholds(c_r=0.02, grid=1000, **CAL)
    assert time.perf_counter() - t0 < 0.5
    assert t.converged and t.q.shape == (1000, 3)


def test_value_is_a_fixed_point():
    t = solve_thresholds(c_r=0.015, quality="sqrt", **CAL)
    v = t.q.max(axis=1)
    step = 1.0 / 999
    i_r = np.rint(np.minimum(t.u + 0.135, 1.0) / step).astype(int)
    q_r = -0.015 + 0.98 * (0.8 * v[i_r] + 0.2 * v)
    assert np.max(np.abs(q_r - t.q[:, 0])) < 1e-9


@pytest.mark.parametrize(
    ("mode", "expect"),
    [("linear", 0.25), ("sqrt", 0.5), ("sigmoid", 1 / (1 + np.exp(0.25))), ("saturating", None)],
)
def test_quality_shapes(mode, expect):
    got = float(quality(np.array([0.25]), u_max=1.0, mode=mode, k=1.0)[0])
    if expect is None:
        expect = 1 - np.exp(-0.25)
    assert got == pytest.approx(expect)


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"p_s": 1.5}, "p_s"),
        ({"gamma": 1.0}, "gamma"),
        ({"grid": 1}, "grid"),
        ({"quality": "cubic"}, "quality"),
        ({"c_r": -0.1}, "c_r"),
    ],
)
def test_bad_parameters_name_the_field(kw, words):
    args = {"delta_r": 0.1, "delta_p": 0.05, "p_s": 0.8, "c_r": 0.02, "c_p": 0.02} | kw
    with pytest.raises(ValueError, match=words):
        solve_thresholds(**args)
