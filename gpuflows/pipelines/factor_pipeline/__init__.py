"""factor-pipeline (seed 002): probing factors with a VLM, failure-key sampling, QA generation.

Prefect-free; the tasks are in :mod:`tasks.factor`, the flow in :mod:`flows.factor_pipeline`.

* :mod:`.params` -- :class:`FactorParams` and the seed's presets (smoke / 1-gpu / 4-gpu / 8-gpu);
* :mod:`.schema` / :mod:`.generate` -- step 1's Parquet shards, checked; a generated set;
* :mod:`.probing` -- step 1: predict -> complete template -> verify, per shard group;
* :mod:`.sampling` -- step 2: streaming JSON/JSONL -> JSONL, seeded sample, flat memory;
* :mod:`.qa` / :mod:`.outcomes` -- step 3: async QA generation, every id exactly once;
* :mod:`.evidence` / :mod:`.report` -- the Trust Tier's evidence and the summary.
"""

from gpuflows.core.faults import InputError
from gpuflows.pipelines.factor_pipeline.evidence import assess_factor_run
from gpuflows.pipelines.factor_pipeline.generate import generate_shards, shard_set_digest
from gpuflows.pipelines.factor_pipeline.outcomes import OutcomeStore, check_exactly_once
from gpuflows.pipelines.factor_pipeline.params import PRESETS, FactorParams, preset_params
from gpuflows.pipelines.factor_pipeline.probing import (
    check_vlm,
    error_kinds,
    probe_group,
    shard_groups,
    write_manifest,
)
from gpuflows.pipelines.factor_pipeline.qa import (
    LocalBackend,
    QAStats,
    preflight,
    qa_step,
    scan_input,
)
from gpuflows.pipelines.factor_pipeline.report import build_body
from gpuflows.pipelines.factor_pipeline.sampling import input_files as sampling_inputs
from gpuflows.pipelines.factor_pipeline.sampling import sample_failures
from gpuflows.pipelines.factor_pipeline.schema import ShardInfo, list_shards, validate_shards

__all__ = [
    "PRESETS",
    "FactorParams",
    "InputError",
    "LocalBackend",
    "OutcomeStore",
    "QAStats",
    "ShardInfo",
    "assess_factor_run",
    "build_body",
    "check_exactly_once",
    "check_vlm",
    "error_kinds",
    "generate_shards",
    "list_shards",
    "preflight",
    "preset_params",
    "probe_group",
    "qa_step",
    "sample_failures",
    "sampling_inputs",
    "scan_input",
    "shard_groups",
    "shard_set_digest",
    "validate_shards",
    "write_manifest",
]
