"""argo-experiment: ARGO adaptive RAG (an MDP over information progress) against three baselines,
batched, cached and deduplicated. No Prefect here; ``flows/argo_experiment.py`` wires it."""

from gpuflows.pipelines.argo_experiment.mdp import Thresholds, solve_thresholds

__all__ = ["Thresholds", "solve_thresholds"]
