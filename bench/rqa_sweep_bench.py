"""RQA parameter sweep: our sweep engine vs pyunicorn and AccRQA on the same data and grid (CPU).

In one process, on the synthetic gaze data (``gpuflows.pipelines.rqa_sweep.gaze.generate_dataset``, 2 subjects per
group = 6 subjects, 1,000 samples, series x, all z-scored once outside the timings and passed with
normalisation off), every engine does the same work: for every (subject, m, tau, eps, l_min) of
the grid m 1..4 x tau 1..2 x the full preset's 17 eps x its 10 l_min (2..11) (v_min = 2,
euclidean, Theiler 1), the measures RR, DET, L_mean, L_max, ENT, LAM, TT, V_max. The eps and
l_min axes are the full sweep's own (``gpuflows.pipelines.rqa_sweep.grid.PRESETS["full"]``); m, tau and n are
cut so that pyunicorn finishes in about a minute.

* **pyunicorn 1.0.0** (the exactness anchor), run the way a competent user would: one
  ``RecurrencePlot`` per (m, tau, eps), every l_min read from it (l_min does not change the
  recurrence matrix; pyunicorn caches its line histograms). Only the first
  ``--pyunicorn-subjects`` subjects are timed (all their combinations) and the time is scaled
  linearly to all subjects (stated in the output and the JSON). Its values are compared with
  ours on every timed combination.
* **AccRQA** (PyPI ``accrqa``, CPU OpenMP build): one ``DET`` call (all tau, m, l_min, eps) and one
  ``LAM`` call (v_min = 2) per subject. Its conventions differ (``dist <= eps``; the line of
  identity inside DET), so only the time of the same work is compared, not values. Its Python
  API takes 1-D series only (a joint x/y series is refused). Skipped, saying why, if not
  installed or failing.
* **ours**: ``gpuflows.pipelines.rqa_sweep.engine.sweep_units`` (numba backend) once for
  every (subject, m, tau) unit of the grid (m = 1 once for every tau: its distances do not
  depend on tau): one pass per (series, tau) serves every m, and all passes run in one parallel
  region; then ``measures_batch.measures_tables`` once for every unit's (l_min, eps) table.
  JIT compilation is done before the timings. On two combinations the histograms are checked
  integer-identical to the reference ``gpuflows.pipelines.rqa_sweep.rqa.rqa_metrics``, and on
  every pyunicorn-timed combination the measures are compared with pyunicorn's.

Every engine's warm-up (JIT, library load, first call) is outside the timed region, and each is
timed ``--repeats`` times (>= 3): the figures are medians, with min and max in the JSON, and the
ratios are of medians. The load average before and after is recorded (a shared host's load
changes the figures by up to 12x: quote only a quiet run).

Projection to the full grid (m 1..12 x tau 1..5 x 17 eps x l_min 2..11 = 10,200 combinations)
on the seed-scale workload (60 subjects x 5,000 samples x series x, y, xy): ours from one
call with two (series, tau) items at n = 5,000, tau = 1 (m 1..12) and tau = 5 (m 2..12), for
d = 1 and d = 2 (time / 2 per item), x 60 subjects x 5 tau x (2 d=1 + 1 d=2 series);
pyunicorn from one combination timed at n = 5,000 ((m, tau) = (6, 3), middle eps), x 10,200 x
180; AccRQA from the units (m, tau) = (1, 1) and (12, 5), timed at n = 5,000 (DET over all 17
eps and 10 l_min, LAM at v_min = 2), x 60 x 180 (its xy series priced as x: it cannot run them).

    python bench/rqa_sweep_bench.py [--subjects-per-group 2] [--n-samples 1000]
        [--pyunicorn-subjects 1] [--no-projection]

Writes ``bench/results/rqa-sweep-cpu.json``; the last line printed is the summary.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
RESULT = REPO_ROOT / "bench" / "results" / "rqa-sweep-cpu.json"

from bench.record import provenance, write_result  # noqa: E402
from gpuflows.pipelines.rqa_sweep import engine as rqa_engine  # noqa: E402
from gpuflows.pipelines.rqa_sweep import gaze, rqa  # noqa: E402
from gpuflows.pipelines.rqa_sweep.grid import PRESETS, compute_units  # noqa: E402
from gpuflows.pipelines.rqa_sweep.measures_batch import measures_tables  # noqa: E402

FULL = PRESETS["full"]
FULL_M, FULL_TAU, FULL_EPS, FULL_LMIN = FULL["m"], FULL["tau"], np.array(FULL["eps"]), FULL["l_min"]
FULL_COMBOS = len(FULL_M) * len(FULL_TAU) * len(FULL_EPS) * len(FULL_LMIN)  # 10,200
SEED_SUBJECTS, SEED_SAMPLES, SEED_SERIES = 60, 5000, ("x", "y", "xy")
V_MIN = 2


def version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def series_of(df, subject: str, name: str) -> np.ndarray:
    s = df[df.subject_id == subject]
    return s[["x", "y"]].to_numpy() if name == "xy" else s[name].to_numpy()


# -- engines ------------------------------------------------------------------------------------


def run_ours(data: dict, ms, taus, eps, lmins) -> dict:
    """{series key: [(m, tau, measures table)]}: every compute unit of every series (m = 1 once:
    its distances do not depend on tau) in one ``sweep_units`` call (numba: one pass per
    (series, tau) for all m, every pass in one parallel region), then every unit's measures
    table of all (l_min, eps) in one ``measures_tables`` call. The other taus of m = 1 reuse
    its table."""
    keys = list(data)
    grid = compute_units(ms, taus)
    computed = list(dict.fromkeys((m, tau_c) for m, _, tau_c in grid))
    units = [(i, m, tau) for i in range(len(keys)) for m, tau in computed]
    hs = rqa_engine.sweep_units(
        [data[k] for k in keys], units, eps, normalize=False, backend="numba"
    )
    tables = dict(zip(units, measures_tables(hs, lmins, V_MIN), strict=True))
    return {
        k: [(m, tau, tables[(i, m, tau_c)]) for m, tau, tau_c in grid] for i, k in enumerate(keys)
    }


def as_rows(tables: list) -> dict:
    """{(m, tau, eps, l_min): {measure: value}} from run_ours' tables (outside the timings)."""
    rows = {}
    for m, tau, t in tables:
        for i in range(len(t["eps"])):
            rows[(m, tau, float(t["eps"][i]), int(t["l_min"][i]))] = {k: t[k][i] for k in t}
    return rows


