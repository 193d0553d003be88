"""batch-eval (seed 000): re-ranker evaluation with set expansion, modality ablation and an SLO
baseline. Pure compute, no Prefect: ``tasks/batch_eval.py`` wraps it, ``flows/batch_eval.py``
wires it."""

from gpuflows.pipelines.batch_eval.params import PRESETS, BatchEvalParams

__all__ = ["PRESETS", "BatchEvalParams"]
