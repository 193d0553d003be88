"""Read a numeric score out of a reward model's text answer — or refuse, never guess.

:func:`parse_score` looks for the score in this order and takes the first kind that is present:

1. JSON: an object with a ``score``/``rating``/``overall``/``final_score`` key (``{"score": 7}``).
2. Tagged numbers: a number right after *score*, *rating*, *rate(d)*, *grade* or *verdict*
   (``Score: 7``, ``I'd rate it 6 out of 10``, ``**Rating** (0-10): 8.5``, ``Final score = 7/10``).
3. Fractions: ``x/d``, ``x out of d``, ``x%`` anywhere in the text.
4. A lone number: the answer holds exactly one number (the digits-only output of a
   constrained decoder: ``7``, ``10``, ``7.5``).

When the first kind present yields two different values the answer is ambiguous and an error is
raised; the same value found twice is fine. Markdown emphasis and code marks are ignored.

Scales: a fraction whose denominator equals ``hi`` (``7/10`` on the default 0-10 scale) is read
as is. Any other denominator (``4/5``, ``85%``, ``70/100``) states a proportion ``x / d`` in
[0, 1], which is mapped linearly onto ``[lo, hi]`` (``4/5`` -> 8.0 on 0-10) — the model said
clearly how good it found the edit, only on another scale. ``rescale=False`` turns such answers
into errors instead. A stated scale ("on a scale of 1 to 5", "(0-100)") is dropped from the
text when its top is ``hi`` and is an error otherwise (where its bottom lies is unknown, so no
mapping is safe). A numerator above its denominator, a value outside ``[lo, hi]``, NaN or
infinity, and an empty answer are all errors.
"""

from __future__ import annotations

import json
import math
import re

__all__ = ["ScoreParseError", "parse_score"]

_NUM = r"[-+]?(?:\d+(?:\.\d+)?|\.\d+)"
_DENOM = rf"\s*(?:/|\bout\s+of\b)\s*(?P<den>{_NUM})"
_TAG = r"\b(?:final\s+|overall\s+)?(?:score|rating|rated|rate|grade|verdict)\b"
# between a tag and its number: punctuation, an optional stated range "(0-10)", filler words
_RANGE = r"(?:\(?\s*(?:on\s+a\s+scale\s+of\s+|from\s+)?\d+\s*(?:-|–|to)\s*\d+\s*\)?)"
_FILLER = r"(?:is|of|it|this|that|the|edit|image|would|be|as|a|an|i'd|i|give|at)"
# possessive: no catastrophic backtracking
_GAP = rf"(?:[^\w\n+\-–]++|[+\-–](?![\d.])|{_RANGE}|{_FILLER}\b)*+"
# a stated scale is not a score: "on a scale of 0 to 10", "(0-10)", "(1 to 5)"
_STATED_RANGE_RE = re.compile(
    r"(?:\b(?:on\s+)?(?:a\s+)?scale\s+(?:of|from)\s+\d+\s*(?:-|–|to)\s*(?P<top>\d+))"
    r"|(?:\(\s*\d+\s*(?:-|–|to)\s*(?P<ptop>\d+)\s*\))",
    re.IGNORECASE,
)
_TAGGED_RE = re.compile(rf"{_TAG}{_GAP}(?P<num>{_NUM})(?:{_DENOM})?(?P<pct>\s*%)?", re.IGNORECASE)
_FRACTION_RE = re.compile(rf"(?P<num>{_NUM}){_DENOM}|(?P<pnum>{_NUM})\s*%", re.IGNORECASE)
_NUMBER_RE = re.compile(rf"(?<![\w.]){_NUM}(?![\w])")
_NONFINITE_RE = re.compile(r"\b(?:nan|inf|infinity)\b", re.IGNORECASE)
_JSON_RE = re.compile(r"\{[^{}]*\}", re.DOTALL)
_JSON_KEYS = ("score", "rating", "overall", "final_score", "overall_score")
_MARKUP_RE = re.compile(r"\*\*|__|`+|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)")


class ScoreParseError(ValueError):
    """No score could be read from a model's answer (the message quotes the answer, truncated)."""

    def __init__(self, reason: str, text: str) -> None:
        self.reason = reason
        self.text = text
        shown = text if len(text) <= 200 else text[:197] + "..."
        super().__init__(f"cannot read a score: {reason}; answer: {shown!r}")