def pyunicorn_plot(z: np.ndarray, m: int, tau: int, eps: float, lmins) -> dict:
    """One RecurrencePlot for (m, tau, eps); the measures of every l_min read from it."""
    from pyunicorn.timeseries import RecurrencePlot

    rp = RecurrencePlot(
        z, dim=m, tau=tau, metric="euclidean", normalize=False, threshold=eps, silence_level=10
    )
    common = {
        "RR": rp.recurrence_rate(),
        "L_max": rp.max_diaglength(),
        "LAM": rp.laminarity(v_min=V_MIN),
        "TT": rp.trapping_time(v_min=V_MIN),
        "V_max": rp.max_vertlength(),
    }
    return {
        lm: {
            **common,
            "DET": rp.determinism(l_min=lm),
            "L_mean": rp.average_diaglength(l_min=lm),
            "ENT": rp.diag_entropy(l_min=lm),
        }
        for lm in lmins
    }


def run_pyunicorn(z: np.ndarray, ms, taus, eps, lmins) -> dict:
    out = {}
    for m in ms:
        for tau in taus:
            for e in eps:
                for lm, vals in pyunicorn_plot(z, m, tau, float(e), lmins).items():
                    out[(m, tau, float(e), lm)] = vals
    return out


def accrqa_mods():
    import accrqa

    return accrqa, accrqa.accrqaDistance("euclidean"), accrqa.accrqaCompPlatform("cpu")


def run_accrqa(z: np.ndarray, ms, taus, eps, lmins):
    """One DET call (every tau, m, l_min, eps) and one LAM call (v_min = 2) on a 1-D series."""
    accrqa, dist, cpu = accrqa_mods()
    ints = lambda v: np.asarray(list(v), dtype=np.intc)  # noqa: E731
    t, m_, e_ = ints(taus), ints(ms), np.asarray(eps, dtype=np.float64)
    det = accrqa.DET(
        z, t, m_, ints(lmins), e_, dist, calculate_ENTR=True, comp_platform=cpu, tidy_data=False
    )
    lam = accrqa.LAM(
        z, t, m_, ints([V_MIN]), e_, dist, calculate_ENTR=True, comp_platform=cpu, tidy_data=False
    )
    return det, lam


