"""Content digests: the identity of data, used for cache keys, dataset versions and reproduction.

A digest covers dtype and shape as well as bytes, so a float32 and a float64 array of the same
values, or a (2, 3) and a (3, 2) array, never collide.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=16)


def array_digest(arr: Any) -> str:
    """Digest of a NumPy array, torch tensor or CuPy array (moved to host if needed).

    Returns:
        ``"blake2b:<32 hex>"``.
    """
    import numpy as np

    if hasattr(arr, "detach"):  # torch
        t = arr.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if str(t.dtype) == "torch.bfloat16":  # numpy has no bfloat16: hash raw 16-bit words
            import torch

            a = t.contiguous().view(torch.int16).numpy()
            tag = "bfloat16"
        else:
            a = t.contiguous().numpy()
            tag = str(a.dtype)
    elif hasattr(arr, "get") and type(arr).__module__.startswith("cupy"):
        a = arr.get()
        tag = str(a.dtype)
    else:
        a = np.asarray(arr)
        tag = str(a.dtype)
    a = np.ascontiguousarray(a)
    h = _hasher()
    h.update(f"{tag}|{a.shape}|".encode())
    # raw bytes as uint8: memoryview.cast("B") rejects empty shapes and datetime64
    h.update(memoryview(a.reshape(-1).view(np.uint8)))
    return "blake2b:" + h.hexdigest()


def frame_digest(frame: Any) -> str:
    """Digest of a pandas DataFrame: column names, dtypes and values (index ignored)."""
    import pandas as pd

    h = _hasher()
    h.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "blake2b:" + h.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """Digest of a file's bytes, streamed in 1 MiB chunks."""
    h = _hasher()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return "blake2b:" + h.hexdigest()


def bytes_digest(data: bytes) -> str:
    """Digest of raw bytes."""
    h = _hasher()
    h.update(data)
    return "blake2b:" + h.hexdigest()


def value_digest(obj: Any) -> str:
    """Digest of a JSON-able value (canonical JSON: sorted keys), e.g. a result record."""
    import json

    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    return bytes_digest(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def is_array_like(obj: Any) -> bool:
    """True for NumPy arrays, torch tensors, CuPy arrays and DataFrames (things not to pickle into keys)."""
    mod = type(obj).__module__
    return (
        mod.startswith("numpy") and hasattr(obj, "shape") and getattr(obj, "ndim", 0) > 0
    ) or mod.startswith(("torch", "cupy", "pandas"))


def digest_any(obj: Any) -> str:
    """Digest of an array-like of any supported kind."""
    if type(obj).__module__.startswith("pandas"):
        import pandas as pd

        if isinstance(obj, pd.Series):
            obj = obj.to_frame()
        return frame_digest(obj)
    return array_digest(obj)
