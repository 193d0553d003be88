"""Stage-1 edit adapter on the tiny synthetic InstructPix2Pix pipeline (CPU, a few seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpuflows.core.store.io import results_root
from gpuflows.models.diffusers_edit import EditModel, item_seed, load_edit_model, module_nbytes
from gpuflows.models.tiny import (
    EDIT_RECIPE_VERSION,
    MARKER_NAME,
    build_tiny_edit_pipeline,
    default_model_dir,
    read_marker,
)

# diffusers' Euler-ancestral scheduler calls np.array(tensor) in a way numpy 2 flags; harmless
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="session")
def edit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_edit_pipeline(tmp_path_factory.mktemp("tiny-models") / "edit", seed=0)


@pytest.fixture(scope="module")
def model(edit_dir: Path) -> EditModel:
    return load_edit_model(edit_dir, dtype="float32", device="cpu")


def _images(n: int = 2, size: tuple[int, int] = (48, 32)) -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
        for _ in range(n)
    ]


def _arr(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_build_writes_safetensors_and_marker(edit_dir: Path) -> None:
    marker = read_marker(edit_dir)
    assert marker is not None and marker["recipe_version"] == EDIT_RECIPE_VERSION
    assert marker["pipeline_class"] == "StableDiffusionInstructPix2PixPipeline"
    assert (edit_dir / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (edit_dir / "text_encoder" / "model.safetensors").is_file()
    assert not list(edit_dir.rglob("*.bin"))
    assert all((edit_dir / f).is_file() for f in marker["files"])


def test_build_is_idempotent(edit_dir: Path) -> None:
    stamp = (edit_dir / MARKER_NAME).stat().st_mtime_ns
    assert build_tiny_edit_pipeline(edit_dir, seed=0) == edit_dir.resolve()
    assert (edit_dir / MARKER_NAME).stat().st_mtime_ns == stamp


def test_rebuilds_on_other_seed_or_stale_marker(tmp_path: Path) -> None:
    target = build_tiny_edit_pipeline(tmp_path / "m", seed=0)
    first = (target / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
    build_tiny_edit_pipeline(target, seed=1)
    assert read_marker(target)["seed"] == 1
    assert (target / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() != first
    marker = json.loads((target / MARKER_NAME).read_text())
    (target / MARKER_NAME).write_text(json.dumps({**marker, "recipe_version": -1}))
    build_tiny_edit_pipeline(target, seed=0)
    assert read_marker(target)["recipe_version"] == EDIT_RECIPE_VERSION
    assert (target / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no build leftovers


def test_reloads_through_diffusers_from_pretrained(edit_dir: Path) -> None:
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(edit_dir, use_safetensors=True)
    assert type(pipe).__name__ == "StableDiffusionInstructPix2PixPipeline"
    assert pipe.unet.config.in_channels == 8


def test_adapter_exposes_pipeline_nbytes_synthetic(model: EditModel) -> None:
    assert model.synthetic
    assert type(model.pipeline).__name__ == "StableDiffusionInstructPix2PixPipeline"
    parts = [model.pipeline.unet, model.pipeline.vae, model.pipeline.text_encoder]
    assert model.nbytes() == module_nbytes(parts) > 0
    assert model.nbytes() == sum(
        t.numel() * t.element_size() for m in parts for t in [*m.parameters(), *m.buffers()]
    )


def test_edit_batch_is_deterministic_and_seeded(model: EditModel) -> None:
    images, prompts = _images(2), ["make it red", "add a hat"]
    out = model.edit(images, prompts, seed=3, steps=3)
    assert len(out) == 2
    assert all(o.size == (48, 32) and o.mode == "RGB" for o in out)
    again = model.edit(images, prompts, seed=3, steps=3)
    assert all(np.array_equal(_arr(a), _arr(b)) for a, b in zip(out, again, strict=True))
    other = model.edit(images, prompts, seed=4, steps=3)
    assert any(not np.array_equal(_arr(a), _arr(b)) for a, b in zip(out, other, strict=True))


def test_item_randomness_is_batch_independent(model: EditModel) -> None:
    images, prompts = _images(3), ["make it red", "add a hat", "snow"]
    batch = model.edit(images, prompts, seed=5, steps=3)
    alone = model.edit(images[1:2], prompts[1:2], seed=5, steps=3, indices=[1])
    # same per-item generator -> same result up to float rounding of the batched network pass
    assert np.abs(_arr(batch[1]) - _arr(alone[0])).max() <= 2
    shifted = model.edit(images[1:2], prompts[1:2], seed=5, steps=3, indices=[0])
    assert not np.array_equal(_arr(shifted[0]), _arr(alone[0]))


def test_mixed_sizes_and_modes(model: EditModel) -> None:
    gray = _images(1, (32, 32))[0].convert("L")
    rgba = _images(1, (48, 32))[0].convert("RGBA")
    out = model.edit([gray, rgba, _images(1, (32, 32))[0]], ["a", "b", "c"], seed=0, steps=2)
    assert [o.size for o in out] == [(32, 32), (48, 32), (32, 32)]
    assert all(o.mode == "RGB" for o in out)


def test_input_validation(model: EditModel) -> None:
    images = _images(2)
    with pytest.raises(ValueError, match=r"prompts\[1\] is empty"):
        model.edit(images, ["ok", "  "], seed=0, steps=1)
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        model.edit(images, ["ok"], seed=0, steps=1)
    with pytest.raises(ValueError, match="distinct"):
        model.edit(images, ["a", "b"], seed=0, steps=1, indices=[4, 4])
    with pytest.raises(TypeError, match="PIL"):
        model.edit([np.zeros((8, 8, 3))], ["a"], seed=0, steps=1)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="generator"):
        model.edit(images, ["a", "b"], seed=0, steps=1, call_kwargs={"generator": None})
    assert model.edit([], [], seed=0, steps=1) == []


def test_load_errors_and_pipeline_class(edit_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_edit_model(tmp_path)
    with pytest.raises(ValueError, match="not a diffusers pipeline class"):
        load_edit_model(edit_dir, pipeline_class="NoSuchPipeline")
    with pytest.raises(ValueError, match="dtype"):
        load_edit_model(edit_dir, dtype="int8")
    named = load_edit_model(edit_dir, pipeline_class="StableDiffusionInstructPix2PixPipeline")
    assert type(named.pipeline).__name__ == "StableDiffusionInstructPix2PixPipeline"


def test_item_seed_and_default_dir() -> None:
    assert item_seed(0, 1) == item_seed(0, 1) != item_seed(0, 2) != item_seed(1, 2)
    assert 0 <= item_seed(123, 456) < 2**63
    assert default_model_dir("tiny-edit") == results_root() / "models" / "tiny-edit"
    with pytest.raises(ValueError):
        default_model_dir("../x")
