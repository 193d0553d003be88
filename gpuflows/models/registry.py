"""Model backends by name, imported only when asked for.

A backend is the callable that builds or loads a model: a loader function (``load_edit_model``),
a builder of a tiny random-weight model, or a class. The table below maps each name to the
``"module:attr"`` where it lives, so ``import gpuflows.models`` never imports torch,
transformers or diffusers: :func:`get_model` imports the module the first time a name is asked
for (the shape of lm-evaluation-harness's ``lm_eval/models/__init__.py`` + ``api/registry.py``).

Example:
    ```python
    from gpuflows.models.registry import get_model

    load_edit_model = get_model("diffusers-edit")  # imports diffusers only now
    model = load_edit_model(path, device="cpu", dtype="float32")
    ```

Adding a backend:

1. Write it in its own module under ``gpuflows/models/`` (a file, or a subpackage such as
   ``gpuflows/models/llm/``), importing its heavy libraries inside functions or at that module's
   top, never from ``gpuflows/models/__init__.py``.
2. Add one line ``"<name>": "<module>:<attr>"`` to :data:`_BACKENDS` (kebab-case name, grouped
   with its kind). That line is what makes the name known without importing anything.
3. Add a test that ``get_model("<name>")`` returns it (``tests/models/test_registry.py``).

Code outside the package (a test, a plugin) registers at run time with :func:`register_model`,
as a decorator or with a ``"module:attr"`` string.
"""

from __future__ import annotations

import importlib
from typing import Any, TypeVar

from gpuflows.core.faults import InputError

T = TypeVar("T")

_BACKENDS: dict[str, Any] = {
    # image editing: a diffusers pipeline folder -> EditModel
    "diffusers-edit": "gpuflows.models.diffusers_edit:load_edit_model",
    # scoring: an image-text-to-text (VLM) folder -> RewardModel
    "vlm-reward": "gpuflows.models.vlm_reward:load_reward_model",
    # tiny random-weight models (synthetic, T1): build_x(dir, seed=0) -> the model folder
    "tiny-edit": "gpuflows.models.tiny:build_tiny_edit_pipeline",
    "tiny-reward": "gpuflows.models.tiny:build_tiny_reward_model",
    # language models: load_engine(LocalModelConfig, cache) -> LocalEngine and
    # EndpointClient(EndpointConfig, cache), both with generate(requests) -> results
    "causal-lm": "gpuflows.models.llm.load:load_engine",
    "endpoint": "gpuflows.models.llm.endpoint:EndpointClient",
    "tiny-causal-lm": "gpuflows.models.llm.load:build_tiny_qwen2",
    # vision-language: load_vlm_engine(LocalModelConfig, cache) -> VLMEngine, generate(requests
    # with images) -> results; the endpoint client sends images as OpenAI image_url parts
    "image-text-to-text": "gpuflows.models.llm.vlm_load:load_vlm_engine",
    # and later "reranker".
}


def model_names() -> list[str]:
    """The registered backend names, sorted."""
    return sorted(_BACKENDS)


def register_model(name: str, target: str | None = None) -> Any:
    """Register a backend under ``name``.

    Two forms: ``register_model("x", "pkg.mod:attr")`` adds a lazy entry (nothing imported now);
    ``@register_model("x")`` over a function or class registers that object. Registering the
    object a lazy entry already points at (the module decorating its own attr) is allowed.

    Raises:
        ValueError: ``name`` is blank, ``target`` is not ``"module:attr"``, or ``name`` is taken
            by another backend.
    """
    if not name or name != name.strip():
        raise ValueError(f"register_model: name {name!r} must be a non-blank name without spaces")
    if target is not None:
        _split(target)
        _add(name, target)
        return target

    def decorate(obj: T) -> T:
        _add(name, obj)
        return obj

    return decorate


def get_model(name: str, *, field: str = "backend") -> Any:
    """The backend registered as ``name``, importing its module now if needed.

    Args:
        name: a registered name (:func:`model_names`).
        field: the parameter the name came from, for the error message.

    Raises:
        InputError: ``name`` is not registered (the message lists the names that are).
        ImportError: the backend's module or a package it needs is not installed here (the
            message names it and the fix).
    """
    try:
        entry = _BACKENDS[name]
    except KeyError:
        raise InputError(
            f"{field}={name!r} is not a registered model backend: use one of {model_names()}, "
            "or register it (gpuflows.models.registry.register_model)"
        ) from None
    if not isinstance(entry, str):
        return entry
    module_name, attr = _split(entry)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if module_name == missing or module_name.startswith(missing + "."):
            raise ImportError(
                f"model backend {name!r} points at {entry!r}, whose module {missing!r} does not "
                "exist: fix the entry in gpuflows.models.registry or add the module"
            ) from exc
        package = missing.split(".")[0]
        raise ImportError(
            f"model backend {name!r} ({entry}) needs the package {package!r}, which is not "
            f"installed here: pip install {package}"
        ) from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ImportError(
            f"model backend {name!r} points at {entry!r}, but {module_name} has no {attr!r}: "
            "fix the entry in gpuflows.models.registry"
        ) from None
    _BACKENDS[name] = obj
    return obj


def _split(target: str) -> tuple[str, str]:
    module_name, sep, attr = target.partition(":")
    if not (sep and module_name and attr.isidentifier()):
        raise ValueError(f"register_model: target {target!r} is not 'package.module:attr'")
    return module_name, attr


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}"


def _add(name: str, obj: Any) -> None:
    old = _BACKENDS.get(name)
    if old is None or old is obj or old == obj:
        _BACKENDS[name] = obj
    elif isinstance(old, str) and not isinstance(obj, str) and old == _where(obj):
        _BACKENDS[name] = obj  # the module the lazy entry names, registering its own attr
    elif isinstance(obj, str) and not isinstance(old, str) and obj == _where(old):
        pass  # already imported: keep the object
    else:
        raise ValueError(
            f"register_model: {name!r} is already registered ({old!r}); pick another name"
        )
