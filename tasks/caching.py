"""The house cache policy: inputs (arrays by content digest) + task source + a kernel version.

* Prefect's default policy includes the run id, so nothing is reused across runs; ours does not.
* Hashing an array input by pickling costs ~3.4 ms/MB on every call, hits included; array-likes
  (NumPy, torch, CuPy, pandas) are replaced by their content digest (dtype and shape included).
* ``version`` is bumped when a kernel's numerics change without its source changing (a
  dependency's behaviour, a dtype policy), so stale results are not reused.
* Optionally (``serializable=True``) two workers computing the same key at once take a file lock,
  so one computes and the other reads its result; off by default because a killed holder's lock
  never expires.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prefect.cache_policies import TASK_SOURCE, CachePolicy
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
    policy = DigestedInputs(exclude=list(exclude)) + TASK_SOURCE + CodeVersion(version=version)
    if serializable:
        policy = policy.configure(
            isolation_level=IsolationLevel.SERIALIZABLE,
            lock_manager=FileSystemLockManager(lock_files_directory=lock_dir()),
        )
    return policy
