"""The run's report: markdown body (tables, call counts, graphs named for embedding) and payload."""

from __future__ import annotations

import math
from typing import Any

from gpuflows.pipelines.argo_experiment.plots import STYLE

REPORT_KEY = "argo-experiment-report"
PROGRESS_KEY = "argo-experiment-progress"
MONITOR_KEY = "argo-experiment-monitor"
REPORT_TITLE = "ARGO adaptive-RAG experiment"


def _f(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _table(agg: list[dict[str, Any]]) -> str:
    head = (
        "| difficulty | strategy | c_r | n | accuracy [95% CI] | parse fail | retrievals "
        "[95% CI] | reasoning | cost |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {a['difficulty']} | {STYLE[a['strategy']][0]} | {a['c_r']:.4f} | {a['n']} | "
        f"{a['accuracy']:.3f} [{_f(a['acc_lo'])}, {_f(a['acc_hi'])}] | "
        f"{a['parse_fail_rate']:.2f} | {a['mean_retrievals']:.2f} [{_f(a['ret_lo'], 2)}, "
        f"{_f(a['ret_hi'], 2)}] | {a['mean_reasoning']:.2f} | {a['mean_cost']:.3f} |\n"
        for a in agg
    )
    return head + body


def report_body(
    *,
    params: dict[str, Any],
    inputs: dict[str, Any],
    thresholds: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    agg: list[dict[str, Any]],
    majority: dict[str, dict[str, Any]],
    totals: dict[str, Any],
    model: dict[str, Any],
    plots: dict[str, Any],
    files: dict[str, str],
    wall_s: float,
) -> str:
    """Markdown (graphs named in backticks, so the published artifact shows them)."""
    t = totals
    thr = "".join(
        f"| {r['c_r']:.4f} | {r['theta_cont']:.4f} | {r['theta_star']:.4f} | {r.get('group', '—')} |\n"
        for r in thresholds
    )
    grp = "".join(
        f"| {g['name']} | {', '.join(g['strategies'])} | {len(g['c_r'])} |\n" for g in groups
    )
    maj = ", ".join(
        f"{k}: option {v['option']} = {v['accuracy']:.2f} (n={v['n']})" for k, v in majority.items()
    )
    missing = plots.get("missing") or {}
    ratio = _f(t.get("calls_saved_ratio"), 1)
    return f"""## Result

{len(inputs["questions"])} questions ({inputs["difficulties"]}) x {len(params["strategies"])} strategies x
{len(params["c_r"])} c_r points x {len(params["seeds"])} seed(s) = {t["rows"]} scored rows, from
{t["episodes_run"]} distinct episodes. Model `{model.get("source")}` ({model.get("device")},
{model.get("dtype")}); decoding {params["decoding"]}; prompts {inputs["prompts_version"]}.
Wall time {wall_s:.1f} s.

**Model calls.** The seeds' way (every row its own episode, one call at a time): **{t["seed_way_calls"]}**
calls. This run: {t["requests"]} requests from the episodes, {t["shared_in_batch"]} shared inside a
batch (same state, same call), {t["cache_hits"]} answered by the call cache, **{t["model_calls"]}**
run by the model ({ratio}x fewer), in {t["generate_calls"]} batched `generate` calls;
{t["errors"]} errors.

Unparsed answers count as wrong (parse-failure rate per cell below). Majority-class baseline:
{maj}.

Graph 1.A, c_r vs accuracy: `{files["graph_1a"]}`

Graph 1.B, c_r vs mean retrieval calls: `{files["graph_1b"]}`

{"Strategies with no rows: " + str(missing) if missing else "Every panel shows every strategy asked for."}

## Aggregate

{_table(agg)}
## Thresholds (MDP, grid {params["grid"]}, quality {params["quality"]})

| c_r | theta_cont | theta_star | ARGO group |
|---|---|---|---|
{thr}
| group | strategies | c_r points served |
|---|---|---|
{grp}
## Data

Questions: {inputs["source"]}; {inputs["rows_read"]} rows read, {inputs["kept"]} kept, excluded
{inputs["excluded"] or "none"}. Corpus: {inputs["corpus"]}. Retrieval: {inputs["index"]} index,
top-{params["top_k"]}, success when the best chunk's cosine >= {params["success_threshold"]}.

Episodes: `{files["episodes"]}`; rows: `{files["rows"]}`; table: `{files["table"]}`.
"""
