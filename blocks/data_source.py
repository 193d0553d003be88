"""Data source block: the declared provenance of a dataset, editable in the UI.

The fields are copied from the core record :class:`gpuflows.core.evidence.provenance.DataProvenance`
(annotations, defaults, constraints, descriptions): a result on data without a declared source is
at most T1 ("provenance not declared"), and data whose digest the project's generators registered
stays synthetic whatever this block says (the rules live in ``gpuflows.core.evidence``).
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from blocks._mirror import mirrored_fields_base, to_core
from gpuflows.core.evidence.provenance import DataProvenance

_DataSourceFields: Any = mirrored_fields_base(DataProvenance, "_DataSourceFields", __name__)


class DataSource(_DataSourceFields):
    """Where a dataset comes from, and who answers for it: what it is, its origin (study,
    instrument, URL or DOI), its version and the person responsible.

    Example:
        Load a stored source and pass its record to the evidence of a run:
        ```python
        from blocks import DataSource

        data_source_block = DataSource.load("BLOCK_NAME")
        provenance = data_source_block.to_record()
        ```
    """

    _block_type_name = "gpuflows Data Source"
    _block_type_slug = "gpuflows-data-source"
    _logo_url = "https://raw.githubusercontent.com/gpuflows/gpuflows/main/docs/img/data-source.png"
    _documentation_url = "https://github.com/gpuflows/gpuflows#blocks"

    @model_validator(mode="after")
    def _core_rules(self) -> DataSource:
        self.to_record()
        return self

    def to_record(self) -> DataProvenance:
        """The core :class:`~gpuflows.core.evidence.provenance.DataProvenance`."""
        return to_core(self, DataProvenance)
