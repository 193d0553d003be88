"""Model backends behind one registry by name, lazily imported, and model resolution.

Importing this package imports no torch, transformers or diffusers: backends load when asked for
(:func:`get_model`), their modules import the heavy libraries themselves.

Public surface:

* :mod:`gpuflows.models.registry` -- :func:`get_model`, :func:`register_model`,
  :func:`model_names` (how to add a backend: that module's docstring).
* :mod:`gpuflows.models.source` -- :class:`ModelSourceSpec`: where weights come from and the
  ``from_pretrained`` settings (the rules behind ``blocks.ModelSource``).
* :mod:`gpuflows.models.resolve` -- :func:`resolve_model` and :class:`ResolvedModel`: a
  ``"tiny"`` / ``"block:<name>"`` / folder parameter to a checked folder here.
* Backends: :mod:`~gpuflows.models.diffusers_edit` (``EditModel``, ``load_edit_model``),
  :mod:`~gpuflows.models.vlm_reward` (``RewardModel``, ``load_reward_model``),
  :mod:`~gpuflows.models.tiny` (random-weight builders, ``is_synthetic``).
"""

from gpuflows.models.registry import get_model, model_names, register_model
from gpuflows.models.resolve import TINY, ResolvedModel, resolve_model
from gpuflows.models.source import ModelSourceSpec

__all__ = [
    "TINY",
    "ModelSourceSpec",
    "ResolvedModel",
    "get_model",
    "model_names",
    "register_model",
    "resolve_model",
]
