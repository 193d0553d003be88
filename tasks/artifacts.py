"""Artifact keys and reading artifacts back (tests, reproduction checks, the operations CLI).

The ``client.read_artifacts`` of Prefect 3.8.8 and 3.9.1 sends ``"limit": null, ...``, which a
server on fastapi >= 0.151 answers with HTTP 422 (prefect pins fastapi below that, but a team may
run its server on another environment): :func:`read_artifacts` posts the same filter without the null fields, so
it works against either.
"""

from __future__ import annotations

import re

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.objects import Artifact
from prefect.client.schemas.sorting import ArtifactSort

_KEY_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def validate_key(key: str) -> str:
    """An artifact key Prefect accepts and that keeps one history: lowercase letters, digits, dashes.

    Raises:
        ValueError: naming the key and the rule.
    """
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(
            f"artifact key {key!r} is invalid: use lowercase letters, digits and dashes, no leading, trailing or double dash "
            "(e.g. 'gpu-baseline-report')"
        )
    return key


def read_artifacts(key: str, *, limit: int = 50) -> list[Artifact]:
    """Every version of artifact ``key``, newest first."""
    body = {
        "artifacts": ArtifactFilter(key=ArtifactFilterKey(any_=[validate_key(key)])).model_dump(
            mode="json", exclude_unset=True
        ),
        "sort": ArtifactSort.CREATED_DESC.value,
        "limit": limit,
        "offset": 0,
    }
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/artifacts/filter", json=body)
    return Artifact.model_validate_list(response.json())