def compare_pyunicorn(ours: dict, pyu: dict) -> dict:
    """Ours vs pyunicorn on every timed combination: L_max, V_max exact; ratios to 1e-6
    (pyunicorn adds 1e-8 to every denominator; NaN here where pyunicorn gives 0)."""
    n = bad = 0
    worst = 0.0
    keys: set = set()
    for key, p in pyu.items():
        o = ours[key]
        n += 1
        ok = o["L_max"] == p["L_max"] and o["V_max"] == p["V_max"]
        for k in ("RR", "DET", "L_mean", "ENT", "LAM", "TT"):
            a, b = float(o[k]), float(p[k])
            if math.isnan(a):
                ok &= abs(b) < 1e-6  # 0/0: NaN here, ~0 in pyunicorn
                continue
            d = abs(a - b) / max(1.0, abs(a))
            worst = max(worst, d)
            ok &= d < 1e-6
        bad += not ok
        if not ok:
            keys.add(key[:3])
    return {"combinations": n, "mismatches": bad, "max_rel_diff": worst, "keys": keys}


def explain_mismatch(z: np.ndarray, m: int, tau: int, eps: float) -> dict:
    """Where pyunicorn's R differs from the float64 reference: entries and their |dist - eps|."""
    from pyunicorn.timeseries import RecurrencePlot

    rp = RecurrencePlot(
        z, dim=m, tau=tau, metric="euclidean", normalize=False, threshold=eps, silence_level=10
    )
    v = rqa.embed(z, m, tau)
    diff = rp.recurrence_matrix().astype(bool) != rqa.recurrence_matrix(v, eps).astype(bool)
    i, j = np.nonzero(diff)
    d = np.sqrt(((v[i] - v[j]) ** 2).sum(axis=1)) if i.size else np.zeros(0)
    return {
        "m": m,
        "tau": tau,
        "eps": eps,
        "flipped_entries": int(i.size),
        "max_abs_dist_minus_eps": float(np.abs(d - eps).max()) if i.size else None,
        "float32_eps_rounds_to": float(np.float32(eps)),
    }


def check_reference(z: np.ndarray, combos, eps) -> list[dict]:
    """Ours vs gpuflows.pipelines.rqa_sweep.rqa.rqa_metrics: integer histograms identical, measures equal."""
    rows = []
    for m, tau, e_idx, lm in combos:
        (h,) = rqa_engine.sweep_units([z], [(0, m, tau)], eps, normalize=False, backend="numba")
        ref = rqa.rqa_metrics(z, m, tau, float(h.eps[e_idx]), lm, v_min=V_MIN, normalize=False)
        mine = h.metrics(lm, V_MIN)[e_idx]
        same_hist = np.array_equal(h.P_d[e_idx], ref["P_d"]) and np.array_equal(
            h.P_v[e_idx], ref["P_v"]
        )
        same_vals = all(
            (mine[k] == ref[k]) or (math.isnan(mine[k]) and math.isnan(ref[k]))
            for k in ("RR", "DET", "L_max", "L_mean", "ENT", "LAM", "TT", "V_max")
        )
        rows.append(
            {
                "m": m,
                "tau": tau,
                "eps": float(h.eps[e_idx]),
                "l_min": lm,
                "N": h.N,
                "histograms_identical": bool(same_hist),
                "measures_identical": bool(same_vals),
            }
        )
    return rows


def timed(fn, *args):
    t0 = time.perf_counter()
    r = fn(*args)
    return time.perf_counter() - t0, r


def spread(samples: list[float]) -> dict:
    """Median and min/max of repeated timings (s)."""
    return {
        "median_s": round(float(np.median(samples)), 4),
        "min_s": round(min(samples), 4),
        "max_s": round(max(samples), 4),
        "samples_s": [round(x, 4) for x in samples],
    }


