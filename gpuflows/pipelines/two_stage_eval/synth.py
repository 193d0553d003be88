"""A deterministic synthetic two-stage-eval benchmark: simple scenes drawn with PIL.

:func:`generate_benchmark` writes, in the :mod:`gpuflows.pipelines.two_stage_eval.bench` format::

    out_dir/images/<pair_id>.png      one scene per pair
    out_dir/<category>.jsonl          one record per pair, image path relative to out_dir
    out_dir/manifest.json             synthetic: true, preset, seed, sizes, benchmark digest

Presets: ``smoke`` = 2 pairs per category (10); ``full`` = the seed benchmark's sizes
50/50/70/50/50 = 270. Pair ``<category>-<i>`` draws from its own generator
``numpy.random.default_rng([seed, category index, i])``, so a smoke pair equals the same pair of
the full preset and the same seed gives byte-identical files. A scene: sky and ground split at a
random horizon, a sun, sometimes a table, the pair's object(s) in a named colour and a few
distractor shapes; the instruction and description come from per-category templates naming the
same object and colour. The data is synthetic — good for exercising the pipeline, meaningless
as a measure of model quality (the manifest says so).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gpuflows.core.evidence.digest import bytes_digest, file_digest
from gpuflows.core.evidence.provenance import generated_by, register_generated
from gpuflows.core.faults import InputError
from gpuflows.core.store.io import atomic_write_bytes, atomic_write_json
from gpuflows.pipelines.two_stage_eval.bench import CATEGORIES, MANIFEST, EditPair, benchmark_digest

PRESETS: dict[str, dict[str, int]] = {
    "smoke": dict.fromkeys(CATEGORIES, 2),
    "full": {"physical": 50, "environment": 50, "social": 70, "causal": 50, "referential": 50},
}
SIZES = PRESETS  # the name earlier callers use
OBJECTS = {
    "ball": "ellipse",
    "box": "rect",
    "glass": "cup",
    "cup": "cup",
    "book": "rect",
    "vase": "ellipse",
    "lamp": "lamp",
    "bottle": "cup",
}
COLOURS = {
    "red": (200, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 70, 200),
    "yellow": (230, 200, 40),
    "orange": (240, 130, 30),
    "purple": (130, 50, 160),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
PLACES = ("in a garden", "on a beach", "in a kitchen", "on a quiet street", "in a park")
# per category: (instruction, description, number of objects drawn, table drawn)
TEMPLATES: dict[str, tuple[tuple[str, str, int, bool], ...]] = {
    "physical": (
        (
            "make the {obj} fall off the table",
            "{a_colour} {obj} standing on a wooden table",
            1,
            True,
        ),
        (
            "put a heavy brick on top of the {obj}",
            "{a_colour} {obj} on the ground {place}",
            1,
            False,
        ),
        ("tip the {obj} over onto its side", "{a_colour} {obj} upright on a table", 1, True),
    ),
    "environment": (
        (
            "make it rain over the {obj}",
            "{a_colour} {obj} outdoors {place} on a clear day",
            1,
            False,
        ),
        ("turn the scene into night", "{a_colour} {obj} {place} in daylight", 1, False),
        (
            "cover the ground with fresh snow",
            "{a_colour} {obj} lying on the ground {place}",
            1,
            False,
        ),
    ),
    "social": (
        (
            "add a person handing the {obj} to a friend",
            "{a_colour} {obj} on a table {place}",
            1,
            True,
        ),
        ("add a queue of people waiting next to the {obj}", "{a_colour} {obj} {place}", 1, False),
        (
            "add a child politely asking an adult for the {obj}",
            "{a_colour} {obj} on a table",
            1,
            True,
        ),
    ),
    "causal": (
        (
            "show the {obj} after it was dropped from a great height",
            "an intact {colour} {obj} on the ground",
            1,
            False,
        ),
        (
            "show the scene after a strong wind blew through",
            "{a_colour} {obj} {place} on a calm day",
            1,
            False,
        ),
        (
            "show the {obj} after a week in the hot sun",
            "a new {colour} {obj} on a table {place}",
            1,
            True,
        ),
    ),
    "referential": (
        ("paint the leftmost {obj} red", "two {colour} {objs} side by side", 2, False),
        ("remove the largest {obj}", "three {colour} {objs} of different sizes", 3, False),
        ("make the {obj} on the right twice as big", "two {colour} {objs} on a table", 2, True),
    ),
}


def _rgb(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.integers(lo, hi, 3))
    return r, g, b


def _draw_object(d: ImageDraw.ImageDraw, shape: str, box: list[int], fill: tuple) -> None:
    x0, y0, x1, y1 = box
    if shape == "ellipse":
        d.ellipse(box, fill=fill, outline=(0, 0, 0))
    elif shape == "rect":
        d.rectangle(box, fill=fill, outline=(0, 0, 0))
    elif shape == "cup":  # narrower at the bottom
        inset = (x1 - x0) // 4
        d.polygon([(x0, y0), (x1, y0), (x1 - inset, y1), (x0 + inset, y1)], fill=fill)
    else:  # lamp: a shade on a stand
        mid = (x0 + x1) // 2
        d.polygon([(mid, y0), (x1, (y0 + y1) // 2), (x0, (y0 + y1) // 2)], fill=fill)
        d.rectangle([mid - 1, (y0 + y1) // 2, mid + 1, y1], fill=(60, 60, 60))


def _scene(
    rng: np.random.Generator, size: int, shape: str, colour: tuple, n_obj: int, table: bool
) -> bytes:
    img = Image.new("RGB", (size, size), _rgb(rng, 110, 230))
    d = ImageDraw.Draw(img)
    horizon = int(rng.integers(size * 2 // 5, size * 3 // 5))
    d.rectangle([0, horizon, size - 1, size - 1], fill=_rgb(rng, 30, 140))
    r, sx = max(2, size // 12), int(rng.integers(size // 8, size * 7 // 8))
    d.ellipse([sx - r, size // 10, sx + r, size // 10 + 2 * r], fill=(250, 220, 90))
    for _ in range(int(rng.integers(1, 4))):  # distractors in the background
        x, y = int(rng.integers(0, size - 6)), int(rng.integers(horizon - size // 6, horizon + 2))
        w = int(rng.integers(3, max(4, size // 6)))
        d.rectangle([x, y, min(size - 1, x + w), min(size - 1, y + w)], fill=_rgb(rng, 0, 256))
    base = horizon + (size - horizon) // 2
    if table:
        top = base - size // 10
        d.rectangle([size // 8, top, size * 7 // 8, top + max(2, size // 32)], fill=(120, 80, 40))
        for x in (size // 8 + 1, size * 7 // 8 - 2):
            d.rectangle([x - 1, top, x + 1, min(size - 1, top + size // 6)], fill=(100, 65, 30))
        base = top
    slot = size // (n_obj + 1)
    for k in range(n_obj):
        w = max(4, int(size * rng.uniform(0.12, 0.22)) * (k + 2) // (2 if n_obj < 3 else 3))
        cx = slot * (k + 1) + int(rng.integers(-2, 3))
        _draw_object(d, shape, [cx - w // 2, base - w, cx + w // 2, base], colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def generate_benchmark(
    out_dir: str | Path, preset: str = "smoke", *, seed: int = 0, image_size: int = 64
) -> Path:
    """Write the synthetic benchmark (module docstring) to ``out_dir``; returns ``out_dir``.

    Raises:
        InputError: an unknown preset, a negative seed or an image size below 16.
    """
    if preset not in PRESETS:
        raise InputError(f"preset={preset!r}: use one of {sorted(PRESETS)}")
    if seed < 0 or image_size < 16:
        raise InputError(f"seed={seed}, image_size={image_size}: need seed >= 0, image_size >= 16")
    out = Path(out_dir)
    pairs, files = [], {}
    for ci, (cat, n) in enumerate(PRESETS[preset].items()):
        lines = []
        for i in range(n):
            rng = np.random.default_rng([seed, ci, i])
            pid, obj = f"{cat}-{i:03d}", str(rng.choice(list(OBJECTS)))
            colour = str(rng.choice(list(COLOURS)))
            instr, desc, n_obj, table = TEMPLATES[cat][int(rng.integers(len(TEMPLATES[cat])))]
            place = str(rng.choice(PLACES))
            data = _scene(rng, image_size, OBJECTS[obj], COLOURS[colour], n_obj, table)
            atomic_write_bytes(out / "images" / f"{pid}.png", data)
            rec = {
                "pair_id": pid,
                "category": cat,
                "image": f"images/{pid}.png",
                "instruction": instr.format(obj=obj),
                "description": desc.format(
                    obj=obj,
                    objs=obj + ("es" if obj.endswith(("s", "x")) else "s"),
                    colour=colour,
                    place=place,
                    a_colour=("an " if colour[0] in "aeiou" else "a ") + colour,
                ),
            }
            lines.append(json.dumps(rec, ensure_ascii=False, sort_keys=True))
            pair = EditPair(**rec | {"image": str(out / rec["image"])})
            pair._digest_of = (pair.image, bytes_digest(data))
            pairs.append(pair)
        body = ("\n".join(lines) + "\n").encode()
        atomic_write_bytes(out / f"{cat}.jsonl", body)
        files[f"{cat}.jsonl"] = bytes_digest(body)
    # known generated data whatever the folder, its manifest or its file names say
    # (files with records only: an empty category file is the same bytes in any benchmark)
    register_generated(
        [benchmark_digest(pairs), *(files[f"{c}.jsonl"] for c, n in PRESETS[preset].items() if n)],
        GENERATOR,
    )
    atomic_write_json(
        out / MANIFEST,
        {
            "synthetic": True,
            "generator": "gpuflows.pipelines.two_stage_eval.synth",
            "preset": preset,
            "seed": seed,
            "image_size": image_size,
            "sizes": PRESETS[preset],
            "n_pairs": len(pairs),
            "digest": benchmark_digest(pairs),
            "files": files,
        },
    )
    return out


GENERATOR = "gpuflows.pipelines.two_stage_eval.synth.generate_benchmark"


def read_manifest(path: str | Path) -> dict | None:
    """The manifest of a data folder (or of a data file's folder), or None when there is none."""
    p = Path(path)
    try:
        doc = json.loads(((p if p.is_dir() else p.parent) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def is_synthetic(path: str | Path) -> bool:
    """True when the data folder (or a data file's folder) has a manifest marking it synthetic,
    or holds a data file whose digest :func:`generate_benchmark` registered (manifest deleted,
    files renamed or copied elsewhere). The trust check also looks up the loaded benchmark's
    digest (:func:`gpuflows.core.evidence.trust.check_real_data`)."""
    if (read_manifest(path) or {}).get("synthetic"):
        return True
    p = Path(path)
    files = [p] if p.is_file() else sorted(p.glob("*.json*")) if p.is_dir() else []
    return any(generated_by(file_digest(f)) for f in files if f.is_file() and f.name != MANIFEST)
