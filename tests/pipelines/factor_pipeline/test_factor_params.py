"""The seed's presets as named parameter sets, and the CLI built from FactorParams."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gpuflows.pipelines.factor_pipeline.params import PRESETS, FactorParams, preset_params
from tasks.cli import ParamsError, parse_params

SEED = {  # seed 002's table: NPROC, FAILURE_BATCH, PARQUET_SAMPLE, NUM_GPUS, CONC, BATCH, DELAY
    "1-gpu": (1, 50, 4, 1, 5, 500, 0.1),
    "4-gpu": (4, 100, 8, 4, 20, 1000, 0.05),
    "8-gpu": (8, 100, 16, 8, 20, 1000, 0.05),
}
FIELDS = (
    "nproc_per_node",
    "failure_batch_size",
    "parquet_sample_size",
    "num_gpus",
    "concurrency",
    "batch_size",
    "request_delay",
)


@pytest.mark.parametrize("name", sorted(SEED))
def test_presets_are_the_seed_table(name):
    p = preset_params(name)
    assert tuple(getattr(p, f) for f in FIELDS) == SEED[name]


def test_eight_gpu_preset_runs_160_in_flight_on_eight_dask_workers():
    p = preset_params("8-gpu")
    assert p.qa_in_flight == 160
    assert p.task_runner.kind == "dask" and p.task_runner.n_workers == 8
    assert p.task_runner.gpus_per_task == 1


def test_cli_qa_step_options():
    argv = [
        "--step",
        "qa",
        "--input-path",
        "F.jsonl",
        "--endpoint-url",
        "http://h:8000/v1",
        "--served-model",
        "smollm2",
        "--out-dir",
        "D",
    ]
    p = parse_params(FactorParams, argv, presets=PRESETS)
    assert p.qa_backend == "endpoint" and p.endpoint_url == ["http://h:8000/v1"]
    p = parse_params(FactorParams, ["--preset", "4-gpu", "--concurrency", "8"], presets=PRESETS)
    assert p.concurrency == 8 and p.nproc_per_node == 4  # explicit options win
    with pytest.raises(ParamsError, match=r"--concurrency: must be at least 1 \(got 0\)"):
        parse_params(FactorParams, ["--concurrency", "0"], presets=PRESETS)


def test_consistency_errors_name_the_field():
    with pytest.raises(ValidationError, match="served_model: give the model name"):
        FactorParams(endpoint_url=["http://h:1/v1"])
    with pytest.raises(ValidationError, match="num_gpus: 2 endpoint URLs but num_gpus=1"):
        FactorParams(endpoint_url=["http://a:1/v1", "http://b:1/v1"], served_model="m")
    with pytest.raises(ValidationError, match="input_path: step='qa' alone needs --input-path"):
        FactorParams(step="qa")
