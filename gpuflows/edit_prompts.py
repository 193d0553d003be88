"""Versioned reward prompts per category (``gpuflows/prompts/two_stage_eval.yaml``), not in code."""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import yaml

from gpuflows.digest import value_digest
from gpuflows.edit_bench import CATEGORIES
from gpuflows.faults import InputError

DEFAULT_PATH = Path(__file__).parent / "prompts" / "two_stage_eval.yaml"
PLACEHOLDERS = {"instruction", "description"}


@dataclass(frozen=True)
class PromptSet:
    version: str
    prompts: dict[str, tuple[str, str]]  # category -> (system, user template)
    digest: str
    path: str

    def render(self, category: str, instruction: str, description: str) -> tuple[str, str]:
        """(system, user) for one pair."""
        system, user = self.prompts[category]
        return system, user.format(instruction=instruction, description=description)


def load_prompts(path: str | Path | None = None) -> PromptSet:
    """Load and check a prompt file: version, every category, known placeholders only."""
    path = Path(path) if path else DEFAULT_PATH
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"prompts_path={path}: cannot read it as YAML ({exc})") from None
    if not isinstance(doc, dict) or not str(doc.get("version") or "").strip():
        raise InputError(
            f"prompts_path={path}: needs a top-level 'version' (change it with every edit)"
        )
    cats = doc.get("categories") or {}
    prompts = {}
    for cat in CATEGORIES:
        entry = cats.get(cat)
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ("system", "user")
        ):
            raise InputError(
                f"prompts_path={path}: category {cat!r} needs 'system' and 'user' strings"
            )
        for fld in ("system", "user"):
            names = {f for _, f, _, _ in string.Formatter().parse(entry[fld]) if f is not None}
            bad = names - PLACEHOLDERS
            if bad:
                raise InputError(
                    f"prompts_path={path}: {cat}.{fld} uses unknown placeholder(s) {sorted(bad)}: "
                    f"only {sorted(PLACEHOLDERS)} (write {{{{ }}}} for a literal brace)"
                )
        prompts[cat] = (entry["system"].strip(), entry["user"].strip())
    version = str(doc["version"])
    return PromptSet(
        version, prompts, value_digest({"version": version, "prompts": prompts}), str(path)
    )
