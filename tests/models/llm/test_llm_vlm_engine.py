"""The local VLM engine on the tiny random-weight LLaVA (synthetic), float32 on the CPU:
batched == one at a time, sampled replay, stop strings, the call cache keyed by image bytes."""

from __future__ import annotations

import io

import pytest

from gpuflows.core.faults import InputError
from gpuflows.models.llm.cache import CallCache
from gpuflows.models.llm.config import LLMRequest, LocalModelConfig
from gpuflows.models.llm.vlm_engine import VLMEngine
from gpuflows.models.llm.vlm_load import is_vlm_spec, load_vlm_engine, resolve_vlm_spec
from gpuflows.models.tiny import build_tiny_reward_model


def png(color: tuple[int, int, int], size: int = 40, box: int = 10) -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (size, size), (128, 128, 128))
    ImageDraw.Draw(im).rectangle((box, box, box + 14, box + 14), fill=color)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


IMAGES = [png((220, 40, 40)), png((40, 170, 60), box=4), png((40, 70, 220), size=64)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    folder = build_tiny_reward_model(tmp_path_factory.mktemp("m") / "tiny-llava")
    return load_vlm_engine(LocalModelConfig(spec=str(folder), batch_size=4))


def _engine(base, **kw) -> VLMEngine:
    return VLMEngine(base.model, base.processor, identity=base.identity, **kw)


def _requests() -> list[LLMRequest]:
    texts = ["hi", "What is in the image? Answer with a colour and a shape.", "colour?", "x"]
    reqs = [
        LLMRequest(
            id=f"v{i}",
            messages=({"role": "user", "content": t},),
            images=(IMAGES[i % 3],),
            max_new_tokens=5 + i,
        )
        for i, t in enumerate(texts)
    ]
    reqs.append(  # two images, the second placed after the text by an image part
        LLMRequest(
            id="two",
            messages=(
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "image"}, {"type": "text", "text": "same?"}]
                    + [{"type": "image"}],
                },
            ),
            images=(IMAGES[0], IMAGES[2]),
            max_new_tokens=6,
        )
    )
    reqs.append(LLMRequest(id="txt", messages=({"role": "user", "content": "no image"},)))
    return reqs


def test_batched_greedy_equals_one_at_a_time(base):
    reqs = _requests()
    batched = _engine(base, batch_size=4).generate(reqs)
    single = _engine(base, batch_size=1).generate(reqs)
    assert [r.id for r in batched] == [r.id for r in reqs]
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.completion_tokens for r in batched] == [r.completion_tokens for r in single]
    assert max(r.batch["size"] for r in batched) == 4
    for req, res in zip(reqs, batched, strict=True):
        assert res.ok and res.completion_tokens <= req.max_new_tokens
    # the answer depends on the image: same prompt, another image, another answer somewhere
    swap = [r.model_copy(update={"images": (IMAGES[(i + 1) % 3],)}) for i, r in enumerate(reqs[:4])]
    assert [r.text for r in _engine(base).generate(swap)] != [r.text for r in batched[:4]]


def test_sampled_rows_replay_and_stop_strings(base):
    msgs = ({"role": "user", "content": "describe"},)
    reqs = [
        LLMRequest(
            id=f"s{k}",
            messages=msgs,
            images=(IMAGES[k % 2],),
            temperature=1.0,
            top_p=0.9,
            seed=7,
            sample_index=k,
            max_new_tokens=8,
        )
        for k in range(3)
    ] + [LLMRequest(id="g", messages=msgs, images=(IMAGES[0],), max_new_tokens=8)]
    a = _engine(base, batch_size=4).generate(reqs)
    b = _engine(base, batch_size=1).generate(reqs)
    assert [r.text for r in a] == [r.text for r in b]  # per-row generators: replay exactly
    greedy = a[-1].text
    assert greedy == _engine(base).generate(reqs[-1:])[0].text
    assert a[0].text != a[2].text  # same image and prompt: the k-th sample differs from k+2-th
    assert greedy not in {r.text for r in a[:3]}
    stop = greedy[2:4]
    cut = _engine(base).generate([reqs[-1].model_copy(update={"stop": (stop,)})])[0]
    assert cut.text == greedy[: greedy.find(stop)] and cut.finish_reason == "stop"


def test_cache_hit_with_zero_model_calls_and_a_new_image_misses(base, tmp_path):
    reqs = _requests()[:4]
    cache = CallCache(tmp_path / "calls.sqlite")
    first = _engine(base, cache=cache).generate(reqs)
    again = _engine(base, cache=cache)
    second = again.generate(reqs)
    assert again.counts["calls"] == 0 and all(r.cached for r in second)
    assert [r.text for r in second] == [r.text for r in first]
    changed = reqs[0].model_copy(update={"images": (png((250, 250, 0)),)})
    third = _engine(base, cache=cache)
    (res,) = third.generate([changed])
    assert not res.cached and third.counts["calls"] == 1
    assert cache.hits == 4 and cache.misses == 5


def test_same_bytes_by_path_or_data_url_share_one_key(base, tmp_path):
    import base64

    path = tmp_path / "a.png"
    path.write_bytes(IMAGES[1])
    url = "data:image/png;base64," + base64.b64encode(IMAGES[1]).decode()
    by_path = LLMRequest(id="p", messages=({"role": "user", "content": "hi"},), images=(str(path),))
    by_url = LLMRequest(
        id="u",
        messages=(
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": "hi"},
                ],
            },
        ),
    )
    assert by_path.images == by_url.images == (IMAGES[1],)
    assert by_path.messages == by_url.messages
    cache = CallCache(tmp_path / "c.sqlite")
    _engine(base, cache=cache).generate([by_path])
    path.write_bytes(IMAGES[2])  # the same path, other bytes: the key follows the bytes
    moved = LLMRequest(id="p2", messages=({"role": "user", "content": "hi"},), images=(str(path),))
    eng = _engine(base, cache=cache)
    assert [r.cached for r in eng.generate([by_url, moved])] == [True, False]


def test_specs_checked_before_loading(tmp_path):
    assert is_vlm_spec("tiny-vlm") and not is_vlm_spec("tiny-qwen2")
    with pytest.raises(InputError, match=r"spec='nope' is not 'tiny-vlm'"):
        resolve_vlm_spec("nope")
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    with pytest.raises(InputError, match="no vision_config"):
        resolve_vlm_spec(str(tmp_path))


def test_text_engine_refuses_images():
    from gpuflows.models.llm.load import load_engine

    engine = load_engine(LocalModelConfig(spec="tiny-qwen2"))
    req = LLMRequest(id="i", messages=({"role": "user", "content": "x"},), images=(IMAGES[0],))
    with pytest.raises(InputError, match="text-only model"):
        engine.generate([req])


def test_vlm_placement_counts_only_the_text_models_layers():
    """The meta-device plan of a LLaVA config: KV bytes from its text model, and the vision
    tower's 3 layers never counted as decoder layers (they hold no KV cache)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    from gpuflows.models.llm.placement import kv_bytes_per_token, meta_model, plan_placement

    text = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_id=299)
    assert type(meta_model(cfg, "float32")).__name__ == "LlavaForConditionalGeneration"
    plan = plan_placement(cfg, dtype="float32", max_memory={0: 2**30})
    assert kv_bytes_per_token(cfg, "float32") == 2 * 2 * 2 * 16 * 4
    assert plan.layers == {0: 2} and plan.num_layers == 2
    model = meta_model(cfg, "float32")
    total = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    assert plan.weight_bytes[0] == total
    assert plan.vram_bytes(1000)[0] == total + 1000 * plan.kv_bytes_per_token
