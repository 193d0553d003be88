"""The ARGO role prompts, from a versioned YAML file (``prompts/argo_v1.yaml`` by default).

Four roles: ``decomposer`` (next sub-query), ``retrieval_answer`` (sub-answer from retrieved
chunks), ``reasoner`` (a reasoning step), ``synthesizer`` (final answer with ``<choice>N</choice>``).
Each has a ``system`` text (with its one example: the few-shot block every prompt of the role
shares, so the engine prefills it once per batch), a ``user`` template and the reference's
``generation`` settings. :func:`load_prompts` checks the file before any model loads; an error
names the file, role and field. ``PromptSet.digest`` covers every text and setting.
"""

from __future__ import annotations

import importlib.resources
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gpuflows.core.evidence.digest import value_digest
from gpuflows.core.faults import InputError

PACKAGE, RESOURCE = "gpuflows.pipelines.argo_experiment", "prompts/argo_v1.yaml"
ROLES: dict[str, frozenset[str]] = {
    "decomposer": frozenset({"question", "options", "history", "progress"}),
    "retrieval_answer": frozenset({"question", "subquery", "context"}),
    "reasoner": frozenset({"question", "options", "history", "progress"}),
    "synthesizer": frozenset({"question", "options", "evidence", "history"}),
}
GEN_KEYS = {"max_new_tokens", "temperature", "top_p", "stop"}


@dataclass(frozen=True)
class RolePrompt:
    system: str
    user: str
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]

    def messages(self, **fields: str) -> tuple[dict[str, str], ...]:
        return (
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.format(**fields)},
        )


@dataclass(frozen=True)
class PromptSet:
    version: str
    source: str
    roles: dict[str, RolePrompt]

    @property
    def digest(self) -> str:
        return value_digest(
            {"version": self.version, "roles": {k: vars(v) for k, v in self.roles.items()}}
        )

    def __getitem__(self, role: str) -> RolePrompt:
        return self.roles[role]


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def load_prompts(path: str | Path | None = None) -> PromptSet:
    """The packaged prompts, or a YAML file of the same schema (see the packaged file)."""
    if path is None:
        ref = importlib.resources.files(PACKAGE).joinpath(RESOURCE)
        text, where = ref.read_text(encoding="utf-8"), f"{PACKAGE}/{RESOURCE}"
    else:
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"prompts={str(p)!r}: no such file")
        text, where = p.read_text(encoding="utf-8"), str(p)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(doc, dict) or not str(doc.get("version") or "").strip():
        raise InputError(f"{where}: needs a top-level 'version' (change it with every edit)")
    roles = doc.get("roles")
    if not isinstance(roles, dict):
        raise InputError(f"{where}: needs 'roles' with {sorted(ROLES)}")
    missing = sorted(set(ROLES) - set(roles))
    if missing:
        raise InputError(f"{where}: roles lack {missing}")
    out: dict[str, RolePrompt] = {}
    for role, need in ROLES.items():
        out[role] = _role(where, role, roles[role], need)
    return PromptSet(str(doc["version"]), where, out)


def _role(where: str, role: str, spec: Any, need: frozenset[str]) -> RolePrompt:
    at = f"{where}: roles.{role}"
    if not isinstance(spec, dict):
        raise InputError(f"{at}: must be a mapping with system, user, generation")
    for key in ("system", "user"):
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            raise InputError(f"{at}.{key}: must be non-empty text")
    try:
        used = _fields(spec["user"])
    except ValueError as exc:
        raise InputError(
            f"{at}.user: bad format string ({exc}); write {{{{ }}}} for a brace"
        ) from None
    if used - need or need - used:
        raise InputError(
            f"{at}.user: placeholders must be exactly {sorted(need)}; unknown "
            f"{sorted(used - need)}, missing {sorted(need - used)}"
        )
    gen = spec.get("generation") or {}
    if not isinstance(gen, dict) or set(gen) - GEN_KEYS:
        raise InputError(f"{at}.generation: keys are {sorted(GEN_KEYS)}")
    try:
        return RolePrompt(
            system=spec["system"],
            user=spec["user"],
            max_new_tokens=int(gen.get("max_new_tokens", 128)),
            temperature=float(gen.get("temperature", 0.0)),
            top_p=float(gen.get("top_p", 1.0)),
            stop=tuple(str(s) for s in gen.get("stop", []) or []),
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"{at}.generation: {exc}") from None
