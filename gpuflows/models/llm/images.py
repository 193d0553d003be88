"""Images in language-model requests: one canonical form, and the OpenAI wire form.

Canonical (what :class:`~gpuflows.models.llm.config.LLMRequest` holds): ``images`` is a tuple of
encoded image bytes (PNG, JPEG, GIF, WebP, BMP, TIFF), and each image's place in the chat is a
``{"type": "image"}`` content part of a message (the Hugging Face processors' chat-template form),
the k-th image part standing for ``images[k]``.

Accepted on the way in (:func:`normalize_images`, run by the request's validator):

* ``images`` entries as bytes, a ``data:image/...;base64,`` URL, or a file path (read now, so
  the request carries the bytes and its cache key their digest, never the path);
* OpenAI content parts ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``
  in ``messages`` (decoded into ``images``; remote ``http(s)://`` URLs are refused: nothing is
  fetched, the hosts are offline);
* ``images`` with messages that have no image part: the images go first in the last user
  message's content (the LLaVA convention), before its text.

On the way out :func:`openai_messages` turns the canonical form back into OpenAI content parts
with base64 data URLs (the endpoint client sends these). :func:`image_digests` are the SHA-256
of the bytes: the call cache keys use them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from pathlib import Path
from typing import Any

#: PIL format name -> MIME type of the formats a request may carry.
MIME = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}


def image_format(data: bytes, *, where: str = "image") -> str:
    """The PIL format of encoded image bytes (reads the header only); ValueError when none."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError(f"{where}: the image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = str(im.format)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{where}: not a readable image ({exc})") from None
    if fmt not in MIME:
        raise ValueError(f"{where}: image format {fmt} is not one of {sorted(MIME)}")
    return fmt


def data_url(data: bytes) -> str:
    """``data:image/<fmt>;base64,...`` of encoded image bytes."""
    return f"data:{MIME[image_format(data)]};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_url(url: str, *, where: str = "image_url") -> bytes:
    """The bytes of a base64 image data URL; ValueError naming ``where`` otherwise."""
    if url.startswith(("http://", "https://")):
        raise ValueError(
            f"{where}: remote image URL {url[:80]!r} is not fetched (offline); send the image "
            "itself as a data URL, data:image/png;base64,..."
        )
    head, sep, body = url.partition(",")
    if not (url.startswith("data:image/") and sep and head.endswith(";base64")):
        raise ValueError(
            f"{where}: {url[:40]!r}... is not a base64 image data URL (data:image/png;base64,...)"
        )
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{where}: the data URL's base64 does not decode ({exc})") from None


def image_bytes(ref: Any, *, where: str) -> bytes:
    """Bytes of one ``images`` entry: bytes, a data URL, or a file path."""
    if isinstance(ref, bytes | bytearray | memoryview):
        data = bytes(ref)
    elif isinstance(ref, str) and ref.startswith(("data:", "http://", "https://")):
        data = decode_data_url(ref, where=where)
    elif isinstance(ref, str | Path):
        p = Path(ref).expanduser()
        if not p.is_file():
            raise ValueError(f"{where}: no image file at {str(p)!r}")
        data = p.read_bytes()
    else:
        raise ValueError(
            f"{where}: give image bytes, a data URL or a path, not {type(ref).__name__}"
        )
    image_format(data, where=where)
    return data


def image_digests(images: tuple[bytes, ...]) -> list[str]:
    """SHA-256 hex digest of each image's bytes (what the cache keys hold)."""
    return [hashlib.sha256(b).hexdigest() for b in images]


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [dict(p) for p in content]


def normalize_images(data: dict[str, Any]) -> dict[str, Any]:
    """A request's raw fields with its images in the canonical form (see the module docstring)."""
    rid = data.get("id")
    given = [
        image_bytes(r, where=f"request {rid!r}: images[{i}]")
        for i, r in enumerate(data.get("images") or ())
    ]
    messages = data.get("messages")
    if messages is None:
        if given:
            raise ValueError(
                f"request {rid!r}: images need chat messages (the image goes in a message); "
                "give messages instead of a raw prompt"
            )
        return data | {"images": ()}
    out_msgs: list[Any] = []
    from_urls: list[bytes] = []
    placed = 0
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list | tuple):
            out_msgs.append(m)
            continue
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "image_url":
                url = part.get("image_url")
                url = url.get("url") if isinstance(url, dict) else url
                where = f"request {rid!r}: messages[{i}].content[{j}]"
                from_urls.append(image_bytes(str(url or ""), where=where))
                parts.append({"type": "image"})
            elif kind == "image":
                placed += 1
                parts.append(dict(part))
            else:
                parts.append(part)
        out_msgs.append(dict(m) | {"content": parts})
    if from_urls and given:
        raise ValueError(
            f"request {rid!r}: images given both in images and as image_url parts; use one"
        )
    images = from_urls or given
    if given and placed == 0:  # no place named: the images go first in the last user message
        users = [
            k for k, m in enumerate(out_msgs) if isinstance(m, dict) and m.get("role") == "user"
        ]
        if not users:
            raise ValueError(f"request {rid!r}: images need a user message to go in")
        k = users[-1]
        lead = [{"type": "image"} for _ in given]
        out_msgs[k] = dict(out_msgs[k]) | {"content": lead + _parts(out_msgs[k].get("content"))}
        placed = len(given)
    slots = placed + len(from_urls)
    if slots != len(images):
        raise ValueError(
            f"request {rid!r}: {slots} image part(s) in messages but {len(images)} image(s); "
            "give one {'type': 'image'} part per image, in order"
        )
    return data | {"messages": tuple(out_msgs), "images": tuple(images)}


def openai_messages(messages: tuple[dict[str, Any], ...], images: tuple[bytes, ...]) -> list:
    """The messages with each ``{"type": "image"}`` part as an OpenAI ``image_url`` part."""
    it = iter(images)
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list | tuple):
            parts = [
                {"type": "image_url", "image_url": {"url": data_url(next(it))}}
                if isinstance(p, dict) and p.get("type") == "image"
                else dict(p)
                for p in content
            ]
            out.append(dict(m) | {"content": parts})
        else:
            out.append(dict(m))
    return out
