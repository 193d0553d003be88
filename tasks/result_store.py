"""One setting decides where results and the Prefect cache live: ``GPUFLOWS_RESULTS_DIR``.

Prefect keeps task results (the cache a resumed or retried run reads) under
``PREFECT_RESULTS_LOCAL_STORAGE_PATH``; gpuflows keeps its files under ``results_root()``
(``$GPUFLOWS_RESULTS_DIR`` or ``./results``). Set apart, a ``prefect flow-run retry`` started
with only one of them the same as the original run found no cache and redid everything. Each flow
passes ``result_storage=prefect_results_dir()`` to ``@flow``: its tasks inherit it, so the cache
is always ``results_root()/prefect`` (prefect.toml's ``results/prefect`` when nothing is set) and
``PREFECT_RESULTS_LOCAL_STORAGE_PATH`` no longer matters to a gpuflows flow.
"""

from __future__ import annotations

from pathlib import Path

from gpuflows.core.store.io import results_root

PREFECT_SUBDIR = "prefect"


def prefect_results_dir() -> Path:
    """``results_root()/prefect``, absolute: where every gpuflows flow keeps Prefect's results."""
    return (results_root() / PREFECT_SUBDIR).resolve()
