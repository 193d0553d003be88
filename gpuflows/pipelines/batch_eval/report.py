"""The final report: decisions computed from results, next actions, plots, one verifiable archive.

Decisions (seed 000's names), each from the numbers, never typed in:

* integrity: ``READY_FOR_DUAL_REVIEW`` when the modality ablation passes *and* the expansion
  met its size and hard share; else ``NEEDS_MORE_FIXES`` with the failing checks;
* baseline: ``BASELINE_ESTABLISHED`` when every SLO check passes on its confidence bound; else
  ``SLO_VIOLATION`` naming each failed check.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from gpuflows.core.evidence.checks import CheckResult, checks_table  # noqa: E402
from gpuflows.core.evidence.digest import bytes_digest, file_digest  # noqa: E402
from gpuflows.core.evidence.trust import TrustAssessment  # noqa: E402
from gpuflows.core.store.io import atomic_write_bytes  # noqa: E402

READY, FIXES = "READY_FOR_DUAL_REVIEW", "NEEDS_MORE_FIXES"
ESTABLISHED, VIOLATION = "BASELINE_ESTABLISHED", "SLO_VIOLATION"


class Decisions(BaseModel):
    integrity: str
    integrity_reasons: list[str]
    baseline: str
    baseline_reasons: list[str]
    next_actions: list[str]


def decide(
    integrity_checks: list[CheckResult],
    slo_checks: list[CheckResult],
    tiers: dict[str, TrustAssessment],
) -> Decisions:
    """The two decisions and the next actions, from the checks and the computed tiers."""
    bad_i = [c for c in integrity_checks if not c.passed]
    bad_s = [c for c in slo_checks if not c.passed]
    actions = []
    if bad_i:
        actions += [f"fix {c.name}: {c.reason}" for c in bad_i]
    else:
        actions.append(
            "dual review of the integrity result: two reviewers sign through the run's "
            "pause-for-input (tasks.review) once its tier is T2"
        )
    for c in bad_s:
        if c.name == "slo_error_rate" and c.numbers.get("errors", 1) == 0:
            actions.append(f"measure more requests: {c.reason}")
        else:
            actions.append(f"bring {c.name} within its SLO: {c.reason}")
    if not bad_s:
        actions.append("set production alerts from the stored baseline")
    lacking: dict[str, list[str]] = {}
    for name, a in tiers.items():
        for m in a.missing_for_next:
            lacking.setdefault(m, []).append(f"{name} ({a.tier.value})")
    for m, names in lacking.items():
        actions.append(f"for the next tier of {', '.join(names)}: {m}")
    return Decisions(
        integrity=READY if not bad_i else FIXES,
        integrity_reasons=[c.reason for c in (bad_i or integrity_checks)],
        baseline=ESTABLISHED if not bad_s else VIOLATION,
        baseline_reasons=[c.reason for c in (bad_s or slo_checks)],
        next_actions=list(dict.fromkeys(actions)),
    )


def _save(fig, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return str(path)


def plot_latency(latencies_ms: list[float], failed: int, slo_ms: float, path: Path) -> str:
    """Latency histogram of every answered request, the SLO line, failures stated."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if latencies_ms:
        ax.hist(latencies_ms, bins=min(40, max(5, len(latencies_ms) // 4)), color="#4C72B0")
        ax.axvline(np.percentile(latencies_ms, 95), color="k", ls=":", label="p95 (answered)")
    ax.axvline(slo_ms, color="#C44E52", ls="--", label=f"SLO p95 < {slo_ms:g} ms")
    ax.set_xlabel("latency, arrival to answer (ms)")
    ax.set_ylabel("requests")
    ax.set_title(f"server scenario: {len(latencies_ms)} answered, {failed} failed (breaches)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_ablation(drops: list[dict], threshold: float, path: Path) -> str:
    """Mean drop of nDCG@10 per ablation with its 95 % CI, and the threshold."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [d["ablation"] for d in drops]
    mean = np.array([d["mean_drop"] for d in drops])
    lo = mean - np.array([d["ci_low"] for d in drops])
    hi = np.array([d["ci_high"] for d in drops]) - mean
    colours = ["#55A868" if d["passed"] else "#C44E52" for d in drops]
    ax.bar(names, mean, yerr=[lo, hi], color=colours, capsize=4)
    ax.axhline(threshold, color="k", ls="--", label=f"threshold {threshold:g}")
    ax.set_ylabel("nDCG@10 drop (95 % CI)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_hard_easy(ndcg: list[float], hard: list[bool], threshold: float, path: Path) -> str:
    """nDCG@10 of the expanded set's hard and easy queries."""
    x, h = np.asarray(ndcg), np.asarray(hard, bool)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    groups = [x[h], x[~h]]
    ax.boxplot([g if len(g) else [np.nan] for g in groups])
    ax.set_xticks([1, 2], [f"hard (n={h.sum()})", f"easy (n={(~h).sum()})"])
    ax.axhline(threshold, color="#C44E52", ls="--", label=f"hard: nDCG@10 < {threshold:g}")
    ax.set_ylabel("nDCG@10")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_archive(out_dir: Path, name: str = "outputs.zip") -> dict[str, Any]:
    """Zip every file of ``out_dir`` (but the archive) with ``MANIFEST.json`` of their digests."""
    files = sorted(p for p in out_dir.rglob("*") if p.is_file() and p.name != name)
    manifest = {str(p.relative_to(out_dir)): file_digest(p) for p in files}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for p in files:
            z.write(p, str(p.relative_to(out_dir)))
        z.writestr("MANIFEST.json", json.dumps(manifest, indent=2, sort_keys=True))
    data = buf.getvalue()
    path = atomic_write_bytes(out_dir / name, data)
    return {"path": str(path), "digest": bytes_digest(data), "files": manifest}


def tier_line(name: str, a: TrustAssessment) -> str:
    lacks = "; ".join(a.missing_for_next) or "nothing"
    return f"| {name} | **{a.tier.value}** | {lacks} |"


def render(
    *,
    decisions: Decisions,
    tiers: dict[str, TrustAssessment],
    expansion: dict,
    ablation: dict,
    serving: dict,
    slo: list[CheckResult],
    lite: dict | None,
    files: dict[str, str],
) -> str:
    """The final report's markdown body (the tiered wrapper adds the overall tier and lock)."""
    e, a = expansion, ablation
    lines = [
        f"**Integrity: {decisions.integrity}** — " + "; ".join(decisions.integrity_reasons),
        "",
        f"**Production baseline: {decisions.baseline}** — " + "; ".join(decisions.baseline_reasons),
        "",
        "| section | tier | what it lacks for the next tier |",
        "|---|---|---|",
        *[tier_line(n, t) for n, t in tiers.items()],
        "",
        "## Set expansion",
        "",
        f"{e['base_size']} → **{e['achieved_size']}** queries (target {e['target_size']}); hard "
        f"share **{e['achieved_hard_share']:.1%}** (target {e['target_hard_share']:.0%}); hard = "
        f"{e['hard_rule']}. Composed {e['composed']}, {e['duplicates_dropped']} duplicates "
        f"dropped. Minimum detectable effect (paired t, α 0.05, power 0.8, sd of per-query "
        f"nDCG differences {e['mde_sd']:.3f}): **{e['mde']:.4f}** nDCG@10. Note: {e['note']}.",
        "",
        "## Modality ablation (nDCG@10, per query, paired)",
        "",
        f"Baseline nDCG@10 {a['baseline_ndcg10']:.4f} over {len(a['query_ids'])} queries; pass "
        f"when each lower 95 % bound > {a['threshold']:g}.",
        "",
        "| ablation | mean drop | 95 % CI | CI method | p (b+1)/(N+1) | p Holm | pass |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {d['ablation']} | {d['mean_drop']:.4f} | [{d['ci_low']:.4f}, {d['ci_high']:.4f}] "
            f"| {d['ci_method']} | {d['p_value']:.4g} | {d['p_holm']:.4g} | "
            f"{'pass' if d['passed'] else '**FAIL**'} |"
            for d in a["drops"]
        ],
        "",
        "## Production baseline",
        "",
        "| scenario | requests | failed | p50 ms (≤ bound) | p95 ms (≤ bound) | p99 ms | "
        "throughput q/s | nDCG@10 | compliance@10 |",
        "|---|---|---|---|---|---|---|---|---|",
        *[_scenario_row(s) for s in serving.values()],
        "",
        "p99 is shown only from 299 requests; bounds are distribution-free 95 % upper bounds "
        "over every request (failed = breach). Gain: linear relevance, ties broken by list "
        "position after making scores strictly decreasing.",
        "",
        checks_table(slo),
        "",
    ]
    if lite:
        lines += ["## CoTRR-Lite", "", checks_table(lite["checks"]), "", lite["note"], ""]
    lines += ["## Next actions", "", *[f"- {x}" for x in decisions.next_actions], ""]
    lines += ["## Files", "", *[f"- {k}: `{v}`" for k, v in files.items()]]
    return "\n".join(lines)


def _scenario_row(s: dict) -> str:
    p = s["bounds"]["percentiles"]

    def cell(name: str) -> str:
        b = p.get(name, {})
        if not b.get("reported"):
            return "n/a (n < 299)"
        est, up = b.get("estimate_ms"), b.get("upper_ms")
        return f"{_f(est)} (≤ {_f(up)})"

    return (
        f"| {s['scenario']} | {s['requests']} | {s['failed']} | {cell('p50')} | {cell('p95')} | "
        f"{cell('p99')} | {s['throughput_qps']:.2f} | {_f(s['ndcg10'], 4)} | "
        f"{_f(s['compliance10'], 4)} |"
    )


def _f(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"
