"""A flow's model parameter resolved to a folder: tiny, a folder, ModelSource blocks of every kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpuflows.core.faults import InputError
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


def _as_pickles(src, dst):
    """A copy of a model folder whose safetensors are torch pickles (``*.bin``), as older
    checkpoints ship."""
    import shutil

    import torch
    from safetensors.torch import load_file

    shutil.copytree(src, dst)
    for f in list(dst.rglob("*.safetensors")):
        # transformers: model.safetensors -> pytorch_model.bin; diffusers: <name>.bin
        torch.save(
            load_file(f), f.with_name("pytorch_model.bin" if f.stem == "model" else f"{f.stem}.bin")
        )
        f.unlink()
    return dst


def test_pickled_weights_need_a_block_that_allows_them(results, tmp_path):
    tiny = resolve_model("tiny", "reward", "float32").path
    bins = _as_pickles(tiny, tmp_path / "reward-bin")
    with pytest.raises(InputError, match=r"reward_model=.*torch pickle weights \(pytorch_model"):
        resolve_model(str(bins), "reward", "float32")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"edit_model=.*no weights under"):
        resolve_model(str(tmp_path / "empty"), "edit", "float32")


def test_a_same_shape_fine_tune_is_rescored_and_pickles_load_when_allowed(
    prefect_harness, results, tmp_path
):
    """Scores are keyed by the reward model's content: new weights with the same shapes (a
    fine-tune) re-score every pair and re-edit none. A .bin model loads through a block that
    says use_safetensors=False, and is sized from its pickle's shapes."""
    import torch

    from blocks import ModelSource
    from flows.two_stage_eval import TwoStageEvalParams, two_stage_eval

    def counts():  # records appended to each stage's ledger: one per pair computed
        ckpt = results / "two-stage-eval" / "checkpoint"
        return tuple(
            len((ckpt / f"{k}.jsonl").read_bytes().splitlines()) for k in ("edit", "score")
        )

    fast = {"device": "cpu", "steps": 1}
    two_stage_eval(TwoStageEvalParams(**fast))  # edits and scores with the tiny reward model
    bins = _as_pickles(resolve_model("tiny", "reward", "float32").path, tmp_path / "rw")
    ModelSource(kind="local_path", path_or_id=str(bins), use_safetensors=False).save(
        "ts-bin", overwrite=True
    )
    params = TwoStageEvalParams(**fast, reward_model="block:ts-bin")
    c0 = counts()
    out = two_stage_eval(params)
    assert out["summary"]["overall"]["n_scored"] + out["summary"]["overall"]["n_failed"] == 10
    c1 = counts()
    assert (c1[0] - c0[0], c1[1] - c0[1]) == (0, 10)  # another model's files: all re-scored
    (weights,) = bins.rglob("pytorch_model*.bin")
    sd = torch.load(weights, weights_only=True)
    name = next(k for k, v in sd.items() if v.is_floating_point() and v.ndim == 2)
    sd[name] = sd[name] + 0.01  # same names, shapes, dtypes: only the values moved
    torch.save(sd, weights)
    again = two_stage_eval(params)
    c2 = counts()
    assert (c2[0] - c1[0], c2[1] - c1[1]) == (0, 10), "a fine-tuned reward model reused old scores"
    fp = [json.loads(Path(r["report"]["json"]).read_text())["models"] for r in (out, again)]
    assert fp[0]["edit"]["fingerprint"] == fp[1]["edit"]["fingerprint"]
    assert fp[0]["reward"]["fingerprint"] != fp[1]["reward"]["fingerprint"]
    assert fp[1]["reward"]["path"] == str(bins)
    two_stage_eval(params)
    assert counts() == c2
