"""A flow's ``*_model`` parameter resolved to a model folder on this host: the Prefect part.

The rules (``"tiny"``, ``"block:<name>"``, a folder; weight checks) live in
:mod:`gpuflows.models.resolve`; this module only loads the saved :class:`blocks.ModelSource`
that a ``"block:<name>"`` spec names and hands it to the core as a plain
:class:`~gpuflows.models.source.ModelSourceSpec`.
"""

from __future__ import annotations

from gpuflows.core.faults import InputError
from gpuflows.models import resolve
from gpuflows.models.resolve import TINY, ResolvedModel, Role
from gpuflows.models.source import ModelSourceSpec

__all__ = ["TINY", "ResolvedModel", "Role", "load_model_source", "resolve_model"]


def load_model_source(name: str, field: str) -> ModelSourceSpec:
    """The ModelSource block saved as ``name``, as the core spec.

    Raises:
        InputError: naming ``field``, when no such block is saved.
    """
    from blocks import ModelSource

    try:
        src = ModelSource.load(name)
    except ValueError as exc:
        raise InputError(f"{field}='block:{name}': no such ModelSource block ({exc})") from None
    return src.to_spec()


def resolve_model(spec: str, role: Role, dtype: str) -> ResolvedModel:
    """Resolve a flow's ``<role>_model`` parameter to a folder here whose weights may be loaded
    as asked (:func:`gpuflows.models.resolve.resolve_model`, with ModelSource blocks loaded).

    Args:
        spec: the parameter's value.
        role: ``"edit"`` (a diffusers pipeline) or ``"reward"`` (an image-text-to-text model).
        dtype: the flow's dtype, used unless a block names its own.

    Raises:
        InputError: naming ``<role>_model`` and the fix.
    """
    return resolve.resolve_model(spec, role, dtype, load_source=load_model_source)
