"""A deterministic synthetic benchmark for two-stage-eval (scenes drawn with PIL).

``generate_benchmark(out, preset)`` writes ``images/<pair_id>.png`` and one ``<category>.jsonl``
per category in the :mod:`gpuflows.edit_bench` format, plus ``manifest.json`` (synthetic: True,
digest). ``smoke`` = 2 pairs per category (10); ``full`` = the seed's 50/50/70/50/50 = 270.
Scenes: a sky/ground split at a random horizon, 2-4 random rectangles and ellipses; instructions
and descriptions from per-category templates. Same seed → byte-identical files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gpuflows.edit_bench import CATEGORIES
from gpuflows.io import atomic_write_bytes, atomic_write_json

SIZES = {
    "smoke": dict.fromkeys(CATEGORIES, 2),
    "full": {"physical": 50, "environment": 50, "social": 70, "causal": 50, "referential": 50},
}
OBJECTS = ("glass", "ball", "box", "lamp", "book", "chair", "cup", "plant")
TEMPLATES = {
    "physical": ("make the {o} fall off the table", "a {o} standing on a table"),
    "environment": ("make it rain over the {o}", "a {o} outdoors on a clear day"),
    "social": ("add a person handing the {o} to a friend", "a {o} on a shelf in a room"),
    "causal": ("show the {o} after it was dropped", "an intact {o} on the floor"),
    "referential": ("paint the leftmost {o} red", "two {o}s side by side"),
}


def _scene(rng: np.random.Generator, size: int) -> bytes:
    img = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(120, 230, 3)))
    d = ImageDraw.Draw(img)
    horizon = int(rng.integers(size // 3, 2 * size // 3))
    d.rectangle([0, horizon, size, size], fill=tuple(int(v) for v in rng.integers(30, 140, 3)))
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = (int(v) for v in rng.integers(0, size - 8, 2))
        w, h = (int(v) for v in rng.integers(4, size // 2, 2))
        box = [x0, y0, min(size - 1, x0 + w), min(size - 1, y0 + h)]
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (d.rectangle if rng.random() < 0.5 else d.ellipse)(box, fill=fill)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def generate_benchmark(
    out: str | Path, preset: str = "smoke", *, seed: int = 0, image_size: int = 64
) -> Path:
    """Write the synthetic benchmark to ``out`` (see the module docstring); returns ``out``."""
    if preset not in SIZES:
        raise ValueError(f"preset must be one of {sorted(SIZES)}, got {preset!r}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    digests = {}
    for cat, n in SIZES[preset].items():
        lines = []
        for i in range(n):
            pid = f"{cat}-{i:03d}"
            obj = OBJECTS[int(rng.integers(len(OBJECTS)))]
            data = _scene(rng, image_size)
            atomic_write_bytes(out / "images" / f"{pid}.png", data)
            instr, desc = (t.format(o=obj) for t in TEMPLATES[cat])
            rec = {"pair_id": pid, "category": cat, "image": f"images/{pid}.png",
                   "instruction": instr, "description": desc}  # fmt: skip
            lines.append(json.dumps(rec, ensure_ascii=False, sort_keys=True))
        body = ("\n".join(lines) + "\n").encode()
        atomic_write_bytes(out / f"{cat}.jsonl", body)
        digests[cat] = len(body)
    atomic_write_json(out / "manifest.json", {
        "synthetic": True, "generator": "gpuflows.edit_bench_synth", "preset": preset,
        "seed": seed, "image_size": image_size, "sizes": SIZES[preset],
    })  # fmt: skip
    return out


def is_synthetic(path: str | Path) -> bool:
    """True when the data folder (or a file's folder) has this generator's manifest."""
    p = Path(path)
    man = (p if p.is_dir() else p.parent) / "manifest.json"
    try:
        return bool(json.loads(man.read_text()).get("synthetic"))
    except (OSError, ValueError):
        return False
