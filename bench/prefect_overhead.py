"""What Prefect's orchestration costs per task and per flow run on this machine.

All in one process against a temporary local API (``prefect_test_harness``: its own SQLite DB, so
the project's ``.prefect`` is not touched), with the project's ``prefect.toml`` settings (results
persisted by default, JSON serializer, 30 s flow heartbeat) and results in a temporary folder.
Each figure is the wall time of a call as the caller sees it, mean and p95 over N calls after a
warm-up; the task bodies do nothing, so the time is the overhead:

* **uncached task**: ``NO_CACHE``, result not persisted: orchestration alone; and the same task
  with the project defaults (default policy, result persisted), what a plain ``@task`` costs here;
* **cached task, cache hit**: the house policy (``tasks.caching.house_cache_policy()``);
* **50 MiB NumPy argument, cache hit**: the house policy keys the array by its content digest
  (blake2b of the bytes, on every call); the anchor is Prefect's plain ``INPUTS`` policy, which
  hashes the pickled array on every call; and the pattern of ``PREFECT-NOTES.md``: the array left
  out of the key (``house_cache_policy(exclude=("arr",))``) and its digest, computed once where the
  array is made, passed as an argument;
* **empty flow run**: a new flow run per call, with the project's heartbeat and without.

    python bench/prefect_overhead.py [--n 200] [--n-anchor 30] [--n-flows 20]

Writes ``bench/results/prefect-overhead-cpu.json``; the last line printed is the summary.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
RESULT = REPO_ROOT / "bench" / "results" / "prefect-overhead-cpu.json"

# Before Prefect reads its settings: nothing goes to the project's .prefect/ or results/.
_TMP = tempfile.mkdtemp(prefix="gpuflows-overhead-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
os.environ["PREFECT_HOME"] = os.path.join(_TMP, "prefect-home")
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = os.path.join(_TMP, "prefect-results")
os.environ["GPUFLOWS_RESULTS_DIR"] = os.path.join(_TMP, "results")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Run and task logs still go to the API at the usual level (part of the cost); only the console
# handler is quietened so the table stays readable.
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
os.chdir(REPO_ROOT)  # the project's prefect.toml applies (read from the working directory)

import numpy as np  # noqa: E402
from prefect import flow, task  # noqa: E402
from prefect.cache_policies import INPUTS, NO_CACHE  # noqa: E402

from bench.record import fig, provenance, write_result  # noqa: E402
from gpuflows.core.evidence.digest import digest_any  # noqa: E402
from tasks.caching import house_cache_policy  # noqa: E402

ARRAY_BYTES = 50 * 2**20


def stats_ms(samples_s: list[float]) -> dict[str, float]:
    """Mean, p50, p95 (ms) and count of a list of durations in seconds."""
    ms = np.asarray(samples_s) * 1e3
    return {
        "mean_ms": round(float(ms.mean()), 3),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "count": len(samples_s),
    }


def timed_calls(fn: Callable[[], Any], n: int, warmup: int) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``n`` times; the durations in seconds."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# --- the tasks: bodies do nothing ----------------------------------------------------------------


@task(cache_policy=NO_CACHE, persist_result=False)
def noop(i: int) -> int:
    """Uncached, unpersisted: orchestration alone."""
    return i


@task
def noop_defaults(i: int) -> int:
    """A plain @task under the project's settings (default policy, result persisted)."""
    return i


@task(cache_policy=house_cache_policy())
def cached_small(x: int) -> int:
    """House policy; the same input every call -> a cache hit after the first."""
    return x + 1


@task(cache_policy=house_cache_policy())
def cached_array_ours(arr: np.ndarray) -> float:
    """House policy: the array counts by its content digest."""
    return float(arr[0])


@task(cache_policy=house_cache_policy(exclude=("arr",)))
def cached_array_digest_arg(arr: np.ndarray, arr_digest: str) -> float:
    """House policy with the array left out of the key and its digest, computed once, passed in."""
    return float(arr[0])


@task(cache_policy=INPUTS)
def cached_array_inputs(arr: np.ndarray, who: str = "inputs-anchor") -> float:
    """Prefect's INPUTS policy: the pickled array is hashed on every call (the anchor)."""
    return float(arr[0])


@flow(name="overhead-empty")
def empty_flow() -> None:
    """Nothing: the cost of a flow run."""


