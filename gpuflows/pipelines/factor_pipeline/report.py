"""The factor-pipeline summary: per-step counts, rates, error kinds, and the computed tier."""

from __future__ import annotations

from typing import Any


def _rate(x: float | None, unit: str) -> str:
    return "-" if not x else f"{x:,.2f} {unit}"


def build_body(steps: dict[str, dict[str, Any]], notes: list[str]) -> str:
    """Markdown body (the tier and checks are added by the publisher)."""
    rows = ["| step | in | out | errors | rate | seconds |", "|---|---:|---:|---:|---:|---:|"]
    p, s, q = steps.get("probe"), steps.get("sample"), steps.get("qa")
    if p:
        rows.append(
            f"| 1 probe | {p['images_in']} | {p['records']} ({p['failures']} failures) | "
            f"{p.get('errors', 0)} | "
            f"{_rate(p.get('images_per_s'), 'img/s')} | {p['seconds']:.1f} |"
        )
    if s:
        rows.append(
            f"| 2 sample | {s['records_in']} | {s['written']} | - | "
            f"{_rate(s.get('records_per_s'), 'rec/s')} | {s['seconds']:.2f} |"
        )
    if q:
        rows.append(
            f"| 3 qa | {q['records']} | {q['qa']} | {q['errors']} | "
            f"{_rate(q.get('records_per_s'), 'rec/s')} | {q['seconds']:.1f} |"
        )
    parts = ["## Steps", "\n".join(rows)]
    if q:
        kinds = q.get("errors_by_kind") or {}
        parts += [
            "## QA outcomes",
            f"- qa.jsonl: {q['qa']} records, errors.jsonl: {q['errors']} records "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items())) or 'none'} this run)",
            f"- sent this run: {q['sent_now']}, skipped (had an outcome): "
            f"{q['skipped_with_outcome']}, torn lines repaired: {q['torn_lines_repaired']}",
            "- output order: completion order; every line carries its input `id`",
        ]
        for b in q.get("backends", []):
            counts = b.get("counts") or {}
            if b.get("backend") == "endpoint":
                parts.append(
                    f"- {b.get('model')}: {counts.get('calls', 0)} calls, "
                    f"{counts.get('retries', 0)} retries, in flight max "
                    f"{counts.get('in_flight_max', 0)} (limit {b.get('concurrency')})"
                )
    if p:
        kinds = p.get("errors_by_kind") or {}
        parts += [
            "## Probe",
            f"- device {p['device']}, {p['groups']} shard group(s), "
            f"model load {p['load_s']:.1f} s; manifest `{p['manifest']}`",
            f"- answered {p.get('answered', p['records'])}, errors {p.get('errors', 0)} "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items())) or 'none'}): "
            "a record whose calls fail after their retries is in `errors/<shard>.jsonl`",
        ]
    if notes:
        parts += ["## Notes", *[f"- {n}" for n in notes]]
    return "\n\n".join(parts)
