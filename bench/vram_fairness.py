"""Does a 70 GiB request starve behind a stream of 10 GiB ones? Prefect's plain acquisition vs ours.

One loopback Prefect server (``deployments.local_server``, slot polling capped at 1 s as in
``prefect.toml``), one 80 GiB limit ``vram-gpu0``. Work is simulated (``time.sleep``) under the real
``tasks.vram.vram_budget``; nothing touches CUDA.

Measured, each with ``fair=False`` (Prefect's plain polling acquisition: the anchor) and
``fair=True`` (the one-slot turnstile taken first):

* **starvation**: 6 worker processes each loop ``10 GiB held 0.5 s``; after 2 s a 70 GiB request
  arrives. Its wait until granted; capped at 60 s (then recorded as starved, >= 60 s).
* the same with the 6 small workers as threads of one process (how a flow's thread pool runs them).
* **makespan**: a finite batch (6 workers x 10 small tasks + the 70 GiB one held 2 s).
* **hand-off**: two 30 GiB requests from two processes at the same instant (they fit together):
  how much later the second one starts, i.e. the turnstile's cost per hand-off.

Every run also checks the budget itself: the GiB held at any instant never exceed 80.

Run: ``python -m bench.vram_fairness`` (writes ``bench/results/vram-fairness-cpu.json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.record import fig, provenance, write_result  # noqa: E402
from deployments.local_server import LocalServer, free_port  # noqa: E402

GIB = 1 << 30
CAPACITY_GIB = 80
GPU = 0
LIMIT = f"vram-gpu{GPU}"
RESULT = REPO_ROOT / "bench" / "results" / "vram-fairness-cpu.json"

_FORK = mp.get_context("fork")  # children inherit the imported modules: no 3 s import each


def _budget(gib: int, fair: bool, timeout_s: float | None):
    from bench.lease_recovery import fake_gpu
    from gpuflows.core.memory.budget import VramEstimate
    from tasks.vram import vram_budget

    return vram_budget(
        VramEstimate(nbytes=gib * GIB, basis=f"bench {gib} GiB"),
        device=fake_gpu(GPU),
        timeout_s=timeout_s,
        fair=fair,
    )


def _hold(gib: int, hold_s: float, fair: bool, timeout_s: float | None) -> dict:
    """One simulated GPU task; returns its interval (wall clock) and wait."""
    t_req = time.time()
    try:
        with _budget(gib, fair, timeout_s) as g:
            time.sleep(hold_s)
    except TimeoutError:
        return {"gib": gib, "requested": t_req, "granted": None, "released": None}
    return {
        "gib": gib,
        "requested": t_req,
        "granted": g.acquired_at,
        "released": g.released_at,
        "wait_s": g.wait_s,
    }


def _small_loop(fair: bool, hold_s: float, n_max: int | None, stop, out) -> None:
    """Loop 10 GiB tasks until ``stop`` is set (or ``n_max`` done); report all intervals."""
    done: list[dict] = []
    while not stop.is_set() and (n_max is None or len(done) < n_max):
        done.append(_hold(10, hold_s, fair, timeout_s=120))
    out.put(("small", done))


def _large(fair: bool, delay_s: float, hold_s: float, cap_s: float, out) -> None:
    time.sleep(delay_s)
    out.put(("large", [_hold(70, hold_s, fair, timeout_s=cap_s)]))


def _peak_gib(intervals: list[dict]) -> int:
    events = []
    for iv in intervals:
        if iv.get("granted") is not None:
            events += [(iv["granted"], iv["gib"]), (iv["released"], -iv["gib"])]
    peak = cur = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):  # releases first at equal times
        cur += d
        peak = max(peak, cur)
    return peak


def contend(
    fair: bool,
    *,
    processes: bool,
    n_small: int = 6,
    small_hold_s: float = 0.5,
    n_each: int | None = None,
    large_delay_s: float = 2.0,
    large_hold_s: float = 2.0,
    cap_s: float = 60.0,
) -> dict:
    """6 small workers + one 70 GiB request; workers are processes or threads of a child."""
    ctx = _FORK
    out = ctx.Queue()
    stop = ctx.Event()
    t0 = time.time()
    if processes:
        workers = [
            ctx.Process(target=_small_loop, args=(fair, small_hold_s, n_each, stop, out))
            for _ in range(n_small)
        ]
        workers.append(
            ctx.Process(target=_large, args=(fair, large_delay_s, large_hold_s, cap_s, out))
        )
    else:
        workers = [
            ctx.Process(
                target=_threads_child,
                args=(fair, n_small, small_hold_s, n_each, large_delay_s, large_hold_s, cap_s),
                kwargs={"stop": stop, "out": out},
            )
        ]
    for w in workers:
        w.start()
    results: dict[str, list[dict]] = {"small": [], "large": []}
    expected = n_small + 1
    got = 0
    while got < expected:
        kind, rows = out.get(timeout=cap_s + 120)
        results[kind] += rows
        got += 1
        if kind == "large" and n_each is None:
            stop.set()  # an endless stream goes on only until the large request is settled
    for w in workers:
        w.join(timeout=30)
        if w.is_alive():
            w.kill()
    large = results["large"][0]
    granted = large["granted"] is not None
    every = results["small"] + results["large"]
    ends = [iv["released"] for iv in every if iv.get("released")]
    return {
        "fair": fair,
        "workers": "processes" if processes else "threads of one process",
        "large_granted": granted,
        "large_wait_s": round(large["granted"] - large["requested"], 2) if granted else None,
        "large_starved_for_s": None if granted else round(cap_s, 1),
        "small_tasks_done": len(results["small"]),
        "makespan_s": round(max(ends) - t0, 2) if ends else None,
        "peak_gib": _peak_gib(every),
    }


def _threads_child(
    fair, n_small, small_hold_s, n_each, large_delay_s, large_hold_s, cap_s, *, stop, out
):
    """All small workers and the large one as threads of this one process."""
    ts = [
        threading.Thread(target=_small_loop, args=(fair, small_hold_s, n_each, stop, out))
        for _ in range(n_small)
    ]
    ts.append(threading.Thread(target=_large, args=(fair, large_delay_s, large_hold_s, cap_s, out)))
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def _pair_child(fair: bool, start_at: float, out) -> None:
    time.sleep(max(0.0, start_at - time.time()))
    out.put(_hold(30, 1.0, fair, timeout_s=60))


def handoff(fair: bool, reps: int = 5) -> dict:
    """Two 30 GiB requests from two processes at the same instant: gap between their starts."""
    gaps, waits = [], []
    peak = 0
    for _ in range(reps):
        out = _FORK.Queue()
        start_at = time.time() + 1.0
        ps = [_FORK.Process(target=_pair_child, args=(fair, start_at, out)) for _ in range(2)]
        for p in ps:
            p.start()
        rows = [out.get(timeout=90) for _ in ps]
        for p in ps:
            p.join(timeout=30)
        g = sorted(r["granted"] for r in rows)
        gaps.append(g[1] - g[0])
        waits += [r["wait_s"] for r in rows]
        peak = max(peak, _peak_gib(rows))
    return {
        "fair": fair,
        "reps": reps,
        "second_start_gap_s_median": round(statistics.median(gaps), 3),
        "second_start_gap_s_max": round(max(gaps), 3),
        "acquire_wait_s_median": round(statistics.median(waits), 3),
        "peak_gib": peak,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cap", type=float, default=60.0, help="longest wait for the 70 GiB task (s)")
    p.add_argument("--out", type=Path, default=RESULT)
    a = p.parse_args(argv)
    t_start = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="vram-fairness-") as tmp:
        port = free_port()
        # The API URL must be in the environment before Prefect is imported: forked workers
        # build their own clients from it.
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
        os.environ["PREFECT_HOME"] = str(Path(tmp) / "client")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        with LocalServer(Path(tmp) / "server", port=port) as srv:
            print(f"server {srv.url} up in {srv.starts[-1]:.1f} s", flush=True)
            from tasks.vram import ensure_limits

            ensure_limits({LIMIT: CAPACITY_GIB})
            runs: dict[str, dict] = {}

            def record(key: str, r: dict) -> None:
                runs[key] = r
                print(f"{key}: {json.dumps(r)}", flush=True)

            record("starve_plain_processes", contend(False, processes=True, cap_s=a.cap))
            record("starve_fair_processes", contend(True, processes=True, cap_s=a.cap))
            record("starve_plain_threads", contend(False, processes=False, cap_s=a.cap))
            record("starve_fair_threads", contend(True, processes=False, cap_s=a.cap))
            record(
                "batch_plain",
                contend(False, processes=True, n_each=10, large_delay_s=1.0, cap_s=a.cap),
            )
            record(
                "batch_fair",
                contend(True, processes=True, n_each=10, large_delay_s=1.0, cap_s=a.cap),
            )
            record("handoff_plain", handoff(False))
            record("handoff_fair", handoff(True))

    def wait_of(r: dict) -> float:
        return r["large_wait_s"] if r["large_granted"] else r["large_starved_for_s"]

    plain, ours = runs["starve_plain_processes"], runs["starve_fair_processes"]
    ratio = round(wait_of(plain) / wait_of(ours), 1) if wait_of(ours) else None
    overhead = round(
        runs["handoff_fair"]["second_start_gap_s_median"]
        - runs["handoff_plain"]["second_start_gap_s_median"],
        3,
    )
    peak = max(r["peak_gib"] for r in runs.values())

    result = {
        "name": "vram-fairness",
        "device": (
            f"cpu only ({os.cpu_count()} cores); no GPU: work simulated under the real "
            "vram_budget on a loopback prefect server (slot wait cap 1 s)"
        ),
        **provenance(),
        "figures": {
            "large_wait_fair_processes_s": fig(wait_of(ours), "s"),
            "large_wait_fair_threads_s": fig(wait_of(runs["starve_fair_threads"]), "s"),
            "large_wait_plain_threads_s": fig(wait_of(runs["starve_plain_threads"]), "s"),
            "batch_makespan_plain_s": fig(runs["batch_plain"]["makespan_s"], "s"),
            "batch_makespan_fair_s": fig(runs["batch_fair"]["makespan_s"], "s"),
            "batch_large_wait_plain_s": fig(wait_of(runs["batch_plain"]), "s"),
            "batch_large_wait_fair_s": fig(wait_of(runs["batch_fair"]), "s"),
            "turnstile_handoff_overhead_s": fig(overhead, "s"),
            "peak_gib_held": fig(peak, "GiB"),
        },
        "anchor": {
            "name": "Prefect plain acquisition (fair=False), 6 small workers as processes",
            "value": wait_of(plain),
            "unit": "s",
            "starved": not plain["large_granted"],
            "note": (
                f"not granted within the {a.cap:.0f} s cap (lower bound)"
                if not plain["large_granted"]
                else ""
            ),
        },
        "ratio": ratio,
        "ratio_note": "anchor wait / ours (fair=True, processes); a lower bound if starved",
        "runs": runs,
        "bench_wall_s": round(time.monotonic() - t_start, 1),
    }
    write_result(a.out, result)
    anchor_txt = (
        f"starved >= {a.cap:.0f} s" if not plain["large_granted"] else f"{wait_of(plain):.1f} s"
    )
    print(
        f"vram-fairness: 70 GiB wait behind a 10 GiB stream (6 processes): plain {anchor_txt} "
        f"vs turnstile {wait_of(ours):.1f} s (ratio {ratio}); threads: plain "
        f"{wait_of(runs['starve_plain_threads']):.1f} s / fair "
        f"{wait_of(runs['starve_fair_threads']):.1f} s; makespan plain "
        f"{runs['batch_plain']['makespan_s']} s / fair {runs['batch_fair']['makespan_s']} s; "
        f"hand-off overhead {overhead:.2f} s; peak {peak} GiB <= {CAPACITY_GIB}; "
        f"wrote {a.out}"
    )
    return 0 if peak <= CAPACITY_GIB else 1


if __name__ == "__main__":
    raise SystemExit(main())
