"""Prompt files and parameters: checked before any model loads, errors name the field."""

from __future__ import annotations

import pytest
import yaml

from gpuflows.core.faults import InputError
from gpuflows.pipelines.argo_experiment import ArgoParams, plan_groups, preset
from gpuflows.pipelines.argo_experiment.prompts import load_prompts


def _write(tmp_path, mutate):
    from importlib.resources import files

    doc = yaml.safe_load(
        files("gpuflows.pipelines.argo_experiment").joinpath("prompts/argo_v1.yaml").read_text()
    )
    mutate(doc)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_packaged_prompts_load_with_reference_settings():
    p = load_prompts()
    assert p["decomposer"].max_new_tokens == 128 and p["decomposer"].temperature == 0.7
    assert p["synthesizer"].max_new_tokens == 512 and p["synthesizer"].top_p == 0.95
    assert p["reasoner"].temperature == 0.5


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: d.pop("version"), "version"),
        (lambda d: d["roles"].pop("reasoner"), r"roles lack \['reasoner'\]"),
        (
            lambda d: d["roles"]["decomposer"].update(user="Q: {question} {nope}"),
            "roles.decomposer.user: placeholders",
        ),
        (
            lambda d: d["roles"]["synthesizer"].update(generation={"temp": 1}),
            "roles.synthesizer.generation",
        ),
    ],
)
def test_bad_prompt_files_name_role_and_field(tmp_path, mutate, words):
    with pytest.raises(InputError, match=words):
        load_prompts(_write(tmp_path, mutate))


def test_params_checks():
    with pytest.raises(ValueError, match="generated corpus only fits the generated questions"):
        ArgoParams(questions="fin_H.json")
    with pytest.raises(ValueError, match="unknown roles"):
        ArgoParams(max_new_tokens={"planner": 3})
    with pytest.raises(ValueError, match="endpoint_url"):
        ArgoParams(backend="endpoint")
    assert ArgoParams(c_r=[0.05, 0.01, 0.05]).c_r == [0.01, 0.05]
    assert preset("full").n_questions == 1000


def test_plan_dedups_baselines_and_groups_argo_by_thresholds():
    groups, table = plan_groups(ArgoParams())  # the reference's seven c_r points
    names = [g.name for g in groups]
    assert names[0] == "baselines" and set(groups[0].c_r) == set(ArgoParams().c_r)
    argo = [g for g in groups if g.name.startswith("argo")]
    assert len(argo) < len(table)  # 0.021, 0.025, 0.05 share (theta_cont=0, theta_star)
    served = sorted(c for g in argo for c in g.c_r)
    assert served == sorted(r["c_r"] for r in table)
