"""User data is named by its own file or folder and digest, never by our benchmark's name or
version, and the lock never writes a "v" before a digest (issue 16)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpuflows.core.evidence.envlock import (
    DatasetRef,
    EnvironmentLock,
    GitInfo,
    render_lock_markdown,
    user_data_ref,
)

OURS = ("synthetic-gaze", "two-stage-eval-bench", "argo-synthetic", "batch-eval-synthetic")


def _lock_row(ref: DatasetRef) -> str:
    lock = EnvironmentLock(seed=0, git=GitInfo(), dataset=ref, packages={}, device=None)
    (row,) = [r for r in render_lock_markdown(lock).splitlines() if r.startswith("| dataset |")]
    return row


def _assert_user_labelled(ref: DatasetRef, name: str) -> None:
    row = _lock_row(ref)
    assert ref.name == name and ref.version == "" and ref.label() == name
    assert ref.digest.startswith("blake2b:") and f"| {name} {ref.digest} |" in row, row
    assert not any(ours in row for ours in OURS) and " v" not in row, row


def test_our_release_keeps_its_version_and_user_data_has_none():
    ours = DatasetRef(name="synthetic-gaze", version="1.0.0", digest="blake2b:ab", synthetic=True)
    assert "| synthetic-gaze v1.0.0 blake2b:ab (synthetic) |" in _lock_row(ours)
    _assert_user_labelled(user_data_ref("/data/study/gaze.csv", "blake2b:0123"), "gaze.csv")


def test_rqa_sweep_user_file(tmp_path):
    from gpuflows.pipelines.rqa_sweep import gaze
    from gpuflows.pipelines.rqa_sweep.data import load_sweep_data
    from gpuflows.pipelines.rqa_sweep.params import RqaSweepParams

    frame = gaze.generate_preset("smoke", seed=0)
    frame["x"] += np.random.default_rng(1).normal(0, 1e-3, len(frame))  # not our generated set
    path = tmp_path / "my-study.csv"
    frame.to_csv(path, index=False)
    _, ref, synthetic = load_sweep_data(RqaSweepParams(preset="smoke", data_path=str(path)))
    assert not synthetic and str(path) in ref.description
    _assert_user_labelled(ref, "my-study.csv")


def test_two_stage_user_folder(tmp_path):
    from PIL import Image

    from gpuflows.pipelines.two_stage_eval.bench import load_benchmark
    from gpuflows.pipelines.two_stage_eval.prompt_set import load_prompts
    from gpuflows.pipelines.two_stage_eval.run_plan import dataset_ref

    data = tmp_path / "lab-pairs"
    (data / "images").mkdir(parents=True)
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(data / "images" / "a.png")
    rec = {"pair_id": "a", "image": "images/a.png", "instruction": "make it red"}
    (data / "social.jsonl").write_text(json.dumps(rec) + "\n")
    loaded = load_benchmark(data)
    assert len(loaded.pairs) == 1
    _assert_user_labelled(dataset_ref(data, loaded, load_prompts()), "lab-pairs")


def test_two_stage_generated_folder_keeps_our_name(tmp_path):
    from gpuflows.pipelines.two_stage_eval.bench import load_benchmark
    from gpuflows.pipelines.two_stage_eval.prompt_set import load_prompts
    from gpuflows.pipelines.two_stage_eval.run_plan import BENCH_NAME, dataset_ref
    from gpuflows.pipelines.two_stage_eval.synth import generate_benchmark

    data = generate_benchmark(tmp_path / "renamed", "smoke", seed=0, image_size=16)
    ref = dataset_ref(data, load_benchmark(data), load_prompts())
    assert ref.name == BENCH_NAME and ref.version and ref.synthetic


def test_argo_user_questions(tmp_path):
    from gpuflows.pipelines.argo_experiment.data import load_questions
    from gpuflows.pipelines.argo_experiment.experiment import dataset_ref

    row = ["What does E2 connect?", ["1. RIC and E2 nodes", "2. UE", "3. core", "4. SMO"], "1"]
    path = tmp_path / "fin_H.json"
    path.write_text(json.dumps(row) + "\n")
    qset = load_questions(path)
    _assert_user_labelled(dataset_ref(qset, 1, "corpus abc"), "fin_H.json")


def test_batch_eval_user_folder(tmp_path):
    from gpuflows.pipelines.batch_eval.evidence import dataset_ref
    from gpuflows.pipelines.batch_eval.generate import generate
    from gpuflows.pipelines.batch_eval.schema import load_dataset, write_dataset

    folder = tmp_path / "shop-queries"
    write_dataset(generate(n_train=8, n_test=4, n_candidates=6, seed=0), folder)
    _assert_user_labelled(dataset_ref(load_dataset(folder)), "shop-queries")


@pytest.mark.parametrize("synthetic", [False, True])
def test_factor_pipeline_images(synthetic):
    from gpuflows.pipelines.factor_pipeline.evidence import dataset_ref

    name = "generated-shapes" if synthetic else "/data/photos"
    ref = dataset_ref(name, "blake2b:77", synthetic)
    if synthetic:
        assert ref.label() == "generated-shapes v1"
    else:
        assert ref.version == "" and "| /data/photos blake2b:77 |" in _lock_row(ref)
