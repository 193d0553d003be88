"""two_stage_eval: edit every pair with a diffusion model, then score every edit with a VLM.

The public surface ``flows.two_stage_eval`` and ``tasks.two_stage`` use: the parameters, the run
plan (data, models, budget, lock), the two stages' keys, calls and records, the outcome and its
report. The modules behind it: ``bench`` (data + schema), ``synth`` (synthetic data),
``prompt_set`` (versioned prompts), ``score_parse`` / ``score_stats`` (scores and statistics),
``move_plan`` (swap counts of the orders), ``run_plan``, ``stages``, ``evidence``, ``report``.
"""

from gpuflows.core.faults import InputError
from gpuflows.pipelines.two_stage_eval.bench import EditPair
from gpuflows.pipelines.two_stage_eval.evidence import assess_run, build_evidence
from gpuflows.pipelines.two_stage_eval.params import TwoStageEvalParams
from gpuflows.pipelines.two_stage_eval.prompt_set import PromptSet, load_prompts
from gpuflows.pipelines.two_stage_eval.report import (
    MONITOR_KEY,
    PROGRESS_KEY,
    REPORT_KEY,
    REPORT_TITLE,
    TwoStageOutcome,
    conclude,
    flow_result,
    report_body,
    report_payload,
)
from gpuflows.pipelines.two_stage_eval.run_plan import (
    ACTIVATION_MARGIN,
    FLOW_NAME,
    TwoStageRun,
    load_models,
    model_needs,
    plan_run,
    prepare_data,
    vram_hold,
)
from gpuflows.pipelines.two_stage_eval.stages import (
    edit_call,
    edit_key,
    edit_runner,
    edited_intact,
    score_call,
    score_key,
    score_runner,
    unedited,
)

__all__ = [
    "ACTIVATION_MARGIN",
    "FLOW_NAME",
    "MONITOR_KEY",
    "PROGRESS_KEY",
    "REPORT_KEY",
    "REPORT_TITLE",
    "EditPair",
    "InputError",
    "PromptSet",
    "TwoStageEvalParams",
    "TwoStageOutcome",
    "TwoStageRun",
    "assess_run",
    "build_evidence",
    "conclude",
    "edit_call",
    "edit_key",
    "edit_runner",
    "edited_intact",
    "flow_result",
    "load_models",
    "load_prompts",
    "model_needs",
    "plan_run",
    "prepare_data",
    "report_body",
    "report_payload",
    "score_call",
    "score_key",
    "score_runner",
    "unedited",
    "vram_hold",
]
