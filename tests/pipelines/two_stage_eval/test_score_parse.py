"""parse_score: reads the score a reward model gave, or refuses with a clear error."""

from __future__ import annotations

import time

import pytest

from gpuflows.pipelines.two_stage_eval.score_parse import ScoreParseError, parse_score


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", 7.0),
        ("10", 10.0),
        ("0", 0.0),
        ("7.5", 7.5),
        ("7.", 7.0),
        ("  3.5\n", 3.5),
        ("Score: 7", 7.0),
        ("score:7", 7.0),
        ("Score - 7", 7.0),
        ("7/10", 7.0),
        ("**8.5**", 8.5),
        ("**Rating:** 9/10", 9.0),
        ("`6`", 6.0),
        ("I'd rate it 6 out of 10", 6.0),
        ("I would rate this edit a 6.", 6.0),
        ("Final score = 7/10", 7.0),
        ("Rating (0-10): 8", 8.0),
        ("score on a scale of 0 to 10: 4", 4.0),
        ("On a scale of 0 to 10 I give it 7", 7.0),
        ('{"score": 7}', 7.0),
        ('{"Rating": 6.5, "reason": "fine"}', 6.5),
        ('```json\n{"score": "7/10", "reason": "2 artifacts"}\n```', 7.0),
        ('The result: {"reasoning": "hat added, 3 flaws", "score": 8}', 8.0),
        ("Score: 7. The image has 3 cats and 2 dogs.", 7.0),
        ("Score: 7\nFinal score: 7", 7.0),  # the same value twice is not ambiguous
        ("The edit is decent, 8/10 overall, though 2 artifacts remain.", 8.0),
        ("3/4 of the image is fine. Score 9", 9.0),  # a tagged score beats a fraction
        ("The instruction was followed. 9", 9.0),
    ],
)
def test_reads_scores(text: str, expected: float) -> None:
    assert parse_score(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4/5", 8.0), ("2 out of 5", 4.0), ("85%", 8.5), ("Score: 70/100", 7.0), ("score: 90%", 9.0)],
)
def test_other_denominators_are_proportions(text: str, expected: float) -> None:
    assert parse_score(text) == pytest.approx(expected)
    with pytest.raises(ScoreParseError, match="scale"):
        parse_score(text, rescale=False)


def test_custom_range() -> None:
    assert parse_score("4", lo=1, hi=5) == 4.0
    assert parse_score("4/5", lo=1, hi=5) == 4.0  # denominator == hi: native scale
    assert parse_score("5/10", lo=1, hi=5) == pytest.approx(3.0)  # half of [1, 5]
    assert parse_score("Score: 85", lo=0, hi=100) == 85.0
    with pytest.raises(ScoreParseError, match="outside"):
        parse_score("0", lo=1, hi=5)
    with pytest.raises(ValueError, match="lo < hi"):
        parse_score("3", lo=5, hi=1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("****", "empty"),
        ("I cannot judge this image.", "no number"),
        ("7 or 8", "ambiguous"),
        ("1. good colours 2. bad hat", "ambiguous"),
        ("Score: 5 ... on reflection, final score: 7", "ambiguous"),
        ("7/10 for colour, 5/10 for the hat", "ambiguous"),
        ('{"score": 7} and {"score": 3}', "ambiguous"),
        ("Score: 11", "outside"),
        ("Score: -1", "outside"),
        ("Score:-1", "outside"),
        ("12/10", "more than the whole"),
        ("6/5", "proportion"),
        ("score: 3/0", "positive"),
        ("score: nan", "finite"),
        ("inf", "finite"),
        ('{"score": NaN}', "finite"),
        ('{"score": Infinity}', "finite"),
        ('{"score": null}', "NoneType"),
        ('{"score": true}', "boolean"),
        ('{"score": "great"}', "no number"),
        ("I rate it (1 to 5) 4", "scale up to 5"),
        ("On a scale of 1 to 100, 70", "scale up to 100"),
    ],
)
def test_refuses(text: str, reason: str) -> None:
    with pytest.raises(ScoreParseError, match=reason) as info:
        parse_score(text)
    assert isinstance(info.value, ValueError)
    assert info.value.text == text
    assert repr(text[:20])[:-1] in str(info.value)  # the message quotes the answer


def test_error_message_truncates_long_answers() -> None:
    text = "no score here " * 100
    with pytest.raises(ScoreParseError) as info:
        parse_score(text)
    message = str(info.value)
    assert "no number" in message and message.endswith("...'") and len(message) < 300


def test_non_text_is_an_error() -> None:
    with pytest.raises(ScoreParseError, match="not text"):
        parse_score(7)  # type: ignore[arg-type]


def test_pathological_inputs_are_fast() -> None:
    start = time.perf_counter()
    for text in ["score" + "!" * 20_000, "rate " + "(1-2) " * 3_000, "score " + "a " * 10_000]:
        with pytest.raises(ScoreParseError):
            parse_score(text)
    assert time.perf_counter() - start < 1.0
