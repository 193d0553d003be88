"""A flow's model parameter resolved to a folder: tiny, a folder, ModelSource blocks of every kind."""

from __future__ import annotations

import pytest

from gpuflows.faults import InputError
from tasks.model_specs import resolve_model


def test_tiny_and_folder(results, tmp_path):
    tiny = resolve_model("tiny", "reward", "float32")
    assert (tiny.path / "config.json").is_file() and tiny.dtype == "float32"
    assert (tiny.trust_remote_code, tiny.use_safetensors) == (False, True)
    folder = resolve_model(str(tiny.path), "reward", "bfloat16")
    assert folder.path == tiny.path and folder.dtype == "bfloat16"
    with pytest.raises(InputError, match=r"reward_model='/nowhere' is not a folder.*block:"):
        resolve_model("/nowhere", "reward", "float32")
    with pytest.raises(InputError, match="name the ModelSource block"):
        resolve_model("block:", "edit", "float32")


def test_blocks_of_every_kind(prefect_harness, results, monkeypatch):
    import huggingface_hub.constants

    from blocks import ModelSource

    # no hub here (and none in CI): an uncached hf_id must fail at once, not after timeouts
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    tiny_dir = resolve_model("tiny", "edit", "float32").path
    ModelSource(kind="random_init", path_or_id="tiny").save("ts-rand", overwrite=True)
    ModelSource(kind="local_path", path_or_id=str(tiny_dir), dtype="bfloat16").save(
        "ts-local", overwrite=True
    )
    ModelSource(kind="local_path", path_or_id="/no/such/dir").save("ts-gone", overwrite=True)
    ModelSource(kind="random_init", path_or_id="llama-7b").save("ts-rand-big", overwrite=True)
    ModelSource(kind="local_path", path_or_id=str(tiny_dir), device_map="auto").save(
        "ts-mapped", overwrite=True
    )
    ModelSource(kind="hf_id", path_or_id="org/not-cached-here").save("ts-hub", overwrite=True)

    rand = resolve_model("block:ts-rand", "edit", "float32")
    assert rand.path == tiny_dir and "random-init" in rand.source
    local = resolve_model("block:ts-local", "edit", "float32")
    assert local.path == tiny_dir.resolve() and local.dtype == "bfloat16"  # the block's dtype
    cases = {
        "ts-gone": "does not exist on this host",
        "ts-rand-big": "only path_or_id='tiny'",
        "ts-mapped": "device_map/max_memory",
        "ts-hub": "could not be fetched or found in the Hugging Face cache",
        "ts-missing": "no such ModelSource block",
    }
    for name, words in cases.items():
        with pytest.raises(InputError, match="edit_model='block:") as err:
            resolve_model(f"block:{name}", "edit", "float32")
        assert words in str(err.value), (name, str(err.value))


def test_flow_runs_on_a_random_init_block(prefect_harness, results):
    from blocks import ModelSource
    from flows.two_stage_eval import TwoStageEvalParams, two_stage_eval

    ModelSource(kind="random_init", path_or_id="tiny").save("ts-flow-rand", overwrite=True)
    out = two_stage_eval(TwoStageEvalParams(device="cpu", steps=1, edit_model="block:ts-flow-rand"))
    assert out["tier"] == "T1-Indicative" and out["summary"]["overall"]["n_scored"] == 10
