"""Plots inside markdown artifacts: a PNG embedded as a ``data:`` image the Prefect UI renders.

A report that only names ``/abs/path/plot.png`` is useless to someone reading the UI from another
machine. :func:`embed_png` returns markdown showing the image itself, downscaled to fit the
artifact page (``max_px`` on the longer side) and re-encoded until it fits ``max_bytes``; the
caption says both sizes and where the full-resolution file stays on disk.
:func:`embed_named_plots` does it for every ``.png`` path a report names in backticks (``Plots:
`a.png`, `b.png```), so a report body written in the core (no Prefect, no artifacts) gets its
images when :func:`tasks.reports.publish_tiered_report` publishes it.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

#: longer side of an embedded image, px: about the width of the artifact page
MAX_PX = 900
#: cap on one embedded image's PNG bytes (the base64 text is 4/3 of it)
MAX_BYTES = 150_000
#: smallest longer side tried before giving up on embedding
MIN_PX = 240

_PNG_REF = re.compile(r"`([^`\n]+\.png)`")


def _fmt_kb(n: int) -> str:
    return f"{n / 1000:.0f} kB" if n >= 1000 else f"{n} B"


def shrink_png(path: Path, *, max_px: int = MAX_PX, max_bytes: int = MAX_BYTES) -> bytes | None:
    """PNG bytes of ``path`` scaled to at most ``max_px`` (longer side) and ``max_bytes``.

    Halves the size (down to :data:`MIN_PX`) and then quantizes to 128 colours until the bytes
    fit; None if nothing fits.
    """
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        img = im.convert("RGBA") if im.mode not in ("RGB", "RGBA") else im.copy()
    side = max(img.size)
    target = min(max_px, side)
    while True:
        scaled = img
        if side > target:
            f = target / side
            scaled = img.resize(
                (max(1, round(img.width * f)), max(1, round(img.height * f))),
                Image.Resampling.LANCZOS,
            )
        for candidate in (scaled, scaled.convert("RGB").quantize(128)):
            buf = io.BytesIO()
            candidate.save(buf, format="PNG", optimize=True)
            if buf.tell() <= max_bytes:
                return buf.getvalue()
        if target <= MIN_PX:
            return None
        target = max(MIN_PX, target // 2)


def embed_png(
    path: str | Path,
    *,
    alt: str | None = None,
    max_px: int = MAX_PX,
    max_bytes: int = MAX_BYTES,
) -> str:
    """Markdown showing the PNG at ``path`` inside an artifact, with a caption naming the file.

    ``max_px`` and ``max_bytes`` must be positive. A missing or unreadable file, or one that does
    not fit ``max_bytes`` even at :data:`MIN_PX`, gives a line saying so instead of an image.
    """
    if max_px <= 0 or max_bytes <= 0:
        raise ValueError(
            f"embed_png: max_px={max_px} and max_bytes={max_bytes} must both be > 0 "
            f"(defaults {MAX_PX} px, {MAX_BYTES} bytes)"
        )
    p = Path(path)
    name = alt or p.stem.replace("_", " ")
    if not p.is_file():
        return f"*Plot `{p}` is not there (not written or removed).*"
    try:
        from PIL import Image

        with Image.open(p) as im:
            full = im.size
        data = shrink_png(p, max_px=max_px, max_bytes=max_bytes)
    except Exception as exc:  # noqa: BLE001 - a broken plot must not hide the report
        return f"*Plot `{p}` could not be read ({type(exc).__name__}: {exc}).*"
    size = p.stat().st_size
    if data is None:
        return (
            f"*Plot `{p}` ({full[0]}×{full[1]} px, {_fmt_kb(size)}) is too large to embed within "
            f"{_fmt_kb(max_bytes)}; open the file.*"
        )
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        shown = im.size
    uri = base64.b64encode(data).decode("ascii")
    return (
        f"![{name}](data:image/png;base64,{uri})\n\n"
        f"*{name}: shown {shown[0]}×{shown[1]} px, {_fmt_kb(len(data))} (embedded images are "
        f"capped at {max_px} px and {_fmt_kb(max_bytes)}); full resolution {full[0]}×{full[1]} px, "
        f"{_fmt_kb(size)}: `{p}`*"
    )


#: most images one artifact embeds (the page stays light: about MAX_IMAGES x MAX_BYTES)
MAX_IMAGES = 8


def embed_named_plots(markdown: str, *, max_images: int = MAX_IMAGES, **kw) -> str:
    """``markdown`` with each line that names ``.png`` files in backticks followed by the images.

    Lines inside fenced code blocks and lines already holding a ``data:`` image are left alone;
    each file is embedded once, at most ``max_images`` of them (a line says how many were not).
    """
    out: list[str] = []
    seen: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        out.append(line)
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or "data:image" in line:
            continue
        paths = [m for m in _PNG_REF.findall(line) if m not in seen]
        if paths:
            out.append("")
            for path in paths:
                seen.add(path)
                if len(seen) > max_images:
                    out += [f"*`{path}` not embedded: at most {max_images} images a report.*", ""]
                else:
                    out += [embed_png(path, **kw), ""]
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")
