"""Atomic, human-readable result files: JSON, Parquet, PNG bytes.

Every file is written to a temporary sibling and renamed into place (``os.replace``), so a crash
mid-write leaves either the old file or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PROJECT_RESULTS_ENV = "GPUFLOWS_RESULTS_DIR"


def results_root() -> Path:
    """Folder for everything gpuflows writes for users (``$GPUFLOWS_RESULTS_DIR`` or ``./results``)."""
    return Path(os.environ.get(PROJECT_RESULTS_ENV, "results")).resolve()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically; pydantic models are dumped in JSON mode."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default)
    return atomic_write_bytes(path, text.encode() + b"\n")


def atomic_write_parquet(path: str | os.PathLike[str], frame: Any) -> Path:
    """Write a pandas DataFrame as Parquet atomically."""
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return atomic_write_bytes(path, buf.getvalue())


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file written by :func:`atomic_write_json`."""
    return json.loads(Path(path).read_text())


def _json_default(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "tolist"):  # numpy scalars and arrays
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")
