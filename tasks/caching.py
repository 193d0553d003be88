"""The house cache policy: inputs (arrays by content digest) + task source + the source of the
code the task calls + a kernel version.

* Prefect's default policy includes the run id, so nothing is reused across runs; ours does not.
* The task's own source is not the code that produced the value: the key also covers a digest
  of every ``.py`` file of ``gpuflows.core`` and of each ``gpuflows.pipelines.<name>`` (and
  ``gpuflows.models``) package the task's module uses (:class:`PackageSource`, computed once per
  process). A committed change to, say, ``gpuflows/pipelines/rqa_sweep/measures.py`` recomputes;
  an unchanged tree reuses everything.
* A cached result file that cannot be read back (truncated, corrupt) is recomputed, as Prefect
  does, but *with* a warning naming the file, which is moved aside to ``<file>.corrupt``.
* Hashing an array input by pickling costs ~3.4 ms/MB on every call, hits included; array-likes
  (NumPy, torch, CuPy, pandas) are replaced by their content digest (dtype and shape included).
* ``version`` is bumped when a kernel's numerics change without its source changing (a
  dependency's behaviour, a dtype policy), so stale results are not reused.
* Optionally (``serializable=True``) two workers computing the same key at once take a file lock,
  so one computes and the other reads its result; off by default because a killed holder's lock
  never expires.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prefect.cache_policies import TASK_SOURCE, CachePolicy, CompoundCachePolicy
from prefect.locking.filesystem import FileSystemLockManager
from prefect.transactions import IsolationLevel
from prefect.utilities.hashing import hash_objects

from gpuflows.core.evidence.digest import digest_any, is_array_like
from gpuflows.core.store.io import results_root

#: Bump when shared numerics change in a way task source does not show.
KERNEL_VERSION = "2026.11.1"


def _digested(value: Any) -> Any:
    if is_array_like(value):
        return ("content-digest", digest_any(value))
    if isinstance(value, list | tuple):
        return type(value)(_digested(v) for v in value)
    if isinstance(value, dict):
        return {k: _digested(v) for k, v in value.items()}
    return value


@dataclass
class DigestedInputs(CachePolicy):
    """Like Prefect's ``INPUTS`` but arrays count by content digest, not by pickled bytes.

    Deliberately not a subclass of Prefect's ``Inputs``: a compound policy merges every
    ``Inputs`` it holds into a plain ``Inputs``, which would drop the digesting.
    """

    exclude: list[str] = field(default_factory=list)

    def __sub__(self, other: str) -> DigestedInputs:
        return replace(self, exclude=[*self.exclude, other])

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        kept = {k: _digested(v) for k, v in (inputs or {}).items() if k not in (self.exclude or [])}
        if not kept:
            return None
        return hash_objects(kept, raise_on_failure=True)


@dataclass
class CodeVersion(CachePolicy):
    """A constant in the key: changing it invalidates every cached result of the policy.

    Build it with a keyword (``CodeVersion(version="2")``): the first positional field of a
    Prefect cache policy is its key storage.
    """

    version: str = KERNEL_VERSION

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        return hash_objects(("gpuflows-kernel-version", self.version))


log = logging.getLogger("gpuflows.cache")

CORE_PACKAGE = "gpuflows.core"


@functools.cache
def source_digest(package: str) -> str:
    """Digest of the source of ``package``: every ``.py`` file under it, by relative path and
    bytes (computed once per process; a running process does not see later edits anyway)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not an importable package")
    h = hashlib.blake2b(digest_size=16)
    for root in sorted(spec.submodule_search_locations):
        base = Path(root)
        for f in sorted(base.rglob("*.py")):
            h.update(str(f.relative_to(base)).encode() + b"\0" + f.read_bytes() + b"\0")
    return "blake2b:" + h.hexdigest()


def _package_of(name: str) -> str | None:
    parts = name.split(".")
    if parts[:2] == ["gpuflows", "pipelines"] and len(parts) >= 3:
        return ".".join(parts[:3])
    if parts[:2] == ["gpuflows", "models"]:
        return "gpuflows.models"
    return None


