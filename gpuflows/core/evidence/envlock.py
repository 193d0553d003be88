"""The environment lock: everything needed to say how a result was produced, as one record.

Seed (applied to Python, NumPy, torch and CuPy), real git commit and dirty flag, dataset digest
and version, package versions, device, parameters. A lock with a missing piece is *incomplete*,
and an incomplete lock caps a result's Trust Tier at T1.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import importlib.util
import os
import platform
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from gpuflows.core.hardware.devices import DeviceChoice

DEFAULT_PACKAGES = (
    "gpuflows",
    "prefect",
    "torch",
    "numpy",
    "pandas",
    "pyarrow",
    "transformers",
    "accelerate",
    "cupy-cuda12x",
    "nvidia-ml-py",
)


class DatasetRef(BaseModel):
    """Identity of the data a result was computed from.

    A dataset of ours (a generator's output) has a name and a release version; data a user gives
    is named by its own file or folder and has no version (``""``): its digest says which content
    it is (:func:`user_data_ref`). Never label user data with our benchmark's name or version.
    """

    name: str
    version: str = Field(
        description="Release of a named dataset of ours (e.g. '1.0.0'); '' for user data, "
        "which its name and digest identify."
    )
    digest: str = Field(
        description="Content digest of the data actually read (gpuflows.core.evidence.digest)."
    )
    synthetic: bool = Field(description="Generated or simulated data (caps the Trust Tier at T1).")
    description: str = ""

    def label(self) -> str:
        """``synthetic-gaze v1.0.0`` for a released dataset, the name alone for user data.

        Example:
            >>> DatasetRef(name="gaze.csv", version="", digest="blake2b:ab", synthetic=False).label()
            'gaze.csv'
        """
        return f"{self.name} v{self.version}" if self.version else self.name


def user_data_ref(
    path: str | os.PathLike[str],
    digest: str,
    *,
    synthetic: bool = False,
    description: str = "",
) -> DatasetRef:
    """The identity of data a user gave: its own file or folder name, its content digest, no
    version (a user's file is not a release of ours); ``description`` defaults to the path.

    Example:
        >>> ref = user_data_ref("/data/study/gaze.csv", "blake2b:0123")
        >>> ref.name, ref.version, ref.description
        ('gaze.csv', '', '/data/study/gaze.csv')
    """
    p = Path(path)
    return DatasetRef(
        name=p.name or str(p),
        version="",
        digest=digest,
        synthetic=synthetic,
        description=description or str(p),
    )


class GitInfo(BaseModel):
    commit: str | None = None
    dirty: bool | None = None
    error: str | None = None


class EnvironmentLock(BaseModel):
    """One typed record embedded in every report."""

    seed: int | None
    seeded: list[str] = Field(
        default_factory=list, description="Libraries the seed was applied to."
    )
    git: GitInfo
    dataset: DatasetRef | None
    packages: dict[str, str | None]
    device: DeviceChoice | None
    python: str = Field(default_factory=lambda: sys.version.split()[0])
    platform: str = Field(default_factory=platform.platform)
    hostname: str = Field(default_factory=socket.gethostname)
    cuda: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    def missing(self) -> list[str]:
        """Pieces absent from the lock (empty list = complete)."""
        out = []
        if self.seed is None:
            out.append("seed")
        if not self.git.commit:
            out.append(f"git commit ({self.git.error or 'unknown'})")
        if self.dataset is None or not self.dataset.digest:
            out.append("dataset digest")
        if self.device is None:
            out.append("device")
        for required in ("prefect", "torch", "numpy"):
            if not self.packages.get(required):
                out.append(f"package version: {required}")
        return out


def seed_everything(seed: int) -> list[str]:
    """Seed Python, NumPy, torch (all devices) and CuPy when importable; returns what was seeded."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: use a non-negative integer")
    done = ["python"]
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % (2**32))
    done.append("numpy")
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)  # also seeds every CUDA device
        done.append("torch")
    if importlib.util.find_spec("cupy") is not None:
        try:
            import cupy

            cupy.random.seed(seed)
            done.append("cupy")
        except Exception:  # noqa: BLE001 - CuPy installed but no usable CUDA runtime
            pass
    return done


def git_info(
    path: str | os.PathLike[str] | None = None, *, exclude: tuple[str, ...] = ()
) -> GitInfo:
    """Real commit of the code that runs (``git rev-parse HEAD``) and whether the tree differs from it
    (changed or new files; ignored ones such as results/ do not count, nor do the ``exclude``
    paths: a bench's own result files are its output, not the code it measured).

    ``$GPUFLOWS_GIT_COMMIT`` is used where the code runs from an export without ``.git`` (a
    worker's pulled copy), and is marked as such.
    """
    cwd = Path(path) if path else Path(__file__).resolve().parents[3]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", *(f":(exclude){p}" for p in exclude)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return GitInfo(commit=commit, dirty=bool(status.strip()))
    except (OSError, subprocess.SubprocessError) as exc:
        env_commit = os.environ.get("GPUFLOWS_GIT_COMMIT")
        if env_commit:
            return GitInfo(
                commit=env_commit, dirty=None, error="from GPUFLOWS_GIT_COMMIT, no .git here"
            )
        return GitInfo(error=f"not a git checkout ({type(exc).__name__})")


def package_versions(names: tuple[str, ...] = DEFAULT_PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions (None when not installed)."""
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = importlib.metadata.version(n)
        except importlib.metadata.PackageNotFoundError:
            out[n] = None
    return out


def cuda_info() -> dict[str, Any]:
    """CUDA/cuDNN versions torch was built with (no CUDA initialisation)."""
    if importlib.util.find_spec("torch") is None:
        return {}
    import torch

    return {
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }


def build_lock(
    *,
    seed: int | None,
    dataset: DatasetRef | None,
    device: DeviceChoice | None,
    parameters: dict[str, Any] | None = None,
    apply_seed: bool = True,
) -> EnvironmentLock:
    """Apply the seed and capture the environment in one record."""
    seeded = seed_everything(seed) if (apply_seed and seed is not None) else []
    return EnvironmentLock(
        seed=seed,
        seeded=seeded,
        git=git_info(),
        dataset=dataset,
        packages=package_versions(),
        device=device,
        cuda=cuda_info(),
        parameters=dict(parameters or {}),
    )


def render_lock_markdown(lock: EnvironmentLock) -> str:
    """A compact markdown table of the lock for reports."""
    dev = lock.device
    ds = lock.dataset
    rows = [
        ("seed", f"{lock.seed} (applied to {', '.join(lock.seeded) or 'nothing'})"),
        (
            "git commit",
            f"{lock.git.commit or 'UNKNOWN'}{' (dirty tree)' if lock.git.dirty else ''}",
        ),
        (
            "dataset",
            f"{ds.label()} {ds.digest}{' (synthetic)' if ds.synthetic else ''}" if ds else "none",
        ),
        (
            "device",
            f"{dev.device} {dev.name}{' (fallback: ' + dev.reason + ')' if dev.fallback else ''}"
            if dev
            else "none",
        ),
        ("packages", ", ".join(f"{k} {v}" for k, v in lock.packages.items() if v)),
        ("python / host", f"{lock.python} / {lock.hostname}"),
        ("created", lock.created_at),
    ]
    missing = lock.missing()
    body = "| item | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    return body + (f"\n\nIncomplete lock, missing: {', '.join(missing)}" if missing else "")
