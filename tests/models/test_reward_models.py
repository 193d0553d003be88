"""Stage-2 reward adapter on the tiny synthetic LLaVA model (CPU, a few seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpuflows.models.tiny import (
    MARKER_NAME,
    REWARD_RECIPE_VERSION,
    build_tiny_reward_model,
    read_marker,
)
from gpuflows.models.vlm_reward import RewardModel, load_reward_model, score_strings
from gpuflows.pipelines.two_stage_eval.score_parse import parse_score

SYSTEM = "You are a strict judge of image edits. Answer with a score from 0 to 10."


@pytest.fixture(scope="session")
def reward_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_reward_model(tmp_path_factory.mktemp("tiny-models") / "reward", seed=0)


@pytest.fixture(scope="module")
def model(reward_dir: Path) -> RewardModel:
    return load_reward_model(reward_dir, dtype="float32", device="cpu")


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(11)
    return [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


def test_loads_through_auto_classes_without_remote_code(reward_dir: Path) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(
        reward_dir, use_safetensors=True, trust_remote_code=False
    )
    processor = AutoProcessor.from_pretrained(reward_dir)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert type(processor).__name__ == "LlavaProcessor"
    assert (reward_dir / "model.safetensors").is_file()
    assert not list(reward_dir.rglob("*.bin"))
    assert processor.tokenizer.padding_side == "left"


def test_build_is_idempotent(reward_dir: Path) -> None:
    stamp = (reward_dir / MARKER_NAME).stat().st_mtime_ns
    assert build_tiny_reward_model(reward_dir, seed=0) == reward_dir.resolve()
    assert (reward_dir / MARKER_NAME).stat().st_mtime_ns == stamp


def test_tokenizer_has_single_digit_tokens(model: RewardModel) -> None:
    tok = model.tokenizer
    for digit in "0123456789":
        ids = tok.encode(digit, add_special_tokens=False)
        assert len(ids) == 1 and tok.decode(ids) == digit
    assert set(model.number_tokens().values()) >= set("0123456789.")
    assert model.stop_token_ids() == [tok.convert_tokens_to_ids("<|im_end|>")]


def test_adapter_metadata(model: RewardModel, reward_dir: Path, tmp_path: Path) -> None:
    assert model.synthetic
    marker = read_marker(reward_dir)
    assert marker is not None and marker["recipe_version"] == REWARD_RECIPE_VERSION
    assert marker["architecture"] == "LlavaForConditionalGeneration"
    assert model.nbytes() == 4 * sum(p.numel() for p in model.model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.model.buffers()
    )
    copy = tmp_path / "copy"
    shutil.copytree(reward_dir, copy)
    (copy / MARKER_NAME).unlink()
    # attack #2 (issue 11): deleting the marker must not make random weights "real"
    assert load_reward_model(copy).synthetic


def test_constrained_answers_parse_and_are_deterministic(model: RewardModel) -> None:
    images = _images(2)
    users = ["Instruction: make it red. Rate the edit.", "Instruction: add a hat. Score?"]
    answers = model.answer(images, [SYSTEM, SYSTEM], users, constrain_to_score=True)
    assert len(answers) == 2
    scores = [parse_score(a) for a in answers]
    assert all(0 <= s <= 10 for s in scores)
    assert all(a in score_strings(0, 10) for a in answers)
    assert model.answer(images, [SYSTEM, SYSTEM], users, constrain_to_score=True) == answers


def test_left_padding_makes_answers_batch_independent(model: RewardModel) -> None:
    images = _images(3)
    users = ["short", "a much longer user prompt that forces padding of the others", "mid size"]
    systems = [SYSTEM, "", SYSTEM]  # an empty system prompt drops the system message
    batch = model.answer(images, systems, users, constrain_to_score=True)
    alone = [
        model.answer([im], [s], [u], constrain_to_score=True)[0]
        for im, s, u in zip(images, systems, users, strict=True)
    ]
    assert batch == alone


def test_constraint_follows_score_range(model: RewardModel) -> None:
    answers = model.answer(
        _images(4), [SYSTEM] * 4, ["rate"] * 4, constrain_to_score=True, score_range=(1, 5)
    )
    assert all(1 <= parse_score(a, lo=1, hi=5) <= 5 for a in answers)


def test_unconstrained_and_non_rgb(model: RewardModel) -> None:
    images = [_images(1)[0].convert("L"), _images(1)[0].convert("RGBA")]
    answers = model.answer(images, ["", ""], ["describe", "rate"], max_new_tokens=4)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    prompts = model.build_prompts([SYSTEM], ["rate"])
    assert prompts[0].count("<image>") == 1 and SYSTEM in prompts[0]
    assert prompts[0].endswith("<|im_start|>assistant\n")


def test_input_validation(model: RewardModel, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="2 images, 1 system"):
        model.answer(_images(2), [SYSTEM], ["a", "b"])
    with pytest.raises(ValueError, match=r"user_prompts\[0\] is empty"):
        model.answer(_images(1), [SYSTEM], [" "])
    with pytest.raises(ValueError, match="too wide"):
        model.answer(_images(1), [SYSTEM], ["a"], constrain_to_score=True, score_range=(0, 1e6))
    assert model.answer([], [], []) == []
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_reward_model(tmp_path)


def test_score_strings() -> None:
    valid = score_strings(0, 10)
    assert {"0", "7", "10", "7.5", "0.0", "10.0"} <= valid
    assert not {"10.5", "11", "-1", "07"} & valid
    assert score_strings(1, 2, decimals=0) == frozenset({"1", "2"})
    with pytest.raises(ValueError):
        score_strings(5, 1)
