"""Shared fixtures of the batch-eval tests: the real MiniLM encoder and a trained re-ranker,
loaded once per session (the encoder takes seconds to load on a busy 2-core host)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def encoder():
    from gpuflows.models.reranker import TextEncoder

    return TextEncoder()


@pytest.fixture(scope="session")
def world(encoder, tmp_path_factory):
    """A small generated dataset, its train/test lists and a re-ranker trained on the train split."""
    from gpuflows.pipelines.batch_eval import scoring
    from gpuflows.pipelines.batch_eval.generate import generate

    data = generate(n_train=60, n_test=40, n_candidates=20, seed=0)
    train = scoring.build_lists(data, encoder, data.split("train")["query_id"].tolist())
    test = scoring.build_lists(data, encoder, data.split("test")["query_id"].tolist())
    out = tmp_path_factory.mktemp("head") / "head.safetensors"
    model, report = scoring.fit(encoder, train, epochs=150, seed=0, out=out)
    return {"data": data, "train": train, "test": test, "model": model, "report": report}
