"""Names safe for files, artifact keys, resource ids and concurrency limits.

One rule everywhere: lowercase letters, digits and single dashes (``GPU-Box.lab`` ->
``gpu-box-lab``), so a name written by one module is found by another.
"""

from __future__ import annotations

import re

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str, *, empty: str = "unnamed") -> str:
    """``text`` as lowercase letters, digits and single dashes; ``empty`` when nothing is left.

    Example:
        >>> slug("  Weird Host__Name! ")
        'weird-host-name'
        >>> slug("***", empty="host")
        'host'
    """
    return _NOT_SLUG.sub("-", text.lower()).strip("-") or empty
