"""Corpus folders (chunking, located errors) and retrieval with the real MiniLM."""

from __future__ import annotations

import numpy as np
import pytest

from gpuflows.core.faults import InputError
from gpuflows.pipelines.argo_experiment.corpus import chunk_paragraphs, load_corpus
from gpuflows.pipelines.argo_experiment.retrieval import (
    ChromaIndex,
    FlatIndex,
    Retriever,
    cached_flat_index,
    minilm_encoder,
)
from gpuflows.pipelines.argo_experiment.synth import generate, write_synthetic


def test_chunking_packs_paragraphs_and_windows_long_ones():
    long = " ".join(f"w{i}" for i in range(25))
    chunks = chunk_paragraphs(["a b c", "d e", long, "f"], chunk_words=10, overlap_words=2)
    assert chunks[0] == "a b c\n\nd e"
    assert chunks[1].split()[:2] == ["w0", "w1"] and len(chunks[1].split()) == 10
    assert chunks[2].split()[0] == "w8"  # 2 words of overlap
    assert chunks[-1] == "f"
    assert all(len(c.split()) <= 10 for c in chunks)


def test_corpus_folder_mixed_files_in_sorted_order(tmp_path):
    (tmp_path / "b.md").write_text("# Title\n\nPara one.\n\nPara two.\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_text('{"id": "x", "text": "From jsonl."}\n\n')
    (tmp_path / "ignored.pdf").write_bytes(b"%PDF")
    c = load_corpus(tmp_path)
    assert [ch.id for ch in c.chunks] == ["b.md#0", "sub/a.jsonl#0"]
    assert c.files == 2 and load_corpus(tmp_path).digest == c.digest


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        (lambda p: None, "no .txt, .md"),
        (lambda p: (p / "x.md").write_bytes(b"\xff\xfe bad"), "x.md: not UTF-8"),
        (lambda p: (p / "x.jsonl").write_text('{"text": "ok"}\n{"body": 1}\n'), "x.jsonl:2:"),
        (lambda p: (p / "x.jsonl").write_text("{oops\n"), "x.jsonl:1: not JSON"),
        (lambda p: (p / "x.txt").write_text("\n\n  \n"), "hold no text"),
    ],
)
def test_bad_corpus_folders_get_clear_errors(tmp_path, setup, words):
    setup(tmp_path)
    with pytest.raises(InputError, match=words):
        load_corpus(tmp_path)


def test_missing_folder_and_file_given(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        load_corpus(tmp_path / "nope")
    (tmp_path / "f.md").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        load_corpus(tmp_path / "f.md")


def test_flat_index_exact_top_k_ties_in_chunk_order():
    emb = np.array([[1, 0], [0, 1], [1, 0], [0.6, 0.8]], dtype=np.float32)
    idx = FlatIndex(["a", "b", "c", "d"], ["A", "B", "C", "D"], emb)
    hits = idx.search(np.array([1.0, 0.0]), k=3)[0]
    assert [h.chunk_id for h in hits] == ["a", "c", "d"]
    assert hits[2].score == pytest.approx(0.6)


def test_chroma_without_chromadb_says_how_to_install(tmp_path):
    try:
        import chromadb  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="pip install chromadb"):
            ChromaIndex(tmp_path, "oran_specs")
    else:
        pytest.skip("chromadb installed: the missing-package path cannot be shown")


@pytest.fixture(scope="module")
def encoder():
    return minilm_encoder()


def test_minilm_finds_the_paragraph_that_holds_the_fact(tmp_path, encoder):
    _, corpus_dir = write_synthetic(tmp_path, 4, seed=3)
    corpus = load_corpus(corpus_dir, chunk_words=16, overlap_words=0)
    index = cached_flat_index(corpus, encoder, tmp_path / "emb")
    assert len(list((tmp_path / "emb").glob("*.npy"))) == 1
    again = cached_flat_index(corpus, encoder, tmp_path / "emb")
    assert np.array_equal(again.emb, index.emb)
    questions, _ = generate(4, seed=3)
    r = Retriever(index, encoder, k=3, success_threshold=0.3)
    found = 0
    for q in questions[:6]:
        ((hits, ok),) = r.retrieve([q.question])
        right = q.options[q.answer - 1]
        found += any(right in h.text for h in hits) and q.difficulty != "hard"
    assert found >= 3  # easy/medium facts come back in the top 3 (real embeddings)
    ((hits, ok),) = r.retrieve(["Bananas are yellow fruit grown in the tropics."])
    assert hits[0].score < 0.5
