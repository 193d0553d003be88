"""Graph 1.A (c_r vs accuracy, 95 % Wilson CI, one panel per difficulty, all four strategies)
and Graph 1.B (c_r vs mean retrieval calls, 95 % CI), as PNGs.

A strategy the run asked for that has no rows in a panel is not silently left out: the panel
says so in its title and :func:`plot_graphs` returns it under ``missing``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {
    "argo": ("ARGO", "tab:red", "o"),
    "always_retrieve": ("Always-Retrieve", "tab:blue", "s"),
    "always_reason": ("Always-Reason", "tab:green", "^"),
    "random": ("Random", "tab:gray", "D"),
}


def _panels(agg: list[dict], difficulties: list[str], strategies: list[str]) -> dict:
    out: dict[str, dict[str, list[dict]]] = {d: {s: [] for s in strategies} for d in difficulties}
    for a in agg:
        if a["difficulty"] in out and a["strategy"] in out[a["difficulty"]]:
            out[a["difficulty"]][a["strategy"]].append(a)
    return out


def plot_graphs(
    agg: list[dict[str, Any]],
    *,
    difficulties: list[str],
    strategies: list[str],
    out_dir: str | Path,
    majority: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write ``graph_1a_accuracy.png`` and ``graph_1b_retrievals.png``; what each panel drew."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    panels = _panels(agg, difficulties, strategies)
    drawn: dict[str, dict[str, list[str]]] = {"1a": {}, "1b": {}}
    missing: dict[str, list[str]] = {}
    paths = {}
    specs = (
        ("1a", "accuracy", "acc_lo", "acc_hi", "Accuracy (95% Wilson CI)", "graph_1a_accuracy.png"),
        (
            "1b",
            "mean_retrievals",
            "ret_lo",
            "ret_hi",
            "Mean retrieval calls (95% CI)",
            "graph_1b_retrievals.png",
        ),
    )
    for graph, y, lo, hi, ylabel, name in specs:
        n = len(difficulties)
        fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False, sharey=True)
        for ax, diff in zip(axes[0], difficulties, strict=True):
            labels = []
            gone = []
            for i, strat in enumerate(strategies):
                rows = sorted(panels[diff][strat], key=lambda a: a["c_r"])
                label, color, marker = STYLE[strat]
                if not rows:
                    gone.append(label)
                    continue
                xs = [r["c_r"] for r in rows]
                ys = [r[y] for r in rows]
                # baselines are flat in c_r by construction; offset markers so none hides another
                jitter = (i - (len(strategies) - 1) / 2) * 0.0004
                err = [[r[y] - r[lo] for r in rows], [r[hi] - r[y] for r in rows]]
                ax.errorbar(
                    [x + jitter for x in xs],
                    ys,
                    yerr=err,
                    label=label,
                    color=color,
                    marker=marker,
                    capsize=3,
                    lw=1.4,
                    ms=5,
                )
                labels.append(label)
            if graph == "1a" and majority and diff in majority:
                ax.axhline(
                    majority[diff]["accuracy"], color="black", ls=":", lw=1, label="majority class"
                )
            sizes = [r[0]["n"] for r in panels[diff].values() if r]
            title = f"{diff} (n={max(sizes) if sizes else 0} per point)"
            if gone:
                title += f"\nno rows: {', '.join(gone)}"
                missing.setdefault(graph, []).extend(f"{diff}:{g}" for g in gone)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("retrieval cost c_r")
            ax.grid(alpha=0.3)
            drawn[graph][diff] = labels
        axes[0][0].set_ylabel(ylabel)
        axes[0][-1].legend(fontsize=8, loc="best")
        fig.suptitle(
            "Graph 1.A: cost vs accuracy"
            if graph == "1a"
            else "Graph 1.B: cost vs retrieval calls",
            fontsize=11,
        )
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths[graph] = str(path)
    return {"paths": paths, "drawn": drawn, "missing": missing}
