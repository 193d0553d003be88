"""argo-experiment: ARGO adaptive RAG (an MDP over information progress) against three baselines,
batched, cached and deduplicated. No Prefect here; ``flows/argo_experiment.py`` wires it.

Modules: ``mdp`` (solver), ``data`` / ``synth`` (questions), ``corpus`` / ``retrieval``
(chunks, MiniLM, flat index or Chroma), ``prompts`` (versioned YAML), ``strategies`` (policies,
dedup plan), ``episodes`` (step-synchronous runner), ``scoring``, ``plots``, ``evidence``,
``report``, ``experiment`` (the steps the flow wires).
"""

from gpuflows.core.faults import InputError
from gpuflows.pipelines.argo_experiment.corpus import Corpus, load_corpus
from gpuflows.pipelines.argo_experiment.data import Question, QuestionSet, load_questions
from gpuflows.pipelines.argo_experiment.evidence import assess_run
from gpuflows.pipelines.argo_experiment.experiment import (
    Inputs,
    load_inputs,
    make_backend,
    make_retriever,
    plan,
    run_unit,
    totals,
    vram_estimate,
)
from gpuflows.pipelines.argo_experiment.mdp import Thresholds, solve_thresholds
from gpuflows.pipelines.argo_experiment.outcome import (
    Outcome,
    conclude,
    experiment_lock,
    units_of,
)
from gpuflows.pipelines.argo_experiment.params import PRESETS, STRATEGIES, ArgoParams, preset
from gpuflows.pipelines.argo_experiment.plots import plot_graphs
from gpuflows.pipelines.argo_experiment.report import (
    MONITOR_KEY,
    PROGRESS_KEY,
    REPORT_KEY,
    REPORT_TITLE,
    report_body,
)
from gpuflows.pipelines.argo_experiment.scoring import (
    aggregate,
    expand_rows,
    majority_baseline,
    parse_choice,
)
from gpuflows.pipelines.argo_experiment.strategies import Group, Policy, plan_groups

__all__ = [
    "MONITOR_KEY",
    "PRESETS",
    "PROGRESS_KEY",
    "REPORT_KEY",
    "REPORT_TITLE",
    "STRATEGIES",
    "ArgoParams",
    "Corpus",
    "Group",
    "Inputs",
    "Outcome",
    "InputError",
    "Policy",
    "Question",
    "QuestionSet",
    "Thresholds",
    "aggregate",
    "assess_run",
    "conclude",
    "experiment_lock",
    "expand_rows",
    "load_corpus",
    "load_inputs",
    "load_questions",
    "majority_baseline",
    "make_backend",
    "make_retriever",
    "parse_choice",
    "plan",
    "plan_groups",
    "plot_graphs",
    "preset",
    "report_body",
    "run_unit",
    "solve_thresholds",
    "totals",
    "units_of",
    "vram_estimate",
]