def repeated(repeats: int, fn, *args) -> tuple[list[float], Any]:
    """``repeats`` timings of ``fn(*args)``; the last result."""
    ts, r = [], None
    for _ in range(repeats):
        t, r = timed(fn, *args)
        ts.append(t)
    return ts, r


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects-per-group", type=int, default=2)
    ap.add_argument("--n-samples", type=int, default=1000)
    ap.add_argument("--series", nargs="+", default=["x"], choices=["x", "y", "xy"])
    ap.add_argument("--m", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--tau", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--eps", type=float, nargs="+", default=FULL["eps"])
    ap.add_argument("--l-min", type=int, nargs="+", default=FULL["l_min"])
    ap.add_argument("--pyunicorn-subjects", type=int, default=1, help="timed, then scaled")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per engine (>= 3)")
    ap.add_argument("--no-projection", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULT)
    a = ap.parse_args(argv)
    if a.repeats < 3:
        ap.error("--repeats must be >= 3: the spread over repeated runs is part of the result")
    load_before = os.getloadavg()

    import numba

    from gpuflows.core.hardware.devices import cpu_name

    t_start = time.perf_counter()
    ms, taus, lmins = a.m, a.tau, a.l_min
    eps = np.unique(np.asarray(a.eps, dtype=np.float64))
    df = gaze.generate_dataset(a.subjects_per_group, a.n_samples, seed=0)
    subjects = list(dict.fromkeys(df.subject_id))
    data = {(s, name): rqa.zscore(series_of(df, s, name)) for s in subjects for name in a.series}
    per_subject_series = len(ms) * len(taus) * len(eps) * len(lmins)
    n_combos = per_subject_series * len(data)
    print(
        f"grid: {len(subjects)} subjects x series {a.series} x m {ms} x tau {taus} x "
        f"{len(eps)} eps {eps.tolist()} x l_min {lmins} = {n_combos} combinations; "
        f"n = {a.n_samples} samples; {cpu_name()} ({os.cpu_count()} cores, "
        f"numba {numba.__version__} threads {numba.get_num_threads()})"
    )
    notes: list[str] = []

    # ours (JIT warm-up first, on every dimension the grid uses, outside the timings)
    for z in {v.ndim: v for v in data.values()}.values():
        run_ours({"warm-up": z[:300]}, ms[:2], taus[:1], eps, lmins)

    ours_ts, ours_raw = repeated(a.repeats, run_ours, data, ms, taus, eps, lmins)
    ours = {key: as_rows(r) for key, r in ours_raw.items()}
    t_ours = float(np.median(ours_ts))
    print(
        f"ours (numba sweep_units, all units in one call + measures_tables): median {t_ours:.3f} s "
        f"(min {min(ours_ts):.3f}, max {max(ours_ts):.3f}, {a.repeats} runs)"
    )

    z0 = data[(subjects[0], a.series[0])]
    ref_rows = check_reference(z0, [(ms[-1], taus[-1], len(eps) // 2, lmins[0]), (1, 1, 0, 3)], eps)
    ref_ok = all(r["histograms_identical"] and r["measures_identical"] for r in ref_rows)
    print(
        f"ours == gpuflows.pipelines.rqa_sweep.rqa.rqa_metrics (integer histograms, measures): {ref_ok} {ref_rows}"
    )

    # pyunicorn on a stated subset, scaled linearly
    pyu_version = version("pyunicorn")
    pyu_keys = [k for k in data if k[0] in subjects[: a.pyunicorn_subjects]]
    t_pyu_meas, pyu_cmp = 0.0, {"combinations": 0, "mismatches": 0, "max_rel_diff": 0.0}
    if pyu_version is None:
        t_pyu = None
        notes.append("pyunicorn not installed: skipped")
    else:
        pyunicorn_plot(z0[:200], 1, 1, 0.3, lmins)  # import and first-call costs untimed

        def all_pyu():
            return {key: run_pyunicorn(data[key], ms, taus, eps, lmins) for key in pyu_keys}

        pyu_ts, pyu_res = repeated(a.repeats, all_pyu)
        t_pyu_meas = float(np.median(pyu_ts))
        for key in pyu_keys:
            r = pyu_res[key]
            c = compare_pyunicorn(ours[key], r)
            pyu_cmp["combinations"] += c["combinations"]
            pyu_cmp["mismatches"] += c["mismatches"]
            pyu_cmp["max_rel_diff"] = max(pyu_cmp["max_rel_diff"], c["max_rel_diff"])
            pyu_cmp.setdefault("explained", []).extend(
                explain_mismatch(data[key], *k) for k in sorted(c["keys"])
            )
        pyu_timed = per_subject_series * len(pyu_keys)
        t_pyu = t_pyu_meas * n_combos / pyu_timed
        note = (
            f"pyunicorn timed on {pyu_timed} of {n_combos} combinations (subjects "
            f"{subjects[: a.pyunicorn_subjects]}, all their combinations), median "
            f"{t_pyu_meas:.2f} s (min {min(pyu_ts):.2f}, max {max(pyu_ts):.2f}), scaled "
            f"linearly x {n_combos / pyu_timed:g}"
        )
        notes.append(note)
        print(f"pyunicorn {pyu_version}, one plot per (m, tau, eps): {t_pyu:.2f} s ({note})")
        print(f"ours vs pyunicorn on those combinations: {pyu_cmp}")
        if pyu_cmp["mismatches"]:
            notes.append(
                "ours vs pyunicorn: mismatching combinations come from recurrence entries that "
                "pyunicorn decides differently; every flipped pair lies within float32 rounding of "
                "eps (see exactness.ours_vs_pyunicorn.explained: pyunicorn 1.0.0 compares at "
                "float32 precision there; ours and the reference use float64)"
            )

    # AccRQA
    acc_version = version("accrqa")
    t_acc, acc_why, acc_ts = None, None, []
    if acc_version is None:
        acc_why = "accrqa not installed (pip install accrqa): skipped"
    else:
        try:
            accrqa_mods()
            run_accrqa(z0[:200], [1], [1], eps[:1], [2])  # library load outside the timing
            one_d = [k for k in data if data[k].ndim == 1]
            if len(one_d) < len(data):
                notes.append("AccRQA: joint xy series skipped (its Python API takes 1-D only)")
            acc_ts, _ = repeated(
                a.repeats, lambda: [run_accrqa(data[k], ms, taus, eps, lmins) for k in one_d]
            )
            t_acc = float(np.median(acc_ts))
            if not one_d:
                t_acc, acc_why = None, "AccRQA: no 1-D series in the grid"
            elif len(one_d) < len(data):
                t_acc *= len(data) / len(one_d)
                acc_ts = [t * len(data) / len(one_d) for t in acc_ts]
                notes.append("AccRQA time scaled to all series from its 1-D ones")
        except Exception as exc:  # record why and go on
            t_acc, acc_why = None, f"AccRQA failed: {type(exc).__name__}: {exc}"
    if acc_why:
        notes.append(acc_why)
        print(acc_why)
    else:
        print(
            f"AccRQA {acc_version} (cpu, DET + LAM per subject): median {t_acc:.3f} s "
            f"(min {min(acc_ts):.3f}, max {max(acc_ts):.3f})"
        )

    r_pyu = t_pyu / t_ours if t_pyu else None
    r_acc = t_acc / t_ours if t_acc else None
    print(
        f"ratios: pyunicorn/ours {r_pyu and round(r_pyu, 1)}x (goal >= 100x), "
        f"AccRQA/ours {r_acc and round(r_acc, 2)}x (goal >= 5x)"
    )

    # projection to the full grid on the seed-scale workload
    proj: dict[str, Any] = {}
    if not a.no_projection:
        dfp = gaze.generate_dataset(1, SEED_SAMPLES, seed=0)
        sp = list(dict.fromkeys(dfp.subject_id))[0]
        zx, zxy = (rqa.zscore(series_of(dfp, sp, s)) for s in ("x", "xy"))
        units = [(1, 1), (12, 5)]
        unit_s = {}
        taus_p = [FULL_TAU[0], FULL_TAU[-1]]
        for d, z in (("d1", zx), ("d2", zxy)):
            # one call: the (series, tau) items tau = 1 (m 1..12) and tau = 5 (m 2..12), one per
            # thread; the grid has len(FULL_TAU) such items per series
            t, _ = timed(run_ours, {d: z}, FULL_M, taus_p, FULL_EPS, FULL_LMIN)
            unit_s[d] = t / len(taus_p)
            print(
                f"ours n={SEED_SAMPLES} {d}: tau {taus_p} x m 1..12 in one call {t:.3f} s "
                f"({unit_s[d]:.3f} s per (series, tau))"
            )
        n_mt = len(FULL_M) * len(FULL_TAU)
        ours_full = SEED_SUBJECTS * len(FULL_TAU) * (2 * unit_s["d1"] + unit_s["d2"])
        proj["ours_s"] = ours_full
        proj["ours_unit_d1_s"], proj["ours_unit_d2_s"] = unit_s["d1"], unit_s["d2"]
        total_combos = FULL_COMBOS * SEED_SUBJECTS * len(SEED_SERIES)
        if pyu_version is not None:
            e_mid = float(FULL_EPS[len(FULL_EPS) // 2])
            tp, _ = timed(pyunicorn_plot, zx, 6, 3, e_mid, FULL_LMIN)
            proj["pyunicorn_per_plot_s"] = tp
            proj["pyunicorn_s"] = tp * total_combos / len(FULL_LMIN)
            print(
                f"pyunicorn one plot (all {len(FULL_LMIN)} l_min) n={SEED_SAMPLES} (m,tau)=(6,3): "
                f"{tp:.3f} s"
            )
        if t_acc is not None:
            ta = [timed(run_accrqa, zx, [m], [tau], FULL_EPS, FULL_LMIN)[0] for m, tau in units]
            proj["accrqa_unit_s"] = float(np.mean(ta))
            proj["accrqa_s"] = proj["accrqa_unit_s"] * n_mt * SEED_SUBJECTS * len(SEED_SERIES)
            print(f"AccRQA unit n={SEED_SAMPLES} d1: (1,1) {ta[0]:.3f} s, (12,5) {ta[1]:.3f} s")
        print(
            f"full grid ({FULL_COMBOS} combinations x {SEED_SUBJECTS} subjects x "
            f"{len(SEED_SERIES)} series, n = {SEED_SAMPLES}) projected on this CPU: "
            f"ours {ours_full / 60:.1f} min"
            + (f", pyunicorn {proj['pyunicorn_s'] / 3600:.0f} h" if "pyunicorn_s" in proj else "")
            + (f", AccRQA {proj['accrqa_s'] / 60:.1f} min" if "accrqa_s" in proj else "")
        )

    def fig(v, unit):
        return {"value": None if v is None else round(float(v), 4), "unit": unit}

    figures = {
        "ours_s": fig(t_ours, "s"),
        "ours_min_s": fig(min(ours_ts), "s"),
        "ours_max_s": fig(max(ours_ts), "s"),
        "pyunicorn_s": fig(t_pyu, "s"),
        "pyunicorn_measured_s": fig(t_pyu_meas if t_pyu else None, "s"),
        "accrqa_s": fig(t_acc, "s"),
        "ratio_pyunicorn": fig(r_pyu, "x"),
        "ratio_accrqa": fig(r_acc, "x"),
        "ours_per_combination_ms": fig(1e3 * t_ours / n_combos, "ms"),
        "combinations": fig(n_combos, "count"),
    }
    if proj:
        figures["full_grid_ours_projected_s"] = fig(proj["ours_s"], "s")
        figures["full_grid_ours_unit_d1_s"] = fig(proj["ours_unit_d1_s"], "s")
        figures["full_grid_ours_unit_d2_s"] = fig(proj["ours_unit_d2_s"], "s")
        if "pyunicorn_s" in proj:
            figures["full_grid_pyunicorn_projected_s"] = fig(proj["pyunicorn_s"], "s")
            figures["full_grid_pyunicorn_per_plot_s"] = fig(proj["pyunicorn_per_plot_s"], "s")
            figures["full_grid_ratio_pyunicorn"] = fig(proj["pyunicorn_s"] / proj["ours_s"], "x")
        if "accrqa_s" in proj:
            figures["full_grid_accrqa_projected_s"] = fig(proj["accrqa_s"], "s")
            figures["full_grid_accrqa_unit_s"] = fig(proj["accrqa_unit_s"], "s")
            figures["full_grid_ratio_accrqa"] = fig(proj["accrqa_s"] / proj["ours_s"], "x")
    result = {
        "name": "rqa-sweep",
        "device": cpu_name(),
        "cores": os.cpu_count(),
        "versions": {
            "pyunicorn": pyu_version,
            "accrqa": acc_version,
            "numba": numba.__version__,
            "numpy": np.__version__,
        },
        **provenance(),
        "settings": {
            "data": f"gpuflows.pipelines.rqa_sweep.gaze.generate_dataset({a.subjects_per_group}, {a.n_samples}, seed=0)",
            "subjects": len(subjects),
            "series": a.series,
            "m": ms,
            "tau": taus,
            "eps": eps.tolist(),
            "l_min": lmins,
            "v_min": V_MIN,
            "metric": "euclidean",
            "theiler": 1,
            "normalize": "z-scored once outside the timings; engines run with it off",
            "ours": "engine.sweep_units(backend='numba') once for every (subject, series, m, tau) "
            "unit (m = 1 once for all tau), all eps: one pass per (series, tau) serving every m, "
            "all passes in one parallel region; measures_batch.measures_tables once for every "
            "unit's (l_min, eps) table",
            "pyunicorn": "one RecurrencePlot per (m, tau, eps), every l_min read from it: RR, DET, "
            "L_mean, L_max, ENT, LAM, TT, V_max",
            "repeats": a.repeats,
            "timing": "median of the repeats (min/max in spread); JIT compilation and first-call "
            "warm-up untimed for every engine (ours: a 300-sample run of the same calls)",
            "accrqa": "accrqa.DET (all tau, m, l_min, eps; ENTR on) + accrqa.LAM (v_min=2) per "
            "subject, comp_platform cpu; conventions differ (<=, LOI in DET): time only",
        },
        "notes": notes,
        "figures": figures,
        "spread": {
            "ours": spread(ours_ts),
            "pyunicorn_measured": spread(pyu_ts) if t_pyu else None,
            "accrqa": spread(acc_ts) if t_acc else None,
        },
        "load_average": {"before": load_before, "after": os.getloadavg(), "cores": os.cpu_count()},
        "anchor": {
            "pyunicorn": {
                "name": f"pyunicorn {pyu_version}, one RecurrencePlot per (m, tau, eps)",
                "value": t_pyu,
            },
            "accrqa": {"name": f"AccRQA {acc_version} cpu", "value": t_acc, "why": acc_why},
            "unit": "s",
        },
        "ratio": {"pyunicorn": r_pyu, "accrqa": r_acc},
        "ratio_note": "anchor time / ours time, same data and grid",
        "goals": {
            "pyunicorn_100x": None if r_pyu is None else r_pyu >= 100,
            "accrqa_5x": None if r_acc is None else r_acc >= 5,
        },
        "exactness": {
            "ours_vs_reference": ref_rows,
            "ours_vs_pyunicorn": pyu_cmp,
        },
        "projection": {
            "workload": f"{FULL_COMBOS} combinations x {SEED_SUBJECTS} subjects x series "
            f"{list(SEED_SERIES)}, n = {SEED_SAMPLES}",
            "method": "ours: one call with the (series, tau) items tau=1 (m 1..12) and tau=5 "
            "(m 2..12) at d=1 and at d=2, time / 2 per item, x 60 subjects x 5 tau x (2 d1 + 1 "
            "d2); pyunicorn: one plot (all l_min) at (6,3) x "
            "all (m, tau, eps) x 180 series; AccRQA: mean "
            "of the same two units (d=1, DET+LAM) x 60 (m,tau) x 180 (xy priced as x)",
            **{k: v for k, v in proj.items()},
        },
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    write_result(a.out, result)
    print(f"wrote {a.out}")

    def fmt(t, r):
        return "n/a" if t is None else f"{t:.3g} s ({r:.1f}x)"

    tail = f"; full grid projected {proj['ours_s'] / 60:.1f} min on this CPU" if proj else ""
    if "pyunicorn_s" in proj:
        tail += f" (pyunicorn {proj['pyunicorn_s'] / 3600:.0f} h"
        tail += f", AccRQA {proj['accrqa_s'] / 60:.1f} min)" if "accrqa_s" in proj else ")"
    print(
        f"rqa_sweep: ours {t_ours:.3g} s (median of {a.repeats}, load {load_before[0]:.1f}), "
        f"pyunicorn {fmt(t_pyu, r_pyu or 0)}, "
        f"AccRQA {fmt(t_acc, r_acc or 0)}{tail}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
