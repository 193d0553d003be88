"""Bench: factor-pipeline step 1 (predict -> complete template -> verify) on one device, images/s.

The VLM is a random-weight model of LLaVA-1.5-7B's architecture built here from a config (no
hub, no download): CLIP ViT-L/14 at 336 px (24 layers, 576 image tokens) + a 2-layer GELU
projector + a Llama-2-7B text model (32 layers, hidden 4096, vocabulary 32,064), 7.06 B
parameters, in bf16 on the GPU: the same shapes and cost as the real model, random answers. It is
driven through the same code as a run -- :func:`gpuflows.pipelines.factor_pipeline.probing.probe_group`
over generated Parquet shards, the :class:`~gpuflows.models.llm.vlm_engine.VLMEngine` sizing its
batches from the GPU's memory (first batch of one, measured) -- after one warm-up shard.

The tokenizer is the tiny character-level one (its 260 ids fit the 32,064-token vocabulary;
generated ids beyond it decode to nothing, so answers are short: that changes no compute).
Each record takes three calls, each prefilling its image's 576 tokens again (no image-prefix
reuse across the three stages: see the figures ``prefill_tokens_per_image``).

    python bench/factor_vlm.py --device cuda                       # GPU host, bf16, ~1 min
    .venv/bin/python bench/factor_vlm.py --quick                   # CPU smoke, tiny config

Writes ``bench/results/factor-vlm-<device>.json`` (``--quick``: ``factor-vlm-quick-cpu.json``,
or ``--out``); the last line printed is the summary.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.record import RESULTS, fig, provenance, write_result  # noqa: E402
from gpuflows.pipelines.factor_pipeline.generate import generate_shards  # noqa: E402
from gpuflows.pipelines.factor_pipeline.probing import probe_group  # noqa: E402
from gpuflows.pipelines.factor_pipeline.schema import validate_shards  # noqa: E402

_TEMPLATE = (
    "{% for message in messages %}USER: {% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
#: (vision: hidden, intermediate, layers, heads, image px, patch; text: hidden, intermediate,
#: layers, heads, kv heads, vocabulary)
ARCHS = {
    "llava-1.5-7b": ((1024, 4096, 24, 16, 336, 14), (4096, 11008, 32, 32, 32, 32064)),
    "tiny": ((32, 64, 2, 2, 32, 8), (64, 128, 2, 4, 2, 512)),
}


def random_llava(arch: str, device: str, dtype: str) -> Any:
    """A random-weight LLaVA of ``arch`` on ``device`` behind the VLM engine."""
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    from gpuflows.models.llm.vlm_engine import VLMEngine
    from gpuflows.models.tiny import char_qwen2_tokenizer

    (vh, vi, vl, vn, px, patch), (th, ti, tl, tn, tkv, vocab) = ARCHS[arch]
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
    tok = char_qwen2_tokenizer(specials)
    ids = {s: tok.convert_tokens_to_ids(s) for s in specials}
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": px}, crop_size={"height": px, "width": px}
        ),
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=vh,
            intermediate_size=vi,
            num_hidden_layers=vl,
            num_attention_heads=vn,
            image_size=px,
            patch_size=patch,
            projection_dim=768,
            hidden_act="quick_gelu",
        ),
        text_config=LlamaConfig(
            vocab_size=vocab,
            hidden_size=th,
            intermediate_size=ti,
            num_hidden_layers=tl,
            num_attention_heads=tn,
            num_key_value_heads=tkv,
            max_position_embeddings=4096,
            rms_norm_eps=1e-5,
            bos_token_id=None,
            eos_token_id=ids["<|im_end|>"],
            pad_token_id=ids["<|endoftext|>"],
        ),
        image_token_id=ids["<image>"],
        image_seq_length=(px // patch) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(config, dtype=getattr(torch, dtype))
    model = model.eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    capacity = 0
    if device.startswith("cuda"):
        capacity = torch.cuda.memory_allocated(device) + torch.cuda.mem_get_info(device)[0]
    return VLMEngine(
        model,
        processor,
        identity=f"random-{arch}|seed0|{dtype}",
        device=device,
        capacity_bytes=capacity,
        synthetic=True,
        source=f"random-{arch}",
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    ap.add_argument("--arch", default=None, choices=sorted(ARCHS), help="default: llava-1.5-7b")
    ap.add_argument("--images", type=int, default=192, help="measured images")
    ap.add_argument("--failure-batch-size", type=int, default=100, help="seed's 8-gpu preset")
    ap.add_argument("--max-new-tokens", type=int, default=8, help="predict/complete; verify 4")
    ap.add_argument("--quick", action="store_true", help="CPU smoke: tiny config, 8 images")
    ap.add_argument("--out", default=None, help="result file (default bench/results/...)")
    args = ap.parse_args(argv)
    if args.quick:
        args.arch, args.images, args.failure_batch_size = args.arch or "tiny", 8, 4
    arch = args.arch or "llava-1.5-7b"
    device = "cuda:0" if args.device == "cuda" else args.device
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    import torch

    t0 = time.perf_counter()
    engine = random_llava(arch, device, dtype)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in engine.model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        warm = validate_shards(generate_shards(Path(tmp) / "warm", n_images=4, n_shards=1, seed=1))
        probe_group(warm, Path(tmp) / "warm-out", model=engine, batch_size=4)
        counts0 = dict(engine.counts)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        shards = max(1, args.images // args.failure_batch_size)
        infos = validate_shards(
            generate_shards(Path(tmp) / "d", n_images=args.images, n_shards=shards, seed=2)
        )
        rec = probe_group(
            infos,
            Path(tmp) / "out",
            model=engine,
            batch_size=args.failure_batch_size,
            max_new_tokens=args.max_new_tokens,
        )
    counts = {k: engine.counts[k] - counts0[k] for k in engine.counts}
    peak = torch.cuda.max_memory_allocated(device) if device.startswith("cuda") else None
    images, seconds = rec["images"], rec["seconds"]
    kind = "quick-cpu" if args.quick else device.split(":")[0]
    device_name = (
        torch.cuda.get_device_name(device)
        if device.startswith("cuda")
        else platform.processor() or "cpu"
    )
    figures = {
        "images_per_s": fig(round(images / seconds, 3), "images/s (one device)"),
        "calls_per_s": fig(round(counts["calls"] / seconds, 3), "VLM calls/s"),
        "prefill_tokens_per_s": fig(round(counts["prefill_tokens"] / seconds), "tokens/s"),
        "output_tokens_per_s": fig(round(counts["output_tokens"] / seconds, 1), "tokens/s"),
        "prefill_tokens_per_image": fig(round(counts["prefill_tokens"] / images, 1), "tokens"),
        "seconds": fig(round(seconds, 2), "s"),
        "model_build_s": fig(round(build_s, 1), "s"),
        "params": fig(params, "parameters"),
        "peak_allocated_gib": fig(round(peak / 2**30, 2) if peak else None, "GiB"),
    }
    result = {
        "name": "factor-vlm",
        "device": kind,
        "device_name": device_name,
        **provenance(),
        "model": f"random-{arch} ({dtype}, random weights: shapes and cost only)",
        "setup": {
            "images": images,
            "failure_batch_size": args.failure_batch_size,
            "max_new_tokens": args.max_new_tokens,
            "calls_per_image": 3,
            "warmup": "one 4-image shard before the measured run",
            "engine_batches": counts["batches"],
            "batch_sizer": engine.sizer.record(),
        },
        "figures": figures,
    }
    out = Path(args.out) if args.out else RESULTS / f"factor-vlm-{kind}.json"
    write_result(out, result)
    print(
        f"factor-vlm {kind} ({device_name}, random-{arch} {dtype}): {images / seconds:.2f} images/s, "
        f"{counts['calls'] / seconds:.1f} calls/s, batch {engine.sizer.size}, "
        f"{seconds:.1f} s for {images} images -> {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
