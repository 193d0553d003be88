"""Blocks whose fields mirror a core pydantic model, so the two cannot drift apart."""

from __future__ import annotations

import abc
import copy
from typing import Any

from prefect.blocks.core import Block
from pydantic import BaseModel, create_model


def mirrored_fields_base(model: type[BaseModel], name: str, module: str) -> Any:
    """An abstract Block base carrying ``model``'s fields (annotations, defaults, constraints,
    descriptions). Abstract (ABC in its bases), so Prefect neither registers it nor dispatches
    to it; the concrete block subclasses it."""
    return create_model(
        name,
        __base__=(Block, abc.ABC),
        __module__=module,
        **{n: (f.annotation, copy.deepcopy(f)) for n, f in model.model_fields.items()},
    )


def to_core(block: Any, model: type[BaseModel]) -> Any:
    """The core model built from a mirroring block's values (validated by the core rules)."""
    return model.model_validate({n: getattr(block, n) for n in model.model_fields})