@flow(name="overhead-tasks")
def task_bench(n: int, n_anchor: int, warmup: int) -> dict[str, list[float]]:
    """All task measurements inside one flow run."""
    rng = np.random.default_rng(0)
    arr = rng.standard_normal(ARRAY_BYTES // 8)
    arr_digest = digest_any(arr)  # once, where the array is made or loaded
    return {
        "uncached": timed_calls(lambda: noop(1), n, warmup),
        "uncached_persisted": timed_calls(lambda: noop_defaults(1), n, warmup),
        "cached_hit": timed_calls(lambda: cached_small(1), n, warmup),
        "array_hit_ours": timed_calls(lambda: cached_array_ours(arr), n, warmup),
        "array_hit_digest_arg": timed_calls(
            lambda: cached_array_digest_arg(arr, arr_digest), n, warmup
        ),
        "array_hit_inputs": timed_calls(lambda: cached_array_inputs(arr), n_anchor, 2),
    }


def hashing_ms(repeats: int = 5) -> dict[str, float]:
    """The key computation alone on the 50 MiB array: our digest vs Prefect's ``hash_objects``."""
    from prefect.utilities.hashing import hash_objects

    from gpuflows.core.evidence.digest import digest_any

    arr = np.random.default_rng(1).standard_normal(ARRAY_BYTES // 8)
    ours = timed_calls(lambda: digest_any(arr), repeats, 1)
    prefect = timed_calls(lambda: hash_objects(arr, raise_on_failure=True), repeats, 1)
    return {
        "digest_50mib_ms": round(statistics.median(ours) * 1e3, 2),
        "prefect_hash_objects_50mib_ms": round(statistics.median(prefect) * 1e3, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="timed calls per task measurement")
    ap.add_argument("--n-anchor", type=int, default=30, help="timed calls of the INPUTS anchor")
    ap.add_argument("--n-flows", type=int, default=20, help="timed empty flow runs (each mode)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULT)
    a = ap.parse_args(argv)

    import prefect
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from gpuflows.core.hardware.devices import cpu_name

    t_start = time.perf_counter()
    hashes = hashing_ms()
    t0 = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=180):
        harness_s = time.perf_counter() - t0
        samples = task_bench(a.n, a.n_anchor, a.warmup)
        samples["empty_flow"] = timed_calls(empty_flow, a.n_flows, 2)
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            samples["empty_flow_no_heartbeat"] = timed_calls(empty_flow, a.n_flows, 2)
    total_s = time.perf_counter() - t_start

    st = {k: stats_ms(v) for k, v in samples.items()}
    ours, anchor = st["array_hit_ours"]["mean_ms"], st["array_hit_inputs"]["mean_ms"]
    ratio = round(anchor / ours, 1)
    pre = st["array_hit_digest_arg"]["mean_ms"]
    ratio_pre = round(anchor / pre, 1)

    labels = {
        "uncached": "uncached task (NO_CACHE, not persisted)",
        "uncached_persisted": "plain @task, project defaults (persisted)",
        "cached_hit": "cached task, hit (house policy)",
        "array_hit_ours": "50 MiB array arg, hit (house policy: digest)",
        "array_hit_digest_arg": "50 MiB array excluded + digest arg, hit (house)",
        "array_hit_inputs": "50 MiB array arg, hit (Prefect INPUTS) [anchor]",
        "empty_flow": "empty flow run (heartbeat 30 s, prefect.toml)",
        "empty_flow_no_heartbeat": "empty flow run (heartbeats off)",
    }
    print(f"\nprefect {prefect.__version__} on {cpu_name()} ({os.cpu_count()} cores)")
    print(f"harness start {harness_s:.1f} s; total {total_s:.0f} s")
    print(f"{'measurement':<50} {'mean ms':>9} {'p50 ms':>9} {'p95 ms':>9} {'n':>5}")
    for key, label in labels.items():
        s = st[key]
        print(
            f"{label:<50} {s['mean_ms']:>9.2f} {s['p50_ms']:>9.2f} {s['p95_ms']:>9.2f} {s['count']:>5}"
        )
    print(
        f"key computation alone on 50 MiB: digest {hashes['digest_50mib_ms']:.1f} ms, "
        f"Prefect hash_objects {hashes['prefect_hash_objects_50mib_ms']:.1f} ms"
    )

    figures = {}
    for key in labels:
        if key == "array_hit_inputs":
            continue
        figures[f"{key}_mean_ms"] = fig(st[key]["mean_ms"], "ms")
        figures[f"{key}_p95_ms"] = fig(st[key]["p95_ms"], "ms")
    figures.update({k: fig(v, "ms") for k, v in hashes.items()})
    figures["harness_start_s"] = fig(round(harness_s, 2), "s")
    result = {
        "name": "prefect-overhead",
        "device": cpu_name(),
        "cores": os.cpu_count(),
        "prefect_version": prefect.__version__,
        **provenance(),
        "settings": (
            "prefect_test_harness (temporary SQLite API); project prefect.toml: results persisted, "
            "json serializer, flow heartbeat 30 s; run/task logs to the API at INFO, console at WARNING; sequential calls"
        ),
        "array_bytes": ARRAY_BYTES,
        "warmup": a.warmup,
        "figures": figures,
        "anchor": {
            "name": "50 MiB array arg, cache hit, Prefect INPUTS policy (hashes the pickled array)",
            "value": anchor,
            "p95_ms": st["array_hit_inputs"]["p95_ms"],
            "unit": "ms",
            "count": st["array_hit_inputs"]["count"],
        },
        "ratio": ratio,
        "ratio_note": "anchor mean / ours mean (house policy, digest-keyed), 50 MiB array cache hit",
        "ratio_digest_arg": ratio_pre,
        "ratio_digest_arg_note": (
            "anchor mean / house policy with the array excluded and its digest passed as an "
            "argument (computed once outside the timed calls)"
        ),
        "stats": st,
    }
    write_result(a.out, result)
    print(f"wrote {a.out}")
    print(
        f"prefect_overhead: uncached {st['uncached']['mean_ms']:.1f} ms/task "
        f"(p95 {st['uncached']['p95_ms']:.1f}), cached hit {st['cached_hit']['mean_ms']:.1f} ms/task, "
        f"50MiB-array key: ours {ours:.1f} ms vs INPUTS {anchor:.0f} ms ({ratio}x; "
        f"digest passed {pre:.1f} ms, {ratio_pre}x), "
        f"empty flow run {st['empty_flow']['mean_ms']:.0f} ms "
        f"({st['empty_flow_no_heartbeat']['mean_ms']:.0f} ms without heartbeat)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