def parse_score(text: str, *, lo: float = 0, hi: float = 10, rescale: bool = True) -> float:
    """The score in ``text`` as a float in ``[lo, hi]``; :class:`ScoreParseError` otherwise."""
    if not isinstance(text, str):
        raise ScoreParseError(f"answer is a {type(text).__name__}, not text", repr(text))
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"need finite lo < hi, got lo={lo}, hi={hi}")
    clean = _MARKUP_RE.sub("", text).strip()
    if not clean:
        raise ScoreParseError("the answer is empty", text)

    candidates = _from_json(clean, text, hi)
    if candidates is None:
        candidates = _from_regex(clean, text, hi)
    if not candidates:
        if _NONFINITE_RE.search(clean):
            raise ScoreParseError("the score is not a finite number", text)
        raise ScoreParseError("no number in the answer", text)

    values: set[float] = set()
    for num, den in candidates:
        values.add(_scale(num, den, lo=lo, hi=hi, rescale=rescale, text=text))
    if len(values) > 1:
        shown = ", ".join(f"{v:g}" for v in sorted(values))
        raise ScoreParseError(f"ambiguous: several different scores ({shown})", text)
    value = values.pop()
    if not lo <= value <= hi:
        raise ScoreParseError(f"score {value:g} is outside [{lo:g}, {hi:g}]", text)
    return value


def _from_json(clean: str, text: str, hi: float) -> list[tuple[float, float | None]] | None:
    """Candidates from JSON objects holding a score key; ``None`` when there are none."""
    found: list[tuple[float, float | None]] = []
    for match in _JSON_RE.finditer(clean):
        try:
            obj = json.loads(match.group(0))
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        lowered = {str(k).lower(): v for k, v in obj.items()}
        for key in _JSON_KEYS:
            if key not in lowered:
                continue
            value = lowered[key]
            if isinstance(value, bool):
                raise ScoreParseError(f"JSON {key!r} is a boolean", text)
            if isinstance(value, int | float):
                found.append((float(value), None))
            elif isinstance(value, str):
                inner = _from_regex(value, text, hi)
                if not inner:
                    raise ScoreParseError(f"JSON {key!r} holds no number", text)
                found.extend(inner)
            else:
                raise ScoreParseError(f"JSON {key!r} is a {type(value).__name__}", text)
            break
    return found or None


def _from_regex(clean: str, text: str, hi: float) -> list[tuple[float, float | None]]:
    """Candidates of the first kind present: tagged, then fractions, then a lone number."""
    for m in _STATED_RANGE_RE.finditer(clean):
        top = float(m.group("top") or m.group("ptop"))
        if top != hi:
            raise ScoreParseError(f"the answer states a scale up to {top:g}, not {hi:g}", text)
    clean = _STATED_RANGE_RE.sub(" ", clean)
    tagged = [_pair(m) for m in _TAGGED_RE.finditer(clean)]
    if tagged:
        return tagged
    fractions = []
    for m in _FRACTION_RE.finditer(clean):
        if m.group("pnum") is not None:
            fractions.append((float(m.group("pnum")), 100.0))
        else:
            fractions.append((float(m.group("num")), float(m.group("den"))))
    if fractions:
        return fractions
    numbers = [(float(m.group(0)), None) for m in _NUMBER_RE.finditer(clean)]
    if len(numbers) > 1 and len({n for n, _ in numbers}) > 1:
        raise ScoreParseError(
            f"ambiguous: {len(numbers)} numbers and none marked as the score", text
        )
    return numbers[:1]


def _pair(match: re.Match[str]) -> tuple[float, float | None]:
    num = float(match.group("num"))
    if match.group("den") is not None:
        return num, float(match.group("den"))
    if match.group("pct"):
        return num, 100.0
    return num, None


def _scale(
    num: float, den: float | None, *, lo: float, hi: float, rescale: bool, text: str
) -> float:
    if not math.isfinite(num):
        raise ScoreParseError("the score is not a finite number", text)
    if den is None or den == hi:
        if den is not None and num > den:
            raise ScoreParseError(f"{num:g}/{den:g} is more than the whole", text)
        return num
    if not math.isfinite(den) or den <= 0:
        raise ScoreParseError(f"denominator {den:g} is not a positive number", text)
    if not rescale:
        raise ScoreParseError(f"the answer is on a 0-{den:g} scale, not {lo:g}-{hi:g}", text)
    if not 0 <= num <= den:
        raise ScoreParseError(f"{num:g}/{den:g} is not a proportion between 0 and 1", text)
    return lo + (num / den) * (hi - lo)