def task_packages(fn: Any) -> tuple[str, ...]:
    """The packages whose source a task's value depends on: ``gpuflows.core`` plus every
    pipeline package (and ``gpuflows.models``) the task's module imports from."""
    found = {CORE_PACKAGE}
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    for value in vars(module).values() if module else ():
        name = value.__name__ if isinstance(value, type(sys)) else getattr(value, "__module__", "")
        if isinstance(name, str) and (pkg := _package_of(name)):
            found.add(pkg)
    return tuple(sorted(found))


@dataclass
class PackageSource(CachePolicy):
    """The source digests of the packages the task calls (:func:`task_packages`, or
    ``packages`` when given) in the key: changing compute code invalidates its results."""

    packages: tuple[str, ...] = ()

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        fn = getattr(getattr(task_ctx, "task", None), "fn", None)
        pkgs = self.packages or task_packages(fn)
        return hash_objects(("gpuflows-source", [(p, source_digest(p)) for p in sorted(pkgs)]))


def _warn_if_corrupt(task_ctx: Any, key: str) -> None:
    """Prefect treats an unreadable cached result as absent (silently); say so, move it aside."""
    store = getattr(task_ctx, "result_store", None)
    storage = getattr(store, "result_storage", None)
    resolve = getattr(storage, "_resolve_path", None)  # LocalFileSystem: basepath / key
    if resolve is None or getattr(store, "metadata_storage", None) is not None:
        return
    try:
        path = Path(resolve(key))
    except (OSError, ValueError):
        return
    if not path.is_file():
        return
    from prefect.results import ResultRecord

    try:
        ResultRecord.deserialize(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - any read failure means the cache entry is unusable
        aside = path.with_name(path.name + ".corrupt")
        path.replace(aside)
        msg = "cached result %s is corrupt (%s: %s): recomputing; the bad file is kept as %s"
        args = (path, type(exc).__name__, str(exc).splitlines()[0][:160], aside)
        log.warning(msg, *args)
        try:
            from prefect.logging import get_run_logger

            get_run_logger().warning(msg, *args)
        except Exception:  # noqa: BLE001 - no run context: the module logger already said it
            pass


@dataclass
class HouseCachePolicy(CompoundCachePolicy):
    """The compound house key, plus a warning when the cached result it points at is corrupt."""

    def compute_key(
        self, task_ctx: Any, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        key = super().compute_key(task_ctx, inputs, flow_parameters, **kwargs)
        if key:
            _warn_if_corrupt(task_ctx, key)
        return key

    def __sub__(self, other: str) -> HouseCachePolicy:
        return replace(self, policies=[p - other for p in self.policies])


def lock_dir() -> Path:
    """Folder of the cache-key file locks (beside the project results)."""
    return results_root() / ".locks"


def house_cache_policy(
    *, version: str = KERNEL_VERSION, exclude: tuple[str, ...] = (), serializable: bool = False
) -> CachePolicy:
    """The policy every gpuflows task uses unless it has a reason not to.

    Args:
        version: kernel/version constant in the key.
        exclude: input names left out of the key (e.g. a progress callback, a client).
        serializable: lock each key so concurrent identical tasks compute once. Off by default:
            Prefect's file locks never expire, so a SIGKILLed holder would leave a lock that
            blocks the resumed run forever (measured: the re-run hung). Turn it on only where
            duplicated work costs more than a manual lock clean-up.

    Example:
        >>> @task(cache_policy=house_cache_policy(exclude=("logger",)))
        ... def rqa_tile(series: np.ndarray, m: int, logger=None): ...
    """
    policy = HouseCachePolicy(
        policies=[
            DigestedInputs(exclude=list(exclude)),
            TASK_SOURCE,
            PackageSource(),
            CodeVersion(version=version),
        ]
    )
    if serializable:
        policy = policy.configure(
            isolation_level=IsolationLevel.SERIALIZABLE,
            lock_manager=FileSystemLockManager(lock_files_directory=lock_dir()),
        )
    return policy
