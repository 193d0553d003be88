"""Parameters of ``factor-pipeline`` and the seed's presets (seed 002's table).

The seed runs three scripts with shell variables; here they are one pydantic model, so the CLI
(``tasks.cli``), the Prefect UI form and the deployments share one set of defaults and checks.

==============  ==============  ==================  ===================  ========
preset          NPROC_PER_NODE  FAILURE_BATCH_SIZE  PARQUET_SAMPLE_SIZE  NUM_GPUS
==============  ==============  ==================  ===================  ========
``1-gpu``       1               50                  4                    1
``4-gpu``       4               100                 8                    4
``8-gpu``       8               100                 16                   8
``smoke``       1               8                   2                    1
==============  ==============  ==================  ===================  ========

and CONCURRENCY / BATCH_SIZE / REQUEST_DELAY: 5 / 500 / 0.1 (1-gpu), 20 / 1000 / 0.05 (4-gpu and
8-gpu: 20 x 8 = 160 requests in flight), 4 / 16 / 0 (smoke, this CPU; it also
samples 6 failures for step 3, 32 new tokens each).

Step 1's VLM runs here (``probe_backend='local'``, ``vlm``) or behind OpenAI-compatible servers
(``probe_backend='endpoint'``, ``probe_endpoint_url`` one per GPU server, ``probe_served_model``,
``probe_concurrency`` in flight per server, default FAILURE_BATCH_SIZE: the seed sized step 1's
per-GPU concurrency from its batch size); step 3's backend is chosen apart (``qa_backend``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gpuflows.core.hardware.runner_spec import TaskRunnerSpec

Step = Literal["all", "probe", "sample", "qa"]


class FactorParams(BaseModel):
    """Everything a factor-pipeline run reads. Defaults: the smoke sizes, generated data, no sample."""

    model_config = ConfigDict(extra="forbid")

    step: Step = Field("all", description="Run all three steps, or one alone.")
    input_path: str | None = Field(
        None,
        description="probe: a folder of Parquet shards; sample: step-1 output (folder, JSONL or "
        "JSON array); qa: a JSONL file with a unique 'id' per line. Empty: generated shards.",
    )
    out_dir: str | None = Field(None, description="Where outputs go; empty: the run's folder.")
    # step 1 (seed: NPROC_PER_NODE, FAILURE_BATCH_SIZE, PARQUET_SAMPLE_SIZE)
    nproc_per_node: int = Field(1, ge=1, le=64, description="Process workers (one per GPU).")
    failure_batch_size: int = Field(8, ge=1, description="Images per VLM batch per worker.")
    parquet_sample_size: int = Field(2, ge=1, description="Parquet shards read in parallel.")
    vlm: str = Field(
        "tiny-vlm",
        description="'tiny-vlm' (random-weight LLaVA, synthetic) or an image-text-to-text folder.",
    )
    vlm_max_new_tokens: int = Field(8, ge=1, le=512)
    probe_backend: Literal["local", "endpoint"] = Field(
        "local",
        description="Step 1's VLM: 'local' (vlm loaded once per worker) or 'endpoint' "
        "(OpenAI-compatible server(s) serving a VLM; images sent as data URLs).",
    )
    probe_endpoint_url: list[str] | None = Field(
        None, description="Step 1: base URL(s) up to /v1 of the VLM server(s), one per GPU."
    )
    probe_served_model: str | None = Field(None, description="Step 1: the served VLM's name.")
    probe_concurrency: int | None = Field(
        None, ge=1, le=4096, description="Step 1 requests in flight per endpoint; empty: the batch."
    )
    n_images: int = Field(24, ge=1, description="Generated data: images in total.")
    n_shards: int = Field(4, ge=1, description="Generated data: Parquet shards.")
    task_runner: TaskRunnerSpec = Field(
        default_factory=TaskRunnerSpec,
        description="Where the shard groups run: threads here, or Dask (one process per GPU).",
    )
    # step 2
    sample_size: int | None = Field(None, ge=1, description="Failure records kept (seeded).")
    embed_images: bool = Field(False, description="Embed images as base64 (else image_path).")
    sample_processes: int = Field(1, ge=1, le=64, description="Processes for a large JSONL.")
    # step 3 (seed: NUM_GPUS, CONCURRENCY, BATCH_SIZE, REQUEST_DELAY)
    qa_backend: Literal["local", "endpoint"] = Field(
        "local", description="'local': the transformers engine here; 'endpoint': OpenAI API."
    )
    qa_model: str = Field("smollm2", description="Local engine spec (qa_backend='local').")
    endpoint_url: list[str] | None = Field(
        None, description="Base URL(s) up to /v1, one per GPU server (qa_backend='endpoint')."
    )
    served_model: str | None = Field(None, description="Model name the endpoint serves.")
    num_gpus: int = Field(1, ge=1, le=64, description="Endpoints (servers, one per GPU).")
    concurrency: int = Field(4, ge=1, le=4096, description="Requests in flight per endpoint.")
    batch_size: int = Field(16, ge=1, description="Records per QA batch.")
    request_delay: float = Field(0.0, ge=0.0, le=60.0, description="Seconds between starts.")
    max_attempts: int = Field(4, ge=1, le=50, description="Attempts per request.")
    timeout_s: float = Field(120.0, gt=0.0, description="Per request attempt.")
    qa_max_new_tokens: int = Field(48, ge=1, le=4096)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> FactorParams:
        if self.endpoint_url and "qa_backend" not in self.model_fields_set:
            self.qa_backend = "endpoint"  # an endpoint URL given: it is the QA backend
        if self.qa_backend == "endpoint" and not self.endpoint_url:
            raise ValueError("endpoint_url: qa_backend='endpoint' needs --endpoint-url URL")
        if self.endpoint_url and not self.served_model:
            raise ValueError("served_model: give the model name the endpoint serves")
        urls = self.endpoint_url or []
        if len(urls) > 1 and len(urls) != self.num_gpus:
            raise ValueError(
                f"num_gpus: {len(urls)} endpoint URLs but num_gpus={self.num_gpus}; give one URL "
                "per GPU server (or one URL, used num_gpus times)"
            )
        if self.probe_endpoint_url and "probe_backend" not in self.model_fields_set:
            self.probe_backend = "endpoint"  # a step-1 endpoint URL given: it is step 1's backend
        if self.probe_backend == "endpoint" and not self.probe_endpoint_url:
            raise ValueError(
                "probe_endpoint_url: probe_backend='endpoint' needs --probe-endpoint-url URL"
            )
        if self.probe_endpoint_url and not self.probe_served_model:
            raise ValueError("probe_served_model: give the VLM name the step-1 endpoint serves")
        if self.step in ("sample", "qa") and not self.input_path:
            raise ValueError(f"input_path: step={self.step!r} alone needs --input-path")
        return self

    @property
    def qa_in_flight(self) -> int:
        """CONCURRENCY x NUM_GPUS: requests in flight at most (seed: 20 x 8 = 160)."""
        return self.concurrency * self.num_gpus


def _seed_preset(nproc: int, fbs: int, pss: int, gpus: int, conc: int, bs: int, delay: float):
    return {
        "nproc_per_node": nproc,
        "failure_batch_size": fbs,
        "parquet_sample_size": pss,
        "num_gpus": gpus,
        "concurrency": conc,
        "batch_size": bs,
        "request_delay": delay,
    }


def _dask(n: int) -> dict[str, Any]:
    return {"kind": "dask", "n_workers": n, "gpus_per_task": 1}


#: Named parameter sets; ``--preset NAME`` sets them and explicit options win.
PRESETS: dict[str, dict[str, Any]] = {
    "smoke": _seed_preset(1, 8, 2, 1, 4, 16, 0.0) | {"sample_size": 6, "qa_max_new_tokens": 32},
    "1-gpu": _seed_preset(1, 50, 4, 1, 5, 500, 0.1),
    "4-gpu": _seed_preset(4, 100, 8, 4, 20, 1000, 0.05) | {"task_runner": _dask(4)},
    "8-gpu": _seed_preset(8, 100, 16, 8, 20, 1000, 0.05) | {"task_runner": _dask(8)},
}


def preset_params(name: str, **overrides: Any) -> FactorParams:
    """The preset ``name`` with ``overrides`` on top."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} unknown: use one of {sorted(PRESETS)}")
    return FactorParams.model_validate({**PRESETS[name], **overrides})
