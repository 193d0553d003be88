"""RQA sweep on a GPU at the seed's scale: the torch backend vs the CuPy RawKernel backend.

Workload (seed 001, :mod:`gpuflows.pipelines.rqa_sweep.grid` ``full``): 60 subjects x 5,000
samples x 3 series (x, y and the joint (x, y) embedding) over m = 1..12 x tau = 1..5 x 17 eps x
l_min 2..11 = 10,200 combinations per series; one computed unit per (series, m, tau) (m = 1 once):
10,080 units, each the line histograms of every eps (``engine.sweep_histograms``) and every
(eps, l_min) measure read from them (``SweepHistograms.table``), as the flow does per unit.

Each backend is warmed up (CUDA context, NVRTC / kernel compilation) outside the timed region,
then runs units (subject by subject, each subject's units in a seeded random order, so the
units timed are a random sample, each timed on its own with the device synchronised) until
``--budget-s`` is spent; the full workload is *projected* as the mean unit time x 10,080 units
(the JSON says ``projected`` and how many units were timed; with ``--budget-s`` large enough every
unit runs and nothing is projected). Every unit of the first subject is compared
integer for integer between the backends that ran, and one unit with the CPU oracle (numba, else
NumPy). Against: the seed's 5-7 h for this sweep, and the goal of <= 2 minutes on one H100/H200.

``engine.CUDA_AUTO_BACKEND`` (what ``backend="auto"`` runs on CUDA) stays ``torch`` until this
bench has measured cupy faster on a GPU: the JSON's ``faster`` names the faster backend and
``auto_note`` says whether to switch.

Writes ``bench/results/rqa-gpu-<device>.json`` (bench/record.py provenance); the last line printed
is the summary.

Usage:
    python bench/rqa_gpu.py --device cuda                      # seed scale, 60 s per backend
    python bench/rqa_gpu.py --device cpu --quick               # tiny smoke (CI-sized)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.record import RESULTS, fig, provenance, write_result  # noqa: E402
from gpuflows.core.hardware.devices import cpu_name  # noqa: E402
from gpuflows.core.naming import slug  # noqa: E402
from gpuflows.pipelines.rqa_sweep import engine, gaze  # noqa: E402
from gpuflows.pipelines.rqa_sweep.data import series_arrays  # noqa: E402
from gpuflows.pipelines.rqa_sweep.grid import PRESETS, compute_units  # noqa: E402

SEED_HOURS = (5.0, 7.0)
"""The seed's own figure for this sweep (DESIGN.md, seed 001): 5-7 h."""
GOAL_S = 120.0
"""The goal: the seed-scale sweep in <= 2 minutes on one H100/H200."""
SERIES = ("x", "y", "xy")
QUICK = {"m": [1, 2], "tau": [1, 2], "subjects": 2, "samples": 300}
"""--quick: a tiny slice (2 subjects x 300 samples, m 1..2, tau 1..2) to know the bench runs;
its figures are no measurement of the seed's workload (no ratio, no goal)."""


def _full_key(backend: str, row: dict) -> str:
    """``cupy_full_projected_s`` for a projection from a slice, ``cupy_full_s`` when measured."""
    return f"{backend}_full_{'projected_' if row['projected'] else ''}s"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _unit_runner(backend: str, device: str):
    """fn(series, m, tau, eps) -> SweepHistograms for one backend on ``device``."""
    if backend == "torch":
        import torch

        dev = torch.device(device)
        return lambda x, m, tau, eps: engine.sweep_histograms(
            x, m, tau, eps, backend="torch", device=dev
        )
    return lambda x, m, tau, eps: engine.sweep_histograms(x, m, tau, eps, backend=backend)


def _why_unavailable(backend: str, device: str) -> str | None:
    """None when ``backend`` can run on ``device``, else the reason."""
    if backend == "cupy":
        if not device.startswith("cuda"):
            return "cupy runs on CUDA only"
        from gpuflows.pipelines.rqa_sweep import engine_cupy

        why = engine_cupy.unavailable_reason()
        if why:
            return why
    if backend == "numba" and not engine.HAVE_NUMBA:
        return "numba not installed"
    if backend == "torch" and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return "torch sees no CUDA device"
    return None


def _same(a, b) -> bool:
    return (
        np.array_equal(a.P_d, b.P_d)
        and np.array_equal(a.P_v, b.P_v)
        and np.array_equal(a.n_recurrences, b.n_recurrences)
    )


