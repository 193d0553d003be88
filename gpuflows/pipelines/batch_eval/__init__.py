"""batch-eval (seed 000): re-ranker evaluation with set expansion, modality ablation and an SLO
baseline. Pure compute, no Prefect: ``tasks/batch_eval.py`` wraps it, ``flows/batch_eval.py``
wires it (importing only this public surface)."""

from gpuflows.core.faults import InputError
from gpuflows.pipelines.batch_eval.evidence import run_lock
from gpuflows.pipelines.batch_eval.params import PRESETS, BatchEvalParams
from gpuflows.pipelines.batch_eval.summary import summarise

__all__ = ["PRESETS", "BatchEvalParams", "InputError", "run_lock", "summarise"]
