"""Markdown tables that fit the Prefect UI's artifact page.

The UI does not wrap table cells: a long cell (the environment lock's package list, a check's
detail) is cut at the page edge. :func:`fit_tables` rewrites each table that has a cell longer
than ``max_cell`` characters into a list, one item per row, every value in full:

    - **packages** · value: gpuflows 0.1.0, prefect 3.9.1, torch 2.13.0+cpu, ...

Tables whose cells all fit stay tables. Fenced code blocks are left alone.
"""

from __future__ import annotations

import re

#: longest cell kept in a table (about what a 4-column table shows on the artifact page)
MAX_CELL = 48

_SEP = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") else body
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def _as_list(header: list[str], rows: list[list[str]]) -> list[str]:
    out = []
    for row in rows:
        first = row[0] if row else ""
        rest = [f"{h}: {v}" for h, v in zip(header[1:], row[1:], strict=False) if v and v != "—"]
        out.append(f"- **{first}**" + (" · " + " · ".join(rest) if rest else ""))
    return out


def fit_tables(markdown: str, *, max_cell: int = MAX_CELL) -> str:
    """``markdown`` with every table holding a cell longer than ``max_cell`` turned into a list."""
    lines = markdown.splitlines()
    out: list[str] = []
    i, fenced = 0, False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fenced = not fenced
        is_table = (
            not fenced
            and line.lstrip().startswith("|")
            and i + 1 < len(lines)
            and _SEP.match(lines[i + 1])
        )
        if not is_table:
            out.append(line)
            i += 1
            continue
        j = i + 2
        while j < len(lines) and lines[j].lstrip().startswith("|"):
            j += 1
        header, rows = _cells(line), [_cells(x) for x in lines[i + 2 : j]]
        if any(len(c) > max_cell for r in rows for c in r):
            out += _as_list(header, rows)
        else:
            out += lines[i:j]
        i = j
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")
