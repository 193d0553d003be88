"""What a model is made of and how much memory it needs: modules, tensors, bytes.

A model object is a torch module, a diffusers pipeline (its ``.components``) or an adapter with a
``.pipeline`` / ``.model``. Its VRAM need is computed, never guessed: from an empty-weights build
(:func:`model_vram_need`, accelerate), from a pipeline's modules (:func:`pipeline_vram_need`) or
from a folder's weight files before anything loads (:func:`need_from_weights`), each times a
stated activation margin. Weight files and model fingerprints: :mod:`gpuflows.core.memory.weight_files`.
Used by :mod:`gpuflows.core.memory.residency` and the flows that size budgets. Units: bytes. Torch and accelerate are imported lazily; no Prefect.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpuflows.core.memory.budget import GIB, VramEstimate, estimate_model
from gpuflows.core.memory.weight_files import files_nbytes, weight_files


def modules_of(obj: Any) -> list[Any]:
    """The torch modules of a model object: itself, a diffusers pipeline's ``.components``
    (unet/transformer, vae, text encoders...), or the ``.pipeline`` / ``.model`` of an adapter."""
    import torch

    if isinstance(obj, torch.nn.Module):
        return [obj]
    for attr in ("pipeline", "model"):
        inner = getattr(obj, attr, None)
        if inner is not None:
            return modules_of(inner)
    comps = getattr(obj, "components", None)
    if isinstance(comps, dict):
        return [m for m in comps.values() if isinstance(m, torch.nn.Module)]
    raise TypeError(
        f"{type(obj).__name__} is not a torch module, a pipeline with .components, or an adapter "
        "with .pipeline/.model: register one of those"
    )


def tensors_of(obj: Any) -> list[Any]:
    """Parameters and buffers of every module, each shared tensor once."""
    seen: dict[int, Any] = {}
    for m in modules_of(obj):
        for t in (*m.parameters(), *m.buffers()):
            seen.setdefault(id(t), t)
    return list(seen.values())


def named_tensors_of(obj: Any) -> dict[str, Any]:
    """Parameters and buffers by a key stable across ``.to()`` ("<module index>.<name>"), each
    shared tensor once; read afresh each time (``.to()`` replaces buffer objects)."""
    out: dict[str, Any] = {}
    seen: set[int] = set()
    for i, m in enumerate(modules_of(obj)):
        for n, t in (*m.named_parameters(), *m.named_buffers()):
            if id(t) not in seen:
                seen.add(id(t))
                out[f"{i}.{n}"] = t
    return out


def nbytes_of(obj: Any) -> int:
    """Parameter + buffer bytes of a model object, as stored now (what a move copies)."""
    return sum(t.numel() * t.element_size() for t in tensors_of(obj))


def model_vram_need(
    build_empty: Callable[[], Any] | Any,
    dtype: str,
    *,
    activation_margin: float = 0.2,
    name: str = "model",
) -> VramEstimate:
    """VRAM need in bytes = weight bytes at ``dtype`` x (1 + ``activation_margin``).

    Args:
        build_empty: a zero-argument builder of the model (module or pipeline), called under
            ``accelerate.init_empty_weights`` so its parameters sit on the meta device and no
            weight memory is allocated; or an already built module / pipeline / adapter, whose
            real tensor sizes are read.
        dtype: the dtype the weights will be loaded in ("float16", "bf16", ...): floating tensors
            are priced at it, integer/bool buffers at their own size (``from_pretrained`` keeps them).
        activation_margin: fraction added for activations and workspace (0.2 = 20 %).
        name: what the estimate's ``basis`` calls the model.

    Example:
        >>> import torch
        >>> model_vram_need(lambda: torch.nn.Linear(1024, 1024), "float16").nbytes  # 1,049,600 x 2 x 1.2
        2519040
    """
    try:
        modules_of(build_empty)
        obj = build_empty
    except TypeError:
        if not callable(build_empty):
            raise
        from accelerate import init_empty_weights

        with init_empty_weights():
            obj = build_empty()
    from accelerate.utils import calculate_maximum_sizes

    ts = tensors_of(obj)
    n_float = sum(t.numel() for t in ts if t.is_floating_point())
    fixed = sum(t.numel() * t.element_size() for t in ts if not t.is_floating_point())
    est = estimate_model(n_float, dtype, activation_margin=activation_margin, name=name)
    sizes = [calculate_maximum_sizes(m)[1] for m in modules_of(obj)]
    big, where = max(sizes, key=lambda s: s[0]) if sizes else (0, [])
    basis = f"{est.basis}; largest layer {', '.join(where) or '-'} {big / 2**20:.1f} MiB as built"
    if fixed:
        basis += f"; + {fixed:,} B integer buffers +{activation_margin:.0%}"
    return VramEstimate(nbytes=est.nbytes + int(fixed * (1 + activation_margin)), basis=basis)


def pipeline_vram_need(
    pipeline: Callable[[], Any] | Any,
    dtype: str,
    *,
    activation_margin: float = 0.2,
    name: str = "pipeline",
) -> VramEstimate:
    """VRAM need in bytes of a diffusers-style pipeline: the sum over its ``nn.Module``
    components (unet/transformer, vae, text_encoder...), priced as :func:`model_vram_need`.
    ``pipeline`` is the pipeline object or a zero-argument builder of it."""
    comps = getattr(pipeline, "components", None)
    if isinstance(comps, dict):
        import torch

        parts = [k for k, v in comps.items() if isinstance(v, torch.nn.Module)]
        name = f"{name} ({' + '.join(parts)})"
    return model_vram_need(pipeline, dtype, activation_margin=activation_margin, name=name)


def need_from_weights(
    path: str | Path, dtype: str | None, *, activation_margin: float, name: str
) -> VramEstimate:
    """VRAM need in bytes = weight bytes (:func:`gpuflows.core.memory.weight_files.weights_nbytes`: safetensors
    headers or meta-loaded torch pickles) x (1 + activation margin)."""
    files = weight_files(path)
    n_params, nbytes = files_nbytes(files, dtype)
    kinds = sorted(
        {
            "safetensors headers" if f.suffix == ".safetensors" else "torch pickle shapes"
            for f in files
        }
    )
    return VramEstimate(
        nbytes=int(nbytes * (1 + activation_margin)),
        basis=f"{name}: {n_params:,} params, {nbytes / GIB:.3f} GiB weights "
        f"({dtype or 'stored dtypes'}) from {' + '.join(kinds)} +{activation_margin:.0%} activations",
    )
