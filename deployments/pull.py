"""The pull step of prefect.yaml: run a deployment's code from this checkout, on any host.

Prefect runs a deployment's pull steps in the flow-run process, inside the temporary folder a
process worker opens for it; the entrypoint (``flows/x.py:flow``) is then read relative to the
folder the steps leave it in. :func:`checkout_directory` picks that folder, first match wins:

1. ``$GPUFLOWS_ROOT`` in the flow run's environment (its worker's): a clone at another path on
   another host (``GPUFLOWS_ROOT=/srv/gpuflows prefect worker start --pool gpu-pool``);
2. ``directory``: what ``prefect deploy`` stored, ``{{ $GPUFLOWS_ROOT }}`` resolved at deploy time
   (``make deploy`` sets it to the clone's path); an unresolved placeholder or "" is skipped;
3. the checkout this module was imported from (the project is installed editable, ``pip
   install -e .``), so the stock sequence ``prefect deploy --all`` / ``prefect worker start`` /
   ``prefect deployment run`` works on this host with no project variable set.

A folder without ``flows/`` is skipped (it is not a gpuflows checkout), with the reason kept for
the error raised when nothing fits.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "GPUFLOWS_ROOT"
HERE = Path(__file__).resolve().parents[1]


def _candidates(directory: str | None) -> list[tuple[str, str]]:
    out = []
    env = os.environ.get(ROOT_ENV, "").strip()
    if env:
        out.append((f"${ROOT_ENV}", env))
    stored = (directory or "").strip()
    if stored and "{{" not in stored:
        out.append(("the deployment's directory", stored))
    out.append(("the installed checkout", str(HERE)))
    return out


def resolve_checkout(directory: str | None = None) -> Path:
    """The folder a flow run's code runs from (see the module docstring); raises if none fits."""
    tried = []
    for source, path in _candidates(directory):
        p = Path(path).expanduser()
        if (p / "flows").is_dir():
            return p.resolve()
        tried.append(f"{source} = {path} (no flows/ folder there)")
    raise FileNotFoundError(
        "no gpuflows checkout for this flow run: "
        + "; ".join(tried)
        + f". Clone the project on this host and start the worker with {ROOT_ENV}=<clone>."
    )


def checkout_directory(directory: str | None = None) -> dict[str, str]:
    """Prefect pull step: ``chdir`` into the checkout; returns ``{"directory": <path>}``."""
    root = resolve_checkout(directory)
    os.chdir(root)
    return {"directory": str(root)}
