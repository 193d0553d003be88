"""One two-stage-eval run before its stages: data, models, VRAM needs, budget, lock (no Prefect).

:func:`plan_run` checks everything that can be wrong before a model loads: each model's need
(weights x (1 + :data:`ACTIVATION_MARGIN`)) must fit the budget alone, or the run fails with
:class:`~gpuflows.core.faults.InputError`. :func:`load_models` then loads both on the host and
registers them with the residency manager, which places them within the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuflows.core.evidence.digest import bytes_digest
from gpuflows.core.evidence.envlock import DatasetRef, EnvironmentLock, build_lock, user_data_ref
from gpuflows.core.faults import InputError
from gpuflows.core.hardware.devices import DeviceChoice
from gpuflows.core.memory.budget import GIB, VramEstimate
from gpuflows.core.memory.model_size import need_from_weights
from gpuflows.core.memory.residency import ResidencyError, ResidencyManager
from gpuflows.core.memory.weight_files import model_fingerprint
from gpuflows.core.store.io import results_root
from gpuflows.core.store.ledger import Ledger
from gpuflows.models.diffusers_edit import load_edit_model
from gpuflows.models.vlm_reward import load_reward_model
from gpuflows.pipelines.two_stage_eval.bench import EditPair, LoadResult, load_benchmark
from gpuflows.pipelines.two_stage_eval.move_plan import resident_need
from gpuflows.pipelines.two_stage_eval.params import TwoStageEvalParams
from gpuflows.pipelines.two_stage_eval.prompt_set import PromptSet
from gpuflows.pipelines.two_stage_eval.synth import generate_benchmark, is_synthetic

FLOW_NAME = "two-stage-eval"
ACTIVATION_MARGIN = 0.3
"""VRAM need = weights x 1.3: diffusion activations at the benchmark's resolutions (stated)."""


@dataclass
class TwoStageRun:
    """What the stages and the report of one run read.

    ``models`` maps ``"edit"`` / ``"reward"`` to a resolved model (``path``, ``source``,
    ``dtype``, ``trust_remote_code``, ``use_safetensors``).
    """

    params: TwoStageEvalParams
    data: Path
    loaded: LoadResult
    prompts: PromptSet
    choice: DeviceChoice
    models: dict[str, Any]
    needs: dict[str, VramEstimate]
    capacity: int
    mgr: ResidencyManager
    dataset: DatasetRef
    lock: EnvironmentLock
    checkpoint: Path
    edit_model: Any = None
    reward: Any = None
    fingerprints: dict[str, str] = field(default_factory=dict)

    @property
    def pairs(self) -> list[EditPair]:
        return self.loaded.pairs

    @property
    def progress_units(self) -> int:
        """Pair-stages of the run: each pair is edited, then scored."""
        return 2 * len(self.pairs)

    @property
    def indices(self) -> dict[str, int]:
        """Each pair's noise seed, from its id, not its position: reordering the data or adding
        pairs never changes an edit, so the checkpoint key (which has no position) stays exact."""
        return {q.pair_id: int(bytes_digest(q.pair_id.encode())[-8:], 16) for q in self.pairs}

    @property
    def edit_ledger(self) -> Ledger:
        return Ledger(self.checkpoint / "edit.jsonl")

    @property
    def score_ledger(self) -> Ledger:
        return Ledger(self.checkpoint / "score.jsonl")

    @property
    def edited_dir(self) -> Path:
        return self.checkpoint / "edited"

    @property
    def edit_settings(self) -> dict[str, Any]:
        p = self.params
        return {
            "seed": p.seed,
            "steps": p.steps,
            "guidance": p.guidance,
            "image_guidance": p.image_guidance,
            "dtype": self.models["edit"].dtype,
        }

    @property
    def score_settings(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.params.max_new_tokens,
            "constrain_to_score": self.reward.synthetic,
            "score_range": (0, 10),
            "dtype": self.models["reward"].dtype,
        }

    @property
    def hold(self) -> VramEstimate:
        """What the run holds of the GPU's VRAM limit while its models are on it
        (:func:`vram_hold`)."""
        return vram_hold(self.params.batch_size, self.needs, self.capacity)


