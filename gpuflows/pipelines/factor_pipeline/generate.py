"""The embedded default input: a generated shard set of small rendered images (synthetic data).

Each image is a 48 px square with one coloured shape (circle, square or triangle) on a grey
background; ``label`` says what it shows (``"red circle"``), metadata columns ``color``, ``shape``
and ``size`` (px). Rendering is seeded, so the same arguments give the same bytes; a finished set
is reused (a ``_SUCCESS`` marker holding the arguments is written last).
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

from gpuflows.core.evidence.digest import bytes_digest
from gpuflows.core.evidence.provenance import register_generated

COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220)}
SHAPES = ("circle", "square", "triangle")
IMAGE_SIZE = 48


def render(color: str, shape: str, size: int, rng: random.Random) -> bytes:
    """PNG bytes of one shape of ``size`` px at a random place."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (128, 128, 128))
    d = ImageDraw.Draw(im)
    x, y = rng.randint(0, IMAGE_SIZE - size), rng.randint(0, IMAGE_SIZE - size)
    box = (x, y, x + size, y + size)
    fill = COLORS[color]
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    else:
        d.polygon([(x, y + size), (x + size, y + size), (x + size // 2, y)], fill=fill)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def generate_shards(
    out_dir: str | Path, *, n_images: int = 24, n_shards: int = 4, seed: int = 0
) -> list[Path]:
    """Write ``n_shards`` Parquet shards holding ``n_images`` images in all; returns their paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if n_images < 1 or n_shards < 1:
        raise ValueError(f"n_images={n_images}, n_shards={n_shards}: both must be >= 1")
    out = Path(out_dir)
    marker = out / "_SUCCESS"
    args = {"n_images": n_images, "n_shards": n_shards, "seed": seed, "version": 1}
    if marker.is_file() and json.loads(marker.read_text()).get("args") == args:
        return _registered(sorted(out.glob("*.parquet")))
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.parquet"):
        old.unlink()
    rng = random.Random(seed)
    n_shards = min(n_shards, n_images)
    paths = []
    for s in range(n_shards):
        rows: dict[str, list] = {k: [] for k in ("id", "label", "image", "color", "shape", "size")}
        for i in range(s, n_images, n_shards):
            color, shape = rng.choice(sorted(COLORS)), rng.choice(SHAPES)
            size = rng.randint(14, 30)
            rows["id"].append(f"img-{i:06d}")
            rows["label"].append(f"{color} {shape}")
            rows["image"].append(render(color, shape, size, rng))
            rows["color"].append(color)
            rows["shape"].append(shape)
            rows["size"].append(size)
        path = out / f"shard-{s:05d}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(pa.table(rows), tmp)
        os.replace(tmp, path)
        paths.append(path)
    digest = bytes_digest(b"".join(p.read_bytes() for p in paths))
    marker.write_text(json.dumps({"args": args, "digest": digest}))
    return _registered(paths)


def _registered(paths: list[Path]) -> list[Path]:
    """Register the shard set's digest as generated: passed back as ``input_path`` (copied,
    renamed folder) it is still synthetic."""
    register_generated(shard_set_digest(paths), f"{__name__} v1")
    return paths


def shard_set_digest(shards: list[Path]) -> str:
    """Content digest of the shard files, in order."""
    return bytes_digest(b"".join(bytes_digest(p.read_bytes()).encode() for p in shards))
