"""The re-ranker backend: the real MiniLM text channel, a trained fusion head with its digest."""

from __future__ import annotations

import numpy as np

from gpuflows.core.evidence.digest import file_digest
from gpuflows.models.reranker import load_head, text_only
from gpuflows.pipelines.batch_eval import scoring


def test_minilm_is_real_and_normalised(encoder):
    e = encoder.encode(["red roses on a white background", "a vegan cocktail", "red roses"])
    assert e.shape == (3, 384)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[2] > e[0] @ e[1]  # a real sentence model: related texts are closer
    assert encoder.weights_digest.startswith("blake2b:")


def test_trained_head_beats_text_only_and_reloads(world):
    model, test, report = world["model"], world["test"], world["report"]
    fused = scoring.per_query(model, test)["ndcg10"].mean()
    plain = scoring.per_query(text_only(model.encoder), test)["ndcg10"].mean()
    assert fused > plain + 0.01
    assert report.weights_digest == file_digest(report.weights_path)
    again = load_head(report.weights_path, test.v.shape[2])
    a = model.score(test.q[:3], test.t[:3], test.v[:3])
    model.head, keep = again, model.head
    try:
        assert np.allclose(model.score(test.q[:3], test.t[:3], test.v[:3]), a, atol=1e-6)
    finally:
        model.head = keep


def test_pooling_matches_sentence_transformers(encoder):
    """Our transformers path (mean pooling + L2) gives the model's own sentence-transformers
    embeddings (its modules.json: Transformer, Pooling(mean), Normalize)."""
    st = __import__("pytest").importorskip("sentence_transformers")
    texts = ["vegan red cocktail, close-up", "portrait photo on a dark background"]
    ref = st.SentenceTransformer(str(encoder.path), device="cpu").encode(texts)
    assert np.allclose(encoder.forward(texts).numpy(), ref, atol=1e-5)
