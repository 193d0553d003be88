"""bench/factor_vlm.py --quick: the tiny-config smoke runs step 1 through the VLM engine and
writes a result with its provenance, figures and the summary line last."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.factor_vlm import ARCHS, main  # noqa: E402


def test_quick_smoke_writes_its_result(tmp_path, capsys, results):
    out = tmp_path / "r.json"
    assert main(["--quick", "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("factor-vlm quick-cpu") and str(out) in last
    r = json.loads(out.read_text())
    assert r["name"] == "factor-vlm" and r["device"] == "quick-cpu" and r["git_commit"]
    f = r["figures"]
    assert r["setup"]["images"] == 8 and f["images_per_s"]["value"] > 0
    # 3 calls per image, each with its image's (32 / 8)^2 = 16 image tokens and some text
    assert abs(f["calls_per_s"]["value"] - 3 * f["images_per_s"]["value"]) < 0.01
    assert f["prefill_tokens_per_image"]["value"] > 3 * 16


def test_real_size_config_is_llava_1_5_7b():
    import torch
    from accelerate import init_empty_weights

    (vh, _, vl, _, px, patch), (th, _, tl, _, _, vocab) = ARCHS["llava-1.5-7b"]
    assert (px // patch) ** 2 == 576 and (vl, tl, th, vocab) == (24, 32, 4096, 32064)
    from bench.factor_vlm import random_llava

    with init_empty_weights():  # meta weights: the count without the memory
        engine = random_llava("llava-1.5-7b", "meta", "bfloat16")
    n = sum(p.numel() for p in engine.model.parameters())
    assert 7.0e9 < n < 7.2e9, n  # LLaVA-1.5-7B: 7.06 B parameters
    assert engine.model.dtype == torch.bfloat16
