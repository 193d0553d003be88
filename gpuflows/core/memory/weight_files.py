"""A model folder's weight files: which they are, how many bytes they load as, and their identity.

Weights are ``*.safetensors`` (sizes read from the header) or, where a folder has none, torch
pickles (``*.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``: shapes read through ``torch.load(mmap=True,
map_location="meta")``, so no weight is read). Trainer leftovers (optimizer, scheduler, RNG
state, training arguments) are not weights.

A folder's fingerprint covers the *content* of the weights that load and of its other files
(configs, tokenizers, code): a fine-tuned checkpoint with the same shapes is a different model,
and cached results keyed by the old one must not be reused. Large files are hashed once and memoised by (path, size, mtime, inode); a file in a Hugging Face cache
snapshot is a link to a blob named by its SHA-256, which is used as is (nothing read).
No Prefect; torch is imported only for pickled weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import struct
import time
from pathlib import Path

from gpuflows.core.evidence.digest import bytes_digest, file_digest, value_digest
from gpuflows.core.memory.budget import dtype_bytes

_ST_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
NOT_WEIGHTS = ("optimizer", "scheduler", "rng_state", "training_args", "scaler", "trainer_state")
WEIGHT_SUFFIXES = {".safetensors", *PICKLE_SUFFIXES, ".h5", ".msgpack", ".onnx", ".gguf", ".ot"}
"""Weights of any format: those that do not load (:func:`weight_files`) are not hashed."""
MEMO_ENV = "GPUFLOWS_CACHE_DIR"
MEMO_MIN_BYTES = 1 << 20
"""Files from this size up are memoised; smaller ones are cheaper to hash than to look up."""

log = logging.getLogger("gpuflows.core.memory.weight_files")


def weight_files(path: str | Path) -> list[Path]:
    """The weight files under ``path``: per folder, its safetensors, else its torch pickles;
    of those, the plain ones where variants (``*.fp16.*``, ``*.non_ema.*``) sit beside them.

    Raises:
        FileNotFoundError: there are none (naming the suffixes looked for).
    """
    root = Path(path)
    by_dir: dict[Path, list[Path]] = {}
    for f in sorted(root.rglob("*")):
        if _ignored(f, root) or not f.is_file():
            continue
        if f.suffix == ".safetensors" or _is_pickled_weights(f):
            by_dir.setdefault(f.parent, []).append(f)
    out: list[Path] = []
    for files in by_dir.values():
        files = [f for f in files if f.suffix == ".safetensors"] or files
        plain = [f for f in files if not _variant(f)]
        out += plain or files
    if not out:
        raise FileNotFoundError(
            f"no weights under {root}: looked for *.safetensors and torch pickles "
            f"({', '.join('*' + s for s in PICKLE_SUFFIXES)}); point the model path at the folder "
            "that holds them"
        )
    return out


def _variant(f: Path) -> bool:
    """``diffusion_pytorch_model.fp16.safetensors``, ``model.non_ema-00001-of-00002.bin``: a
    variant that loads only when asked for by name; the plain file beside it is what loads."""
    return "." in f.stem


def _is_pickled_weights(f: Path) -> bool:
    return f.suffix in PICKLE_SUFFIXES and not f.name.startswith(NOT_WEIGHTS)


def tensor_specs(f: Path) -> list[tuple[int, str]]:
    """(element count, dtype) of each tensor stored in one weight file, without reading weights.

    Dtypes are safetensors names ("F16", "BF16", "I64", ...) for both formats.
    """
    if f.suffix == ".safetensors":
        with open(f, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        return [
            (math.prod(t["shape"]), t["dtype"]) for k, t in header.items() if k != "__metadata__"
        ]
    import torch

    try:
        obj = torch.load(f, mmap=True, weights_only=True, map_location="meta")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a state dict"
        raise ValueError(
            f"{f} is not a loadable torch state dict ({type(exc).__name__}: {exc}); convert it "
            "to safetensors or remove it from the model folder"
        ) from None
    tensors = [t for t in _walk(obj) if isinstance(t, torch.Tensor)]
    return [(t.numel(), _ST_NAME.get(str(t.dtype).removeprefix("torch."), "F32")) for t in tensors]


_ST_NAME = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3",
    "float8_e5m2": "F8_E5M2",
}


def _walk(obj: object) -> list[object]:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _walk(v)]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _walk(v)]
    return [obj]


def weights_nbytes(path: str | Path, dtype: str | None = None) -> tuple[int, int]:
    """(parameters, bytes) of the weights under ``path`` (:func:`weight_files`), read from
    safetensors headers or meta-loaded pickles, never from the weights themselves.

    ``dtype`` (e.g. "float16") prices floating tensors at that dtype (what ``from_pretrained(...,
    dtype=...)`` loads); None keeps the stored dtypes.
    """
    return files_nbytes(weight_files(path), dtype)


def files_nbytes(files: list[Path], dtype: str | None = None) -> tuple[int, int]:
    """(parameters, bytes) of these weight files; see :func:`weights_nbytes`."""
    n_params = n_bytes = 0
    for f in files:
        for numel, st in tensor_specs(f):
            per = _ST_BYTES.get(st, 4)
            if dtype is not None and st.startswith(("F", "BF")):
                per = dtype_bytes(dtype)
            n_params += numel
            n_bytes += numel * per
    return n_params, n_bytes


def model_fingerprint(path: str | Path, *, memo_dir: str | Path | None = None) -> str:
    """Digest of a model folder's content by relative path: the bytes of the weights that load
    (:func:`weight_files`) and of every other file but weights in other formats or variants
    (TF, Flax, ONNX, ``.bin`` beside safetensors), hidden files, model cards and licences.

    Args:
        path: the model folder.
        memo_dir: where large files' digests are memoised (default ``$GPUFLOWS_CACHE_DIR``, else
            ``~/.cache/gpuflows``); a changed size, mtime or inode re-hashes the file.
    """
    root = Path(path)
    loads = set(weight_files(root))
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not _ignored(p, root) and (p in loads or p.suffix not in WEIGHT_SUFFIXES)
    )
    memo = _Memo(Path(memo_dir) if memo_dir else _default_memo_dir())
    parts = {str(f.relative_to(root)): memo.digest(f) for f in files}
    memo.save()
    return value_digest(parts)


DOC_SUFFIXES = (".md", ".lock", ".metadata")


def _ignored(f: Path, root: Path) -> bool:
    """Hidden files (``.cache/``, ``.gitattributes``), model cards and licences: they do not
    change what loads, so editing them must not invalidate every cached result."""
    hidden = any(part.startswith(".") for part in f.relative_to(root).parts)
    return hidden or f.suffix.lower() in DOC_SUFFIXES or f.name.upper().startswith("LICENSE")


def _default_memo_dir() -> Path:
    env = os.environ.get(MEMO_ENV)
    return Path(env) if env else Path.home() / ".cache" / "gpuflows"


class _Memo:
    """Digests of large files keyed by (resolved path, size, mtime_ns, inode), one JSON file."""

    def __init__(self, root: Path) -> None:
        self.path = root / "file-digests.json"
        self.dirty = False
        try:
            self.known: dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.known = {}

    def digest(self, f: Path) -> str:
        blob = _hf_blob_sha256(f)
        if blob:
            return blob
        st = f.stat()
        if st.st_size < MEMO_MIN_BYTES:
            return bytes_digest(f.read_bytes())
        key = f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
        if key not in self.known:
            t0 = time.perf_counter()
            self.known[key] = file_digest(f)
            self.dirty = True
            if st.st_size >= 1 << 30:
                log.info(
                    "hashed %s (%.1f GB) in %.0f s to identify the model; memoised in %s",
                    f,
                    st.st_size / 1e9,
                    time.perf_counter() - t0,
                    self.path,
                )
        return self.known[key]

    def save(self) -> None:
        """Write atomically; a failure only costs a re-hash next time."""
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.known))
            os.replace(tmp, self.path)
        except OSError:
            pass


def _hf_blob_sha256(f: Path) -> str | None:
    """A Hugging Face cache snapshot file links to ``blobs/<sha256>`` (64 hex: an LFS file's
    content hash); smaller files' blobs are named by git SHA-1, also content-derived."""
    if not f.is_symlink():
        return None
    target = f.resolve()
    name = target.name
    if target.parent.name == "blobs" and len(name) in (40, 64) and set(name) <= _HEX:
        return f"hf-blob:{name}"
    return None


_HEX = set("0123456789abcdef")