def _workload(a):
    """(subjects: [(subject_id, {series: array})], units [(m, tau)], eps, l_mins, description)."""
    grid = PRESETS["full"]
    ms, taus = (QUICK["m"], QUICK["tau"]) if a.quick else (grid["m"], grid["tau"])
    n_per_group = max(1, -(-a.subjects // 3))  # three groups
    frame = gaze.generate_dataset(n_per_group, a.samples, seed=0)
    arrays = series_arrays(frame, list(SERIES))
    ids = list(dict.fromkeys(k.split("|", 1)[0] for k in arrays))[: a.subjects]
    subjects = [(s, {n: arrays[f"{s}|{n}"] for n in SERIES}) for s in ids]
    units = sorted({(m, tc) for m, _, tc in compute_units(ms, taus)})
    return subjects, units, grid["eps"], grid["l_min"], ms, taus


def _order(subjects, units) -> list[tuple[int, str, int, int]]:
    """Every (subject index, series, m, tau) of the workload: subject by subject, each subject's
    units in a seeded random order, so any prefix is a random sample of units (the cost of a unit
    grows with m and with the joint series: a prefix in grid order would be the cheap ones)."""
    keys = [(name, m, tau) for name in SERIES for m, tau in units]
    rng = np.random.default_rng(0)
    out = []
    for i in range(len(subjects)):
        out += [(i, *keys[j]) for j in rng.permutation(len(keys))]
    return out


def _time_backend(backend, device, subjects, units, eps, l_mins, budget_s):
    """Warm up, then units in :func:`_order` until ``budget_s`` is spent (at least one): each
    unit's seconds and the first subject's results (for the cross-check)."""
    run = _unit_runner(backend, device)
    warm = np.cumsum(np.random.default_rng(1).standard_normal((400, 2)), axis=0)
    for x in (warm[:, 0], warm):  # compile / initialise for 1-D and joint series
        run(x, 3, 2, eps).table(l_mins)
    _sync(device)
    unit_s, first = [], {}
    t_all = time.perf_counter()
    for i, name, m, tau in _order(subjects, units):
        u0 = time.perf_counter()
        h = run(subjects[i][1][name], m, tau, eps)
        h.table(l_mins)
        _sync(device)
        unit_s.append(time.perf_counter() - u0)
        if i == 0:
            first[(name, m, tau)] = h
        if time.perf_counter() - t_all > budget_s:
            break
    return unit_s, first


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--backends", nargs="+", default=None, help="default: torch cupy (cpu: +numba)")
    ap.add_argument("--budget-s", type=float, default=60.0, help="timed seconds per backend")
    ap.add_argument("--subjects", type=int, default=60)
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--quick", action="store_true", help="a tiny slice, to know the bench runs")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.quick:
        a.subjects, a.samples = QUICK["subjects"], QUICK["samples"]
    device = a.device
    backends = a.backends or (["torch", "cupy"] + ([] if device.startswith("cuda") else ["numba"]))
    if device.startswith("cuda"):
        import torch

        cuda = torch.cuda.is_available()
        dev_name = torch.cuda.get_device_name(torch.device(device)) if cuda else "no-cuda"
    else:
        dev_name = cpu_name()
    tag = "cpu" if not device.startswith("cuda") else slug(dev_name)
    out = a.json or RESULTS / f"rqa-gpu-{tag}{'-quick' if a.quick else ''}.json"
    load_before = os.getloadavg()

    subjects, units, eps, l_mins, ms, taus = _workload(a)
    n_units_subject = len(units) * len(SERIES)
    full_units = 60 * n_units_subject if not a.quick else len(subjects) * n_units_subject
    print(
        f"rqa-gpu on {device} ({dev_name}): {len(subjects)} subjects x {a.samples} samples x "
        f"{len(SERIES)} series, {len(units)} (m, tau) units per series, {len(eps)} eps, "
        f"{len(l_mins)} l_min; budget {a.budget_s:.0f} s per backend"
    )
    rows, first, skipped = {}, {}, {}
    for b in backends:
        why = _why_unavailable(b, device)
        if why:
            skipped[b] = why
            print(f"  {b}: skipped ({why})")
            continue
        unit_s, first[b] = _time_backend(b, device, subjects, units, eps, l_mins, a.budget_s)
        timed = float(sum(unit_s))
        projected = len(unit_s) < full_units
        full_s = timed / len(unit_s) * full_units  # mean unit (a random sample) x every unit
        rows[b] = {
            "units_timed": len(unit_s),
            "subjects_timed": round(len(unit_s) / n_units_subject, 2),
            "timed_s": round(timed, 4),
            "per_unit_s": {
                "median": round(float(np.median(unit_s)), 6),
                "min": round(min(unit_s), 6),
                "max": round(max(unit_s), 6),
            },
            "full_s": round(full_s, 3),
            "projected": projected,
        }
        label = "projected" if projected else "measured"
        print(
            f"  {b}: {len(unit_s)} of {full_units} units in {timed:.2f} s "
            f"(median {np.median(unit_s) * 1e3:.2f} ms); full workload {label} {full_s:.1f} s"
        )
    # exactness: backends against each other on every unit of the first subject both timed; one
    # unit against the CPU oracle
    checks = {}
    names = list(first)
    for other in names[1:]:
        keys = first[names[0]].keys() & first[other].keys()
        checks[f"{names[0]}_vs_{other}"] = {
            "units": len(keys),
            "identical": all(_same(first[names[0]][k], first[other][k]) for k in keys),
        }
    if names:
        oracle = "numba" if engine.HAVE_NUMBA else "numpy"
        key = next(iter(first[names[0]]))  # the first unit timed: every backend timed it
        x = subjects[0][1][key[0]]
        want = engine.sweep_histograms(x, key[1], key[2], eps, backend=oracle)
        checks[f"every_vs_{oracle}"] = {
            "unit": list(key),
            "identical": all(_same(first[b][key], want) for b in names),
        }
    ok = all(c["identical"] for c in checks.values())
    faster = min(rows, key=lambda b: rows[b]["full_s"]) if rows else None
    cuda_pair = device.startswith("cuda") and {"torch", "cupy"} <= set(rows)
    auto = engine.CUDA_AUTO_BACKEND
    if not cuda_pair:
        auto_note = f"torch and cupy not both measured on CUDA: CUDA_AUTO_BACKEND stays {auto!r}"
    elif faster != auto:
        gain = rows[auto]["full_s"] / rows[faster]["full_s"]
        auto_note = f"{faster} {gain:.1f}x faster on {dev_name}: set CUDA_AUTO_BACKEND={faster!r}"
    else:
        auto_note = f"{faster} faster on {dev_name}: CUDA_AUTO_BACKEND={auto!r} stays"
    best = rows.get(faster, {})
    seed_lo, seed_hi = (h * 3600 for h in SEED_HOURS)
    result = {
        "name": "rqa-gpu",
        "device": dev_name,
        "device_arg": device,
        **provenance(),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "workload": {
            "subjects": 60 if not a.quick else len(subjects),
            "samples": a.samples,
            "series": list(SERIES),
            "m": ms,
            "tau": taus,
            "eps": eps,
            "l_min": l_mins,
            "combinations_per_series": len(ms) * len(taus) * len(eps) * len(l_mins),
            "units": full_units,
            "quick": a.quick,
        },
        "figures": {
            **{_full_key(b, r): fig(r["full_s"], "s") for b, r in rows.items()},
            **{
                f"{b}_per_unit_median_s": fig(r["per_unit_s"]["median"], "s")
                for b, r in rows.items()
            },
        },
        "backends": rows,
        "skipped": skipped,
        "exactness": checks,
        "exact": ok,
        "faster": faster,
        "auto_note": auto_note,
        "anchor": {
            "name": "the seed's 5-7 h for this sweep (DESIGN.md, seed 001)",
            "value": [seed_lo, seed_hi],
            "unit": "s",
        },
        "goal": {
            "value": GOAL_S,
            "unit": "s",
            "met": None if a.quick or not best else best["full_s"] <= GOAL_S,
        },
        "ratio": None if a.quick or not best else round(seed_lo / best["full_s"], 1),
        "ratio_note": "the seed's 5 h / our full-workload seconds (faster backend)",
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }
    write_result(out, result)
    print(f"wrote {out}")
    if best:
        how = "projected" if best["projected"] else "measured"
        others = ", ".join(f"{b} {r['full_s']:.1f} s" for b, r in rows.items() if b != faster)
        versus = (
            "quick smoke: no seed-scale figure"
            if a.quick
            else f"seed 5-7 h ({result['ratio']}x vs 5 h), goal <= {GOAL_S:.0f} s "
            f"{'met' if result['goal']['met'] else 'NOT met'}"
        )
        print(
            f"rqa-gpu: {faster} {best['full_s']:.1f} s {how} for {full_units} units "
            f"({best['units_timed']} timed){'; ' + others if others else ''}; "
            f"{versus}; exact {ok}; {auto_note}"
        )
    else:
        print(f"rqa-gpu: no backend ran on {device} ({skipped})")
    return result


if __name__ == "__main__":
    main()
