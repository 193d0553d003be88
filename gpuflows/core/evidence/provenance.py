"""Where data comes from: the declared provenance record, and the register of generated data.

What "real data" means, stated once (and enforced by ``trust.check_real_data``):

* the data has a declared :class:`DataProvenance` (what it is, where it came from, its version,
  who is responsible for it) — a file without one is at most T1, "provenance not declared";
* its content is not the project's own generated data: every generator calls
  :func:`register_generated` with the digests of what it produced (the file digest and/or the
  digest of its canonical table), and data whose digest is registered is synthetic whatever its
  file name, flag or manifest says.

The register is one small JSON file per digest under ``results_root()/provenance/generated/``
(written atomically, so concurrent generators never lose an entry), plus an in-process set for
data generated in this process. Limits: data generated with another results folder, or changed
by a single value after generation, is not recognised by digest; the provenance record is then
the remaining safeguard (a person declared where the data came from and answers for it).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from gpuflows.core.store.io import atomic_write_json, read_json, results_root

#: Kinds of data a provenance record may declare. ``operands`` is data whose content does not
#: matter for what is measured (seeded benchmark operands): it needs no collection record.
DataKind = Literal["collected", "public-dataset", "operands"]

_REGISTERED: dict[str, str] = {}


class DataProvenance(BaseModel):
    """Declared provenance of a dataset (a ``DataSource`` block mirrors it).

    Example:
        >>> DataProvenance(name="memory-clinic-gaze", kind="collected", origin="clinic EyeLink 1000",
        ...                version="2024-05", responsible="j.doe@lab.example")
    """

    name: str = Field(description="What the data is, e.g. 'memory-clinic-gaze'.")
    kind: DataKind = Field(
        default="collected",
        description="'collected' (recorded by a person or device), 'public-dataset' (a named "
        "release), 'operands' (benchmark inputs whose content is not what is measured).",
    )
    origin: str = Field(description="Where it came from: study, instrument, URL or DOI.")
    version: str = Field(description="Release, collection date or export version.")
    responsible: str = Field(description="Who answers for it (name or e-mail).")
    description: str = ""

    @field_validator("name", "origin", "version", "responsible")
    @classmethod
    def _non_empty(cls, v: str, info) -> str:  # noqa: ANN001 - pydantic's ValidationInfo
        v = v.strip()
        if not v:
            raise ValueError(f"{info.field_name} must be non-empty: say it, the record is a claim")
        return v


def registry_dir(root: Path | None = None) -> Path:
    """Folder of the generated-data register (``results_root()/provenance/generated``)."""
    return (root or results_root()) / "provenance" / "generated"


def _file_for(digest: str, root: Path | None) -> Path:
    algo, _, hexpart = digest.partition(":")
    if not hexpart or not hexpart.isalnum():
        raise ValueError(f"digest={digest!r}: expected '<algorithm>:<hex>'")
    return registry_dir(root) / f"{algo}-{hexpart}.json"


def register_generated(
    digests: list[str] | tuple[str, ...] | str, generator: str, *, root: Path | None = None
) -> None:
    """Record that ``generator`` produced data with these digests (file or canonical table)."""
    for d in [digests] if isinstance(digests, str) else list(digests):
        if not d:
            continue
        _REGISTERED[d] = generator
        path = _file_for(d, root)
        if not path.exists():
            atomic_write_json(
                path,
                {"digest": d, "generator": generator, "at": dt.datetime.now(dt.UTC).isoformat()},
            )


def generated_by(digest: str | None, *, root: Path | None = None) -> str | None:
    """The generator that registered ``digest``, or None when it is not known generated data."""
    if not digest:
        return None
    if digest in _REGISTERED:
        return _REGISTERED[digest]
    try:
        path = _file_for(digest, root)
    except ValueError:
        return None
    if not path.is_file():
        return None
    try:
        return str(read_json(path).get("generator") or "unknown generator")
    except (OSError, ValueError, AttributeError):
        return "unknown generator (register entry unreadable)"


def provenance_path(data_path: str | Path) -> Path:
    """Sidecar file that declares a data file's provenance: ``<file>.provenance.json``."""
    p = Path(data_path)
    return p.with_name(p.name + ".provenance.json")


def read_provenance(data_path: str | Path) -> DataProvenance | None:
    """The provenance declared beside ``data_path``, or None when there is none.

    Raises:
        ValueError: the sidecar exists but is not a valid record (naming the field).
    """
    side = provenance_path(data_path)
    if not side.is_file():
        return None
    try:
        return DataProvenance.model_validate(read_json(side))
    except ValueError as exc:
        raise ValueError(f"{side}: not a valid provenance record: {exc}") from None
