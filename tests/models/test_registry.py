"""Model backends by name: lazy imports, clear errors for unknown names and broken entries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gpuflows.core.faults import InputError
from gpuflows.models import registry
from gpuflows.models.registry import get_model, model_names, register_model

HEAVY = ("torch", "transformers", "diffusers", "prefect", "huggingface_hub")
BACKEND_MODULES = (
    "gpuflows.models.diffusers_edit",
    "gpuflows.models.vlm_reward",
    "gpuflows.models.tiny",
)


@pytest.fixture
def table(monkeypatch):
    """A copy of the backend table for the test, so registrations do not leak."""
    monkeypatch.setattr(registry, "_BACKENDS", dict(registry._BACKENDS))


def _imported_after(code: str, watch: tuple[str, ...] = HEAVY) -> list[str]:
    """Which of ``watch`` are imported after running ``code`` in a fresh interpreter."""
    show = f"print(json.dumps([m for m in {watch!r} if m in sys.modules]))"
    probe = f"import sys, json\n{code}\n{show}"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_model_layer_imports_no_heavy_library_and_no_backend():
    code = (
        "import gpuflows.models, gpuflows.models.registry, gpuflows.models.resolve, "
        "gpuflows.models.source"
    )
    assert _imported_after(code, HEAVY + BACKEND_MODULES) == []


def test_a_backend_module_is_imported_when_asked_for():
    code = "from gpuflows.models import get_model; get_model('diffusers-edit')"
    assert _imported_after(code, BACKEND_MODULES) == [
        "gpuflows.models.diffusers_edit",
        "gpuflows.models.tiny",  # diffusers_edit imports tiny.is_synthetic
    ]
    # and the backends themselves import torch/diffusers/transformers only when they run
    code = "from gpuflows.models import get_model; get_model('vlm-reward'); get_model('tiny-edit')"
    assert _imported_after(code) == []


def test_built_in_backends():
    from gpuflows.models import diffusers_edit, tiny, vlm_reward

    assert {"diffusers-edit", "vlm-reward", "tiny-edit", "tiny-reward"} <= set(model_names())
    assert model_names() == sorted(model_names())
    assert get_model("diffusers-edit") is diffusers_edit.load_edit_model
    assert get_model("vlm-reward") is vlm_reward.load_reward_model
    assert get_model("tiny-edit") is tiny.build_tiny_edit_pipeline
    assert get_model("tiny-reward") is tiny.build_tiny_reward_model


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(InputError) as err:
        get_model("gpt-17", field="engine")
    msg = str(err.value)
    assert msg.startswith("engine='gpt-17' is not a registered model backend")
    assert all(repr(name) in msg for name in model_names())
    assert "register_model" in msg


def test_register_lazily_by_string(table):
    assert register_model("json-dumps", "json:dumps") == "json:dumps"
    assert "json-dumps" in model_names()
    assert get_model("json-dumps") is json.dumps
    register_model("json-dumps", "json:dumps")  # the same entry again: allowed


def test_register_with_the_decorator(table):
    @register_model("doubler")
    def doubler(x):
        return 2 * x

    assert get_model("doubler") is doubler and get_model("doubler")(3) == 6
    with pytest.raises(ValueError, match="'doubler' is already registered"):
        register_model("doubler", "json:dumps")
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny-edit")(doubler)


def test_a_module_may_register_what_its_lazy_entry_names(table):
    register_model("dumps", "json:dumps")
    register_model("dumps")(json.dumps)  # json.dumps decorating itself: same backend
    assert get_model("dumps") is json.dumps
    register_model("dumps", "json:dumps")  # and the string again after import: kept
    assert registry._BACKENDS["dumps"] is json.dumps


@pytest.mark.parametrize(
    ("name", "target"),
    [("", "json:dumps"), (" x", "json:dumps"), ("x", "json"), ("x", "json:"), ("x", ":dumps")],
)
def test_register_rejects_bad_names_and_targets(table, name, target):
    with pytest.raises(ValueError, match="register_model"):
        register_model(name, target)


def test_entries_that_cannot_be_imported_say_why(table, tmp_path, monkeypatch):
    (tmp_path / "needs_missing_pkg.py").write_text("import no_such_pkg_gpuflows\nX = 1\n")
    (tmp_path / "has_no_attr.py").write_text("Y = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_model("not-built-yet", "gpuflows.models.no_such_module:Engine")
    register_model("needs-pkg", "needs_missing_pkg:X")
    register_model("no-attr", "has_no_attr:X")

    with pytest.raises(ImportError, match="module 'gpuflows.models.no_such_module' does not exist"):
        get_model("not-built-yet")
    with pytest.raises(ImportError, match="needs the package 'no_such_pkg_gpuflows'.*pip install"):
        get_model("needs-pkg")
    with pytest.raises(ImportError, match="has_no_attr has no 'X'"):
        get_model("no-attr")
    assert registry._BACKENDS["no-attr"] == "has_no_attr:X"  # a failed import caches nothing
