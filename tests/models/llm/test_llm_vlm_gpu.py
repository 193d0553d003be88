"""The VLM engine on a CUDA GPU (skipped without one): device_map='auto' over gpus='0' from the
meta-device plan, bf16, batch size measured from the first batch, every request answered and its
batch composition recorded (bf16 batched and unbatched answers may differ: not asserted)."""

from __future__ import annotations

import io

import pytest

from gpuflows.models.llm.config import LLMRequest, LocalModelConfig
from gpuflows.models.llm.vlm_load import load_vlm_engine

pytestmark = pytest.mark.gpu


def _png(i: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (20 * i, 200 - 20 * i, 90)).save(buf, format="PNG")
    return buf.getvalue()


def test_vlm_engine_on_gpu_from_the_placement_plan(results):
    import torch

    engine = load_vlm_engine(
        LocalModelConfig(spec="tiny-vlm", device="auto", gpus="0", dtype="bfloat16")
    )
    plan = engine.placement
    assert plan is not None and plan.layers == {0: 2}  # the text model's layers, not CLIP's
    assert set(plan.device_map.values()) == {0}
    reqs = [
        LLMRequest(
            id=f"g{i}",
            messages=({"role": "user", "content": f"what is this? {i}"},),
            images=(_png(i),),
            max_new_tokens=6,
        )
        for i in range(10)
    ]
    out = engine.generate(reqs)
    assert [r.id for r in out] == [r.id for r in reqs] and all(r.ok for r in out)
    assert all(r.batch["size"] >= 1 and r.completion_tokens <= 6 for r in out)
    rec = engine.record()
    assert rec["dtype"] == "bfloat16" and rec["counts"]["calls"] == 10
    assert rec["batch_sizer"]["size"] > 1  # sized from the measured first batch of one
    assert next(engine.model.parameters()).device == torch.device("cuda", 0)
