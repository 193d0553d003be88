"""The ModelSource rules as a plain pydantic model: the block is that model, stored in Prefect."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from blocks import ModelSource
from gpuflows.models.source import ModelSourceSpec

TOKEN = "hf_TopSecretToken1234567890"
BAD = [
    {"kind": "weights", "path_or_id": "x"},
    {"kind": "local_path", "path_or_id": "  "},
    {"kind": "hf_id", "path_or_id": "not a/valid/id"},
    {"kind": "pypi_package", "path_or_id": "bad name!"},
    {"kind": "hf_id", "path_or_id": "a/b", "device_map": {"": "gpu7"}},
    {"kind": "hf_id", "path_or_id": "a/b", "device_map": "auto", "max_memory": {"0": "5Gb"}},
    {"kind": "hf_id", "path_or_id": "a/b", "max_memory": {"0": "5GiB"}},
    {"kind": "local_path", "path_or_id": "/m", "revision": "main"},
    {"kind": "hf_id", "path_or_id": "a/b", "revision": " "},
]


def test_the_block_is_the_core_model():
    assert issubclass(ModelSource, ModelSourceSpec)
    assert list(ModelSource.model_fields) == list(ModelSourceSpec.model_fields)
    assert ModelSource.model_config["extra"] == "allow"  # Prefect's Block config still rules
    for name, field in ModelSourceSpec.model_fields.items():
        block_field = ModelSource.model_fields[name]
        assert (block_field.annotation, block_field.default) == (field.annotation, field.default)
        assert block_field.description == field.description and field.description.endswith(".")


@pytest.mark.parametrize("kwargs", BAD, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_core_and_block_reject_alike(kwargs):
    with pytest.raises(ValidationError) as core:
        ModelSourceSpec(**kwargs)
    with pytest.raises(ValidationError) as block:
        ModelSource(**kwargs)

    def errors(exc):
        return [(e["loc"], e["msg"]) for e in exc.value.errors()]

    assert errors(core) == errors(block)


def test_to_spec_is_a_plain_copy_with_the_secret_kept():
    block = ModelSource(
        kind="hf_id", path_or_id=" Qwen/Qwen2.5-0.5B ", revision="main", hf_token=TOKEN
    )
    spec = block.to_spec()
    assert type(spec) is ModelSourceSpec
    assert spec.path_or_id == "Qwen/Qwen2.5-0.5B"  # normalised once, by the core rules
    assert spec.model_dump() == ModelSourceSpec.model_validate(block.model_dump()).model_dump()
    assert isinstance(spec.hf_token, SecretStr) and TOKEN not in repr(spec)
    assert spec.from_pretrained_kwargs() == block.from_pretrained_kwargs()
    assert spec.from_pretrained_kwargs()["token"] == TOKEN
    assert spec.to_ref() == block.to_ref()


def test_spec_use_without_prefect(tmp_path):
    spec = ModelSourceSpec(kind="local_path", path_or_id=str(tmp_path), dtype="float16")
    assert spec.resolve_path() == tmp_path.resolve() and not spec.synthetic
    kw = spec.from_pretrained_kwargs()
    assert kw["local_files_only"] is True and kw["use_safetensors"] is True
    assert "device_map" not in kw and "token" not in kw
    rand = ModelSourceSpec(kind="random_init", path_or_id="tiny")
    assert rand.synthetic and rand.to_ref().source == "random-init"
    with pytest.raises(ValueError, match="from_config"):
        rand.pretrained_model_name_or_path()