def vram_hold(
    batch_size: int | None, needs: dict[str, VramEstimate], capacity: int
) -> VramEstimate:
    """What a run holds of the GPU's VRAM limit while its models are on it.

    With a fixed ``batch_size``: what it keeps resident (both models when they fit together,
    else the larger; each need carries the stated activation margin). With batches sized from
    the budget (``None``): the whole budget, since the batches grow into it.
    """
    resident = resident_need(needs["edit"].nbytes, needs["reward"].nbytes, capacity)
    models = f"{needs['edit'].basis}; {needs['reward'].basis}"
    if batch_size is None:
        return VramEstimate(
            nbytes=capacity,
            basis=f"the run's {capacity / GIB:.2f} GiB budget: batches are sized to fill it "
            f"(models resident at peak {resident / GIB:.2f} GiB: {models})",
        )
    return VramEstimate(nbytes=resident, basis=f"resident models at peak: {models}")


BENCH_NAME = "two-stage-eval-bench"
"""The name of our generated benchmark (:mod:`gpuflows.pipelines.two_stage_eval.synth`)."""


def prepare_data(p: TwoStageEvalParams) -> tuple[Path, LoadResult]:
    """The benchmark folder (``data_path``, else synthetic data generated for ``preset`` and
    ``seed`` under the results folder) and its pairs, bad ones rejected with the reason."""
    data = (
        Path(p.data_path)
        if p.data_path
        else results_root() / FLOW_NAME / f"data-{p.preset}-seed{p.seed}"
    )
    if not p.data_path:
        generate_benchmark(data, p.preset, seed=p.seed)
    return data, load_benchmark(data)


def model_needs(models: dict[str, Any]) -> dict[str, VramEstimate]:
    """Each model's VRAM need from its weight files, with the stated activation margin."""
    return {
        k: need_from_weights(
            m.path, m.dtype, activation_margin=ACTIVATION_MARGIN, name=f"{k} model"
        )
        for k, m in models.items()
    }


def dataset_ref(data: Path, loaded: LoadResult, prompts: PromptSet) -> DatasetRef:
    """The benchmark's identity: ours (generated: its name, the prompt set's version) or a
    user's folder, by its own name and content digest, never our benchmark's name or version."""
    if is_synthetic(data):
        return DatasetRef(
            name=BENCH_NAME,
            version=prompts.version,
            digest=loaded.digest(),
            synthetic=True,
            description=str(data),
        )
    return user_data_ref(data, loaded.digest())


def plan_run(
    p: TwoStageEvalParams,
    data: Path,
    loaded: LoadResult,
    prompts: PromptSet,
    choice: DeviceChoice,
    models: dict[str, Any],
    needs: dict[str, VramEstimate],
    capacity: int,
) -> TwoStageRun:
    """The run within ``capacity`` bytes on ``choice``, its data identity and environment lock.

    Raises:
        InputError: a model does not fit the budget even alone (before any model loads).
    """
    mgr = ResidencyManager(choice.device, capacity)
    try:
        for k in needs:
            mgr.require_fits(f"{k} model ({models[k].source})", needs[k])
    except ResidencyError as exc:
        raise InputError(str(exc)) from None
    ref = dataset_ref(data, loaded, prompts)
    lock = build_lock(seed=p.seed, dataset=ref, device=choice, parameters=p.model_dump(mode="json"))
    return TwoStageRun(
        params=p,
        data=data,
        loaded=loaded,
        prompts=prompts,
        choice=choice,
        models=models,
        needs=needs,
        capacity=capacity,
        mgr=mgr,
        dataset=ref,
        lock=lock,
        checkpoint=results_root() / FLOW_NAME / "checkpoint",
    )


def load_models(run: TwoStageRun) -> TwoStageRun:
    """Load both models on the host and register them; the manager places them within budget."""
    loaders = {"edit": load_edit_model, "reward": load_reward_model}
    loaded = {
        k: loaders[k](
            m.path,
            dtype=m.dtype,
            device="cpu",
            trust_remote_code=m.trust_remote_code,
            use_safetensors=m.use_safetensors,
        )
        for k, m in run.models.items()
    }
    run.edit_model, run.reward = loaded["edit"], loaded["reward"]
    run.mgr.register("edit", run.edit_model, run.needs["edit"])
    run.mgr.register("score", run.reward, run.needs["reward"])
    run.fingerprints = {k: model_fingerprint(m.path) for k, m in run.models.items()}
    return run
