"""Micro-benchmark: one (series, m, tau) with E eps values, sweep engine vs reference per eps.

For each N (embedded vectors) and each CPU backend of :func:`gpuflows.pipelines.rqa_sweep.engine.sweep_histograms`
it times the whole sweep (all eps at once) and reports R entries decided per second
(``N^2 * E / time``, the unit AccRQA's per-configuration timings imply). The reference
``gpuflows.pipelines.rqa_sweep.rqa.rqa_metrics`` is called once per eps and timed in full up to
``--reference-max-n``; above it, it is timed on one eps and *projected* x E (it recomputes
everything per eps): such rows say ``"projected": true``, their figure is named
``reference_N<N>_projected_s``, the anchor at the largest N is marked projected in the JSON and the
summary line says PROJECTED. ``--reference-max-n`` >= the largest N times the anchor in full. Engines are timed ``--repeats`` times
(>= 3) after a JIT warm-up; each row gives the median and min/max; the load average before and
after is recorded.

Writes ``bench/results/rqa-engine-micro-cpu.json`` (``--json`` elsewhere); the anchor is the
reference, the ratio the fastest engine's speedup over it at the largest N; the last line printed
is the summary.

Usage:
    python bench/rqa_engine_micro.py                      # N = 1000, 2000, 5000; d=2; m=3
    python bench/rqa_engine_micro.py --sizes 2000 --m 6 --backends numba torch --json out.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.record import RESULTS, fig, provenance, write_result  # noqa: E402
from gpuflows.core.hardware.devices import cpu_name
from gpuflows.pipelines.rqa_sweep import engine as rqa_engine
from gpuflows.pipelines.rqa_sweep import rqa

PROJECTION = "timed on one eps and multiplied by E (a projection, not a measurement)"


def _figure_key(row: dict) -> str:
    """``reference_N5000_projected_s`` for a projected anchor, ``numba_N5000_s`` otherwise."""
    return f"{row['engine']}_N{row['N']}{'_projected' if row.get('projected') else ''}_s"


def _spread(samples: list[float]) -> dict:
    return {
        "median_s": round(float(np.median(samples)), 5),
        "min_s": round(min(samples), 5),
        "max_s": round(max(samples), 5),
        "repeats": len(samples),
    }


def _best_s(fn, repeats: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return min(samples), samples


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    ap.add_argument("--d", type=int, default=2, choices=[1, 2], help="components (2 = x+y)")
    ap.add_argument("--m", type=int, default=3)
    ap.add_argument("--tau", type=int, default=1)
    ap.add_argument("--n-eps", type=int, default=17)
    ap.add_argument("--backends", nargs="+", default=["numba", "numpy", "torch"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference-max-n", type=int, default=1000)
    ap.add_argument(
        "--json",
        type=Path,
        default=RESULTS / "rqa-engine-micro-cpu.json",
        help="write the results here",
    )
    args = ap.parse_args(argv)
    if args.repeats < 3:
        ap.error("--repeats must be >= 3 (the spread over repeated runs is reported)")
    load_before = os.getloadavg()

    rng = np.random.default_rng(0)
    eps = np.linspace(0.05, 0.85, args.n_eps)
    backends = [b for b in args.backends if b != "numba" or rqa_engine.HAVE_NUMBA]
    warm = rng.standard_normal((200, args.d))
    for b in backends:  # JIT compile / first-call costs outside the timings
        rqa_engine.sweep_histograms(warm, args.m, args.tau, eps, backend=b)
    rows = []
    print(f"d={args.d} m={args.m} tau={args.tau} E={args.n_eps} cpus={os.cpu_count()}")
    print(f"{'N':>6} {'engine':>16} {'best_s':>9} {'R_entries_per_s':>16} {'vs_reference':>12}")
    for N in args.sizes:
        n = N + (args.m - 1) * args.tau
        x = np.cumsum(rng.standard_normal((n, args.d)), axis=0)
        E = args.n_eps
        projected = N > args.reference_max_n
        if not projected:
            ref_s, _ = _best_s(
                lambda x=x: [rqa.rqa_metrics(x, args.m, args.tau, e, 2) for e in eps], 1
            )
        else:
            one, _ = _best_s(
                lambda x=x: rqa.rqa_metrics(x, args.m, args.tau, eps[args.n_eps // 2], 2), 1
            )
            ref_s = one * E
        rows.append(
            {
                "N": N,
                "engine": "reference",
                "best_s": ref_s,
                "speedup": 1.0,
                "projected": projected,
                **({"projection": PROJECTION} if projected else {}),
            }
        )
        label = "reference (proj.)" if projected else "reference"
        print(f"{N:>6} {label:>16} {ref_s:>9.3f} {N * N * E / ref_s:>16.3g} {1.0:>12.1f}")
        for b in backends:
            best, samples = _best_s(
                lambda x=x, b=b: rqa_engine.sweep_histograms(x, args.m, args.tau, eps, backend=b),
                args.repeats,
            )
            rows.append(
                {
                    "N": N,
                    "engine": b,
                    "best_s": best,
                    "samples_s": samples,
                    **_spread(samples),
                    "speedup": ref_s / best,
                    "speedup_median": ref_s / float(np.median(samples)),
                }
            )
            print(f"{N:>6} {b:>16} {best:>9.3f} {N * N * E / best:>16.3g} {ref_s / best:>12.1f}")
    top = max(args.sizes)
    at_top = [r for r in rows if r["N"] == top]
    ref = at_top[0]
    best = min(at_top[1:], key=lambda r: r["best_s"]) if len(at_top) > 1 else ref
    result = {
        "name": "rqa-engine-micro",
        "device": cpu_name(),
        "cores": os.cpu_count(),
        **provenance(),
        "params": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "figures": {_figure_key(r): fig(round(r["best_s"], 5), "s") for r in rows},
        "anchor": {
            "name": ref["engine"],
            "N": top,
            "value": round(ref["best_s"], 5),
            "unit": "s",
            "projected": ref["projected"],
            "note": PROJECTION if ref["projected"] else "timed in full (every eps)",
        },
        "ratio": round(ref["best_s"] / best["best_s"], 2),
        "ratio_note": f"reference seconds / fastest engine ({best['engine']}) best seconds at "
        f"N={top}" + (" (reference projected)" if ref["projected"] else ""),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "rows": rows,
    }
    write_result(args.json, result)
    print(f"wrote {args.json}")
    anchor = (
        f"reference PROJECTED {ref['best_s']:.3f} s (1 eps timed x {args.n_eps})"
        if ref["projected"]
        else f"reference {ref['best_s']:.3f} s (every eps timed)"
    )
    print(
        f"rqa-engine-micro: N={top}, {args.n_eps} eps: {best['engine']} {best['best_s']:.3f} s vs "
        f"{anchor} = {result['ratio']:.1f}x"
        f"{' (projected)' if ref['projected'] else ''} ({cpu_name()}, load {load_before[0]:.1f})"
    )
    return result


if __name__ == "__main__":
    main()
