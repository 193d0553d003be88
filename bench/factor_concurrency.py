"""factor-pipeline bench: step 3's achieved request rate vs the limit C/L, and step 2's streaming
conversion vs plain ijson+orjson on a 1 GB input, with peak RSS at two sizes.

1. Step 3 (``qa_step``: the endpoint clients, batches, outcome files) against the fixed-latency
   fault responder (``python -m gpuflows.models.llm.faults_server``, one process per endpoint):
   concurrency C = 20 and 160 on one endpoint, as a ratio of C/L (goal >= 0.9); and 1, 2, 4
   endpoints with CONCURRENCY=20 each (the per-GPU fan-out): scaling efficiency =
   rate(E) / (E x rate(1)). C = 160 is also measured at L = 0.25, 0.5, 1 and 2 s with the
   client's CPU per request: against a fast server that CPU, not the semaphore, is the limit.
2. Step 2 (``sample_failures``) on a generated JSON array (1 GB by default, in /tmp, never in
   git) vs plain ``ijson.items`` + ``orjson.dumps`` of the same file in the same run: records/s
   ratio (goal >= 0.8); peak RSS (VmHWM of a fresh process) at two sizes (goal: flat, < 100 MB).

    python bench/factor_concurrency.py [--latency 1.0] [--sweep 0.25,0.5,1,2] [--gb 1.0] [--quick]

Writes ``bench/results/factor-concurrency-cpu.json``; the summary line is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.record import RESULTS, fig, provenance, write_result  # noqa: E402

OK = "Q: what is it? A: a dog."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_responders(n: int, latency: float) -> tuple[list[subprocess.Popen], list[str]]:
    import httpx

    procs, urls = [], []
    for _ in range(n):
        port = _free_port()
        cmd = [sys.executable, "-m", "gpuflows.models.llm.faults_server", "--port", str(port)]
        procs.append(subprocess.Popen([*cmd, "--latency", str(latency)]))
        urls.append(f"http://127.0.0.1:{port}/v1")
    for url in urls:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url.removesuffix("/v1") + "/stats", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"responder {url} did not start") from None
                time.sleep(0.1)
    return procs, urls


def _server_max_in_flight(urls: list[str]) -> list[int]:
    import httpx

    out = []
    for u in urls:
        out.append(httpx.get(u.removesuffix("/v1") + "/stats").json()["in_flight_max"])
        httpx.post(u.removesuffix("/v1") + "/reset")
    return out


def qa_rate(urls: list[str], conc: int, n: int, latency: float, tmp: Path, tag: str) -> dict:
    from gpuflows.pipelines.factor_pipeline.qa import qa_step

    src = tmp / f"qa-{tag}.jsonl"
    src.write_text(
        "".join(json.dumps({"id": f"r{i}", "prompt": f"{i} {OK}"}) + "\n" for i in range(n))
    )
    out_dir = tmp / f"out-{tag}"  # fresh: no outcome yet
    c0, t0 = time.process_time(), time.perf_counter()
    rec = qa_step(
        src,
        out_dir,
        urls=urls,
        served_model="m",
        num_gpus=len(urls),
        concurrency=conc,
        batch_size=n,
        max_attempts=2,
        timeout_s=60,
    )
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    limit = len(urls) * conc / latency
    return {
        "endpoints": len(urls),
        "concurrency_per_endpoint": conc,
        "requests": n,
        "ok": rec["qa"],
        "lost": n - rec["qa"] - rec["errors"],
        "sent": rec["sent_now"],
        "latency_s": latency,
        "seconds": dt,
        "client_cpu_ms_per_request": 1000 * cpu / n,
        "req_per_s": n / dt,
        "limit_req_per_s": limit,
        "ratio": n / dt / limit,
        "server_in_flight_max": _server_max_in_flight(urls),
    }


def make_array(path: Path, target_bytes: int) -> int:
    import orjson

    n = 0
    with open(path, "wb", buffering=2**22) as f:
        f.write(b"[")
        while f.tell() < target_bytes:
            rec = {
                "id": f"img-{n:09d}",
                "shard": "shard-00001.parquet",
                "row": n,
                "label": "red circle",
                "prediction": "blue square",
                "completion": "x" * 300,
                "verify": "no",
                "verified": False,
                "failure": n % 4 != 0,
                "failure_key": "color+verify",
                "image_path": f"images/img-{n:09d}.png",
                "meta": {"color": "red", "shape": "circle", "size": 21},
            }
            f.write((b"," if n else b"") + orjson.dumps(rec))
            n += 1
        f.write(b"]")
    return n


_PLAIN = """
import sys, time, ijson, orjson
t = time.perf_counter(); n = 0
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "wb", buffering=2**20) as out:
    for rec in ijson.items(f, "item", use_float=True):
        n += 1
        if rec.get("failure") is not False:
            out.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))
