"""Versioned reward prompts per category, kept in YAML
(``gpuflows/pipelines/two_stage_eval/prompts/two_stage_eval.yaml``).

Schema::

    version: "2026-11-22.2"            # required; change it with every prompt edit
    answer_format: "Score: <n>"        # optional, informative
    categories:                        # every category of the benchmark (Chinese names ok)
      physical:
        system: "You are a strict judge of ... physical plausibility ..."
        user: 'Original image: {description}  Edit instruction: "{instruction}" ... "Score: <n>"'
      environment: {system: ..., user: ...}
      ...

Templates are Python format strings with two placeholders, ``{instruction}`` and
``{description}``; both must appear in every user template, and ``{{`` / ``}}`` write a literal
brace. :func:`load_prompts` checks everything before any model loads and raises
:class:`gpuflows.core.faults.InputError` naming the file, category and field. ``PromptSet.digest``
covers the version and every template, so scores keyed by it are redone when a prompt changes.
"""

from __future__ import annotations

import importlib.resources
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gpuflows.core.evidence.digest import value_digest
from gpuflows.core.faults import InputError
from gpuflows.pipelines.two_stage_eval.bench import CATEGORIES, canonical_category

PACKAGE, RESOURCE = "gpuflows.pipelines.two_stage_eval", "prompts/two_stage_eval.yaml"
PLACEHOLDERS = frozenset({"instruction", "description"})


@dataclass(frozen=True)
class PromptSet:
    """Checked prompts: ``prompts[category] = (system, user template)``."""

    version: str
    prompts: dict[str, tuple[str, str]]
    digest: str
    path: str
    answer_format: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level keys, as read

    def render(self, category: str, instruction: str, description: str) -> tuple[str, str]:
        """(system, user) for one pair; ``category`` may be an alias (物理 …).

        Raises:
            InputError: an unknown category.
        """
        cat = canonical_category(category)
        if cat is None or cat not in self.prompts:
            raise InputError(f"category={category!r}: no prompt for it in {self.path}")
        values = {"instruction": instruction, "description": description}
        system, user = self.prompts[cat]
        return system.format(**values), user.format(**values)


def default_prompts_text() -> tuple[str, str]:
    """(text, location) of the packaged prompt file."""
    res = importlib.resources.files(PACKAGE).joinpath(RESOURCE)
    return res.read_text(encoding="utf-8"), str(res)


def _placeholders(text: str, where: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise InputError(
            f"{where}: not a valid template ({exc}): write {{{{ and }}}} for literal braces"
        ) from None


def parse_prompts(doc: Any, where: str) -> PromptSet:
    """Check a parsed YAML document (module docstring) and build the :class:`PromptSet`."""
    if not isinstance(doc, dict):
        raise InputError(
            f"prompts_path={where}: not a YAML mapping "
            "(see gpuflows.pipelines.two_stage_eval.prompt_set)"
        )
    version = doc.get("version")
    if not isinstance(version, str | int | float) or not str(version).strip():
        raise InputError(
            f"prompts_path={where}: needs a top-level 'version' string (quoted): add one, and "
            "change it with every prompt edit"
        )
    cats = doc.get("categories")
    if not isinstance(cats, dict):
        raise InputError(f"prompts_path={where}: needs a 'categories' mapping of {CATEGORIES}")
    prompts: dict[str, tuple[str, str]] = {}
    for key, entry in cats.items():
        cat = canonical_category(key)
        if cat is None:
            raise InputError(f"prompts_path={where}: unknown category {key!r}: use {CATEGORIES}")
        if cat in prompts:
            raise InputError(f"prompts_path={where}: category {cat!r} given twice (as {key!r})")
        texts = []
        for fld in ("system", "user"):
            text = entry.get(fld) if isinstance(entry, dict) else None
            at = f"prompts_path={where}: category {cat!r}, field {fld!r}"
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{at}: missing or empty: write the {fld} prompt")
            names = _placeholders(text, at)
            unknown = sorted(names - PLACEHOLDERS)
            if unknown:
                raise InputError(
                    f"{at}: unknown placeholder(s) {unknown}: only {{instruction}} and "
                    "{description} are filled in (write {{ }} for a literal brace)"
                )
            missing = sorted(PLACEHOLDERS - names) if fld == "user" else []
            if missing:
                raise InputError(f"{at}: lacks placeholder(s) {missing}: the model must see them")
            texts.append(text.strip())
        prompts[cat] = (texts[0], texts[1])
    absent = [c for c in CATEGORIES if c not in prompts]
    if absent:
        raise InputError(f"prompts_path={where}: no prompts for {absent}: add system and user")
    ordered = {c: prompts[c] for c in CATEGORIES}
    version = str(version).strip()
    return PromptSet(
        version=version,
        prompts=ordered,
        digest=value_digest({"version": version, "prompts": ordered}),
        path=where,
        answer_format=str(doc.get("answer_format") or ""),
        extra={k: v for k, v in doc.items() if k not in ("version", "categories")},
    )


def load_prompts(path: str | Path | None = None) -> PromptSet:
    """Load and check a prompt file; ``None`` = the packaged ``two_stage_eval.yaml``.

    Raises:
        InputError: unreadable file, bad YAML, no version, a category missing, an unknown or
            missing placeholder — naming the file, the category and the field.
    """
    if path is None:
        text, where = default_prompts_text()
    else:
        where = str(path)
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeError) as exc:
            raise InputError(f"prompts_path={where}: cannot read it ({exc})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"prompts_path={where}: not valid YAML ({exc})") from None
    return parse_prompts(doc, where)
