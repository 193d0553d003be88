"""two-stage-eval reward prompts: the packaged YAML, rendering, and every validation error."""

import copy
from pathlib import Path

import pytest
import yaml

from gpuflows.core.faults import InputError
from gpuflows.pipelines.two_stage_eval.bench import CATEGORIES
from gpuflows.pipelines.two_stage_eval.prompt_set import default_prompts_text, load_prompts

PACKAGED = (
    Path(__file__).resolve().parents[3]
    / "gpuflows"
    / "pipelines"
    / "two_stage_eval"
    / "prompts"
    / "two_stage_eval.yaml"
)


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(PACKAGED.read_text(encoding="utf-8"))


def _load(tmp_path: Path, doc: dict):
    path = tmp_path / "prompts.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return load_prompts(path)


def test_packaged_prompts_cover_every_category():
    ps = load_prompts()
    assert list(ps.prompts) == list(CATEGORIES) and ps.version and "Score" in ps.answer_format
    assert ps.digest == load_prompts(PACKAGED).digest  # importlib.resources finds the same file
    assert default_prompts_text()[0] == PACKAGED.read_text(encoding="utf-8")
    topics = {
        "physical": "PHYSICAL",
        "environment": "ENVIRONMENT",
        "social": "SOCIAL",
        "causal": "CAUSAL",
        "referential": "REFERENTIAL",
    }
    for cat, word in topics.items():
        system, user = ps.render(cat, "make the {glass} fall", "a glass on a table")
        assert word in system and "Score: <n>" in system
        assert 'Edit instruction: "make the {glass} fall"' in user  # braces in values are safe
        assert "Original image: a glass on a table" in user and "Score: <n>" in user


def test_render_accepts_aliases_and_rejects_unknown_categories():
    ps = load_prompts()
    assert ps.render("因果", "drop it", "a cup") == ps.render("causal", "drop it", "a cup")
    with pytest.raises(InputError, match="cosmic"):
        ps.render("cosmic", "x", "y")


def test_digest_follows_version_and_templates(tmp_path, doc):
    base = _load(tmp_path, doc)
    assert base.digest == load_prompts().digest  # dump/reload keeps the content
    bumped = copy.deepcopy(doc)
    bumped["version"] = "2099-01-1"
    edited = copy.deepcopy(doc)
    edited["categories"]["social"]["system"] += " Be brief."
    assert len({base.digest, _load(tmp_path, bumped).digest, _load(tmp_path, edited).digest}) == 3


def test_chinese_category_keys_are_accepted(tmp_path, doc):
    cats = doc["categories"]
    zh = dict(zip("物理 环境 社会 因果 指代".split(), cats.values(), strict=True))
    ps = _load(tmp_path, {**doc, "categories": zh})
    assert ps.prompts == load_prompts().prompts


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            lambda d: d["categories"]["physical"].update(user="Do {instr}: {description}"),
            r"'physical', field 'user': unknown placeholder.*instr",
        ),
        (
            lambda d: d["categories"]["causal"].update(system="Judge {0} causes"),
            r"'causal', field 'system': unknown placeholder",
        ),
        (
            lambda d: d["categories"]["social"].update(user="only {instruction}"),
            r"'social', field 'user': lacks placeholder.*description",
        ),
        (
            lambda d: d["categories"]["referential"].update(user="{instruction} {description} {"),
            r"'referential', field 'user': not a valid template",
        ),
        (
            lambda d: d["categories"]["environment"].pop("system"),
            r"'environment', field 'system': missing",
        ),
        (lambda d: d["categories"].pop("causal"), r"no prompts for \['causal'\]"),
        (
            lambda d: d["categories"].update(cosmic=d["categories"]["social"]),
            "unknown category 'cosmic'",
        ),
        (lambda d: d["categories"].update({"物理": d["categories"]["physical"]}), "given twice"),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(version="  "), "version"),
        (lambda d: d.pop("categories"), "categories"),
    ],
)
def test_invalid_prompt_files_name_category_and_field(tmp_path, doc, change, pattern):
    bad = copy.deepcopy(doc)
    change(bad)
    with pytest.raises(InputError, match=pattern):
        _load(tmp_path, bad)


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        load_prompts(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("version: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_prompts(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(InputError, match="not a YAML mapping"):
        load_prompts(tmp_path / "list.yaml")
