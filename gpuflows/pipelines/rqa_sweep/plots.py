"""Plots of a sweep: effect-size heatmap over the grid, distributions of the top combinations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gpuflows.pipelines.rqa_sweep.schema import GROUPS
from gpuflows.pipelines.rqa_sweep.tables import L_MIN_FREE


def plot_sweep(
    tidy: pd.DataFrame, features: pd.DataFrame, stats: pd.DataFrame, out: Path, top_n: int = 3
) -> tuple[list[str], pd.DataFrame]:
    """Effect-size heatmap over the grid and per-group distributions of the top combinations."""
    from matplotlib.figure import Figure

    kw = stats[(stats["test"] == "kruskal_wallis") & stats["effect"].notna()]
    top = kw.sort_values(["effect", "p"], ascending=[False, True]).head(top_n)
    if top.empty:
        return [], top
    best = top.iloc[0]
    cell = kw[
        (kw["series"] == best["series"])
        & (kw["metric"] == best["metric"])
        & (kw["l_min"] == (best["l_min"] if best["metric"] not in L_MIN_FREE else kw["l_min"]))
    ]
    grid = cell.pivot_table(index=["m", "tau"], columns="eps", values="effect", aggfunc="max")
    fig = Figure(figsize=(max(6.0, 2.5 + 0.5 * grid.shape[1]), 1.5 + 0.35 * grid.shape[0]))
    ax = fig.add_subplot()
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="viridis", vmin=0)
    ax.set_xticks(range(grid.shape[1]), [f"{e:g}" for e in grid.columns], rotation=90)
    ax.set_yticks(range(grid.shape[0]), [f"m={m} τ={t}" for m, t in grid.index])
    ax.set_xlabel("ε")
    ax.set_title(f"KW ε² of {best['metric']} ({best['series']}, l_min={best['l_min']})", fontsize=9)
    fig.colorbar(im, ax=ax, label="ε² (Kruskal-Wallis)")
    fig.tight_layout()
    heat = out / "effect_heatmap.png"
    fig.savefig(heat, dpi=100)

    fig = Figure(figsize=(4 * len(top), 3.5))
    for i, (_, r) in enumerate(top.iterrows()):
        ax = fig.add_subplot(1, len(top), i + 1)
        if r["series"] == "derived":
            src = features[features["feature"] == r["metric"]].rename(columns={"value": "v"})
        else:
            src = tidy[tidy["series"] == r["series"]].rename(columns={r["metric"]: "v"})
        sel = src[(src["m"] == r["m"]) & (src["tau"] == r["tau"]) & (src["eps"] == r["eps"])]
        if r["metric"] not in L_MIN_FREE:
            sel = sel[sel["l_min"] == r["l_min"]]
        else:
            sel = sel[sel["l_min"] == sel["l_min"].min()]
        data = [sel.loc[sel["group"] == g, "v"].dropna().to_numpy() for g in GROUPS]
        ax.boxplot(data, tick_labels=list(GROUPS))
        for j, d in enumerate(data):
            ax.plot(np.full(d.size, j + 1.0), d, "o", alpha=0.6)
        ax.set_title(
            f"{r['metric']} {r['series']} m={r['m']} τ={r['tau']} ε={r['eps']:g} l={r['l_min']}"
            f"\nε²={r['effect']:.2f} q={r['q']:.2g}",
            fontsize=8,
        )
    fig.tight_layout()
    dist = out / "top_distributions.png"
    fig.savefig(dist, dpi=100)
    return [str(heat), str(dist)], top
