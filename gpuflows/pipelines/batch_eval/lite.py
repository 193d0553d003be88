"""CoTRR-Lite: a lighter configuration of the same re-ranker, measured against p95 <= 150 ms and
peak memory <= 512 MB.

Lighter how: the MiniLM encoder's linear layers in int8 (``torch.ao.quantization.
quantize_dynamic``) on a CPU, in float16 on a GPU, and queries truncated to 32 tokens; the fusion
head is the trained one. Latency: the server scenario (:mod:`serving`), checked on the 95 %
upper bound of p95 over every request. Memory: on a GPU the allocator peak
(``torch.cuda.max_memory_allocated``) while the lite model is built and served; on a CPU the
growth of the process's resident set (RSS, sampled every 5 ms by ``psutil``) over its value
before the lite model was built: the lite model's own footprint, not that of the Prefect client
and libraries already loaded in the process (stated in the check).
"""

from __future__ import annotations

import copy
import threading
import time
import warnings

from pydantic import BaseModel

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.models.reranker import Reranker, TextEncoder
from gpuflows.pipelines.batch_eval import serving
from gpuflows.pipelines.batch_eval.scoring import Lists


class LiteResult(BaseModel):
    config: str
    server: serving.ScenarioResult
    peak_memory_mb: float
    memory_basis: str
    checks: list[CheckResult]
    note: str


class _RssPeak:
    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.start = self.proc.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> _RssPeak:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def lite_encoder(full: TextEncoder) -> TextEncoder:
    """A copy of ``full`` made lighter (int8 linears on a CPU, fp16 on a GPU, 32 tokens)."""
    import torch

    enc = copy.copy(full)
    enc.cache = {}
    enc.max_length = 32
    if full.device.type == "cuda":
        enc.model = copy.deepcopy(full.model).half()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            enc.model = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(full.model), {torch.nn.Linear}, dtype=torch.qint8
            )
    return enc


def run_lite(
    model: Reranker,
    lists: Lists,
    *,
    n_requests: int,
    rate_qps: float,
    batch_size: int,
    warmup: int,
    timeout_ms: float,
    device: str,
    seed: int = 0,
    p95_ms_max: float = 150.0,
    memory_mb_max: float = 512.0,
) -> LiteResult:
    """Build the lite model, serve it (server scenario), check latency and memory."""
    import torch

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with _RssPeak() as rss:
        lite = Reranker(encoder=lite_encoder(model.encoder), head=model.head, name="cotrr-lite")
        srv = serving.server(
            serving.model_score_fn(lite),
            lists,
            n_requests=n_requests,
            rate_qps=rate_qps,
            batch_size=batch_size,
            warmup=warmup,
            timeout_ms=timeout_ms,
            device=device,
            seed=seed,
        )
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        basis = "CUDA allocator peak while building and serving the lite model"
    else:
        peak = (rss.peak - rss.start) / 2**20
        basis = "RSS growth over the process's RSS before the lite model was built"
    p95 = srv.bounds.percentiles["p95"].upper_ms
    checks = [
        CheckResult(
            name="lite_p95_latency",
            passed=p95 is not None and p95 <= p95_ms_max,
            numbers={"p95_upper_ms": p95, "max_ms": p95_ms_max, "n": srv.bounds.n},
            reason=f"95 % upper bound of p95 {serving._ms(p95)} vs <= {p95_ms_max:g} ms "
            f"({srv.failed} of {srv.bounds.n} failed)",
        ),
        CheckResult(
            name="lite_peak_memory",
            passed=peak <= memory_mb_max,
            numbers={"peak_mb": round(peak, 1), "max_mb": memory_mb_max},
            reason=f"{peak:.0f} MB ({basis}) vs <= {memory_mb_max:g} MB",
        ),
    ]
    cfg = "MiniLM fp16" if cuda else "MiniLM int8 dynamic quantization"
    return LiteResult(
        config=f"{cfg}, 32 query tokens, trained fusion head",
        server=srv,
        peak_memory_mb=peak,
        memory_basis=basis,
        checks=checks,
        note=f"CoTRR-Lite = {cfg}, queries truncated to 32 tokens; nDCG@10 "
        f"{serving._ms(None) if srv.ndcg10 is None else f'{srv.ndcg10:.4f}'} on the served "
        f"requests; memory: {basis}.",
    )
