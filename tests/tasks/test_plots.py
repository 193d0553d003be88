"""tasks.plots: PNGs embedded in markdown artifacts, downscaled and capped, the file named."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from tasks.plots import embed_named_plots, embed_png, shrink_png


def _noisy_png(path, w=2400, h=1600, seed=0):
    # noise does not compress: a hard case for the byte cap
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _plot_png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(16, 10), dpi=150)
    ax.plot(np.sin(np.linspace(0, 20, 500)))
    fig.savefig(path)
    plt.close(fig)
    return path


def _embedded(md: str) -> Image.Image:
    (b64,) = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_a_big_plot_is_downscaled_within_the_caps_and_its_file_named(tmp_path):
    png = _plot_png(tmp_path / "effect_heatmap.png")
    md = embed_png(png, max_px=800, max_bytes=120_000)
    img = _embedded(md)
    assert max(img.size) <= 800 and max(img.size) >= 400
    assert len(base64.b64decode(re.search(r"base64,([^)]+)\)", md).group(1))) <= 120_000
    assert str(png) in md and "2400×1500 px" in md and "shown" in md and "capped at 800 px" in md


def test_noise_that_never_fits_says_so_instead_of_an_image(tmp_path):
    png = _noisy_png(tmp_path / "noise.png")
    md = embed_png(png, max_bytes=2_000)
    assert "data:image" not in md and "too large to embed" in md and str(png) in md
    assert shrink_png(png, max_bytes=2_000) is None


def test_missing_file_and_bad_caps(tmp_path):
    assert "is not there" in embed_png(tmp_path / "gone.png")
    with pytest.raises(ValueError, match="max_px=0"):
        embed_png(tmp_path / "x.png", max_px=0)


def test_every_named_png_is_embedded_once_after_its_line(tmp_path):
    a = _plot_png(tmp_path / "a.png")
    b = _plot_png(tmp_path / "b.png")
    md = f"# R\n\nPlots: `{a}`, `{b}`\n\nagain `{a}`\n\n```\n`{b}`\n```\n"
    out = embed_named_plots(md)
    assert out.count("data:image/png;base64,") == 2
    assert out.index("Plots:") < out.index("data:image") < out.index("again")
    assert embed_named_plots("no plots here\n") == "no plots here\n"
    capped = embed_named_plots(md, max_images=1)
    assert capped.count("data:image/png;base64,") == 1 and "at most 1 images" in capped