dt = time.perf_counter() - t
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
print(n, dt, int(hwm) / 1024)
"""

_OURS = """
import sys, time
from pathlib import Path
from gpuflows.pipelines.factor_pipeline.sampling import sample_failures
r = sample_failures([Path(sys.argv[1])], Path(sys.argv[2]))
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
print(r["records_in"], r["seconds"], int(hwm) / 1024)
"""


def _run(code: str, src: Path, out: Path) -> tuple[int, float, float]:
    res = subprocess.run(
        [sys.executable, "-c", code, str(src), str(out)], capture_output=True, text=True, check=True
    )
    n, dt, mib = res.stdout.split()
    return int(n), float(dt), float(mib)


def step2(gb: float, tmp: Path) -> dict:
    sizes = {"small": max(10 * 2**20, int(gb * 2**30 / 10)), "large": int(gb * 2**30)}
    out: dict = {}
    for name, size in sizes.items():
        src = tmp / f"step1-{name}.json"
        records = make_array(src, size)
        ours = _run(_OURS, src, tmp / "ours.jsonl")
        plain = _run(_PLAIN, src, tmp / "plain.jsonl")
        same = (tmp / "ours.jsonl").read_bytes() == (tmp / "plain.jsonl").read_bytes()
        out[name] = {
            "input_bytes": src.stat().st_size,
            "records": records,
            "ours_records_per_s": ours[0] / ours[1],
            "plain_records_per_s": plain[0] / plain[1],
            "ratio": (ours[0] / ours[1]) / (plain[0] / plain[1]),
            "ours_peak_rss_mib": ours[2],
            "plain_peak_rss_mib": plain[2],
            "identical_output": same,
        }
        for p in (src, tmp / "ours.jsonl", tmp / "plain.jsonl"):
            p.unlink()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=1.0, help="responder latency L (s)")
    ap.add_argument(
        "--sweep",
        default="0.25,0.5,1.0,2.0",
        help="latencies (s) at which C=160 on one endpoint is also measured",
    )
    ap.add_argument("--waves", type=int, default=10, help="requests = waves x in-flight limit")
    ap.add_argument("--gb", type=float, default=1.0, help="step-2 large input size (GiB)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a check, not a record)")
    a = ap.parse_args()
    if a.quick:
        a.gb, a.waves, a.sweep = 0.02, 2, "0.25"
    tmp = Path(tempfile.mkdtemp(prefix="factor-bench-"))
    procs, urls = _start_responders(4, a.latency)
    try:
        conc = [qa_rate(urls[:1], c, c * a.waves, a.latency, tmp, f"c{c}") for c in (20, 160)]
        fan = [qa_rate(urls[:e], 20, 20 * e * a.waves, a.latency, tmp, f"e{e}") for e in (1, 2, 4)]
    finally:
        for p in procs:
            p.terminate()
    sweep = []
    for lat in [float(x) for x in a.sweep.split(",") if x.strip()]:
        sprocs, surls = _start_responders(1, lat)
        try:
            sweep.append(qa_rate(surls, 160, 160 * a.waves, lat, tmp, f"l{lat}"))
        finally:
            for p in sprocs:
                p.terminate()
    base = fan[0]["req_per_s"]
    for f in fan:
        f["scaling_efficiency"] = f["req_per_s"] / (f["endpoints"] * base)
    s2 = step2(a.gb, tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "name": "factor-concurrency",
        "device": "cpu",
        **provenance(),
        "host": {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0]},
        "latency_s": a.latency,
        "quick": a.quick,
        "step3_concurrency": conc,
        "step3_endpoints": fan,
        "step3_latency_sweep_c160": sweep,
        "why_short_latency_falls_short": (
            "the client spends client_cpu_ms_per_request of CPU per request (httpx, one event "
            "loop); with a fixed-latency server the C answers of a wave arrive together and are "
            "handled one after another, so a request waits on average about C x that cost / 2 "
            "before it is re-sent: the ratio is about L / (L + C x cost / 2), near 0.9 or above "
            "from L = 1 s at C = 160 on this host, lower for shorter L"
        ),
        "step2": s2,
        "figures": {
            "c20_ratio": fig(conc[0]["ratio"], "of C/L"),
            "c160_ratio": fig(conc[1]["ratio"], "of C/L"),
            "client_cpu_per_request_c160": fig(conc[1]["client_cpu_ms_per_request"], "ms"),
            "scaling_efficiency_4": fig(fan[2]["scaling_efficiency"], "of linear"),
            "step2_ratio_1gb": fig(s2["large"]["ratio"], "of plain ijson+orjson"),
            "step2_peak_rss_small": fig(s2["small"]["ours_peak_rss_mib"], "MiB"),
            "step2_peak_rss_large": fig(s2["large"]["ours_peak_rss_mib"], "MiB"),
        },
        "goals": {"c_ratio": 0.9, "step2_ratio": 0.8, "peak_rss_mib": 100},
    }
    name = "factor-concurrency-cpu" + ("-quick" if a.quick else "")
    path = write_result(RESULTS / f"{name}.json", result)
    lg = s2["large"]
    print(
        f"factor-concurrency: C=20 {conc[0]['ratio']:.2f}, C=160 {conc[1]['ratio']:.2f} of C/L "
        f"(L={a.latency}s; C=160 at L="
        + "/".join(f"{r['latency_s']:g}" for r in sweep)
        + " s: "
        + "/".join(f"{r['ratio']:.2f}" for r in sweep)
        + "); 1/2/4 endpoints x20: "
        + "/".join(f"{f['req_per_s']:.0f}" for f in fan)
        + f" req/s, efficiency@4 {fan[2]['scaling_efficiency']:.2f}; step 2 on "
        f"{lg['input_bytes'] / 2**30:.2f} GiB: {lg['ratio']:.2f}x plain ({lg['ours_records_per_s']:,.0f}"
        f" rec/s), peak RSS {s2['small']['ours_peak_rss_mib']:.0f} / {lg['ours_peak_rss_mib']:.0f} MiB"
        f" -> {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
