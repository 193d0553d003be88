"""Model moves of two-stage-eval: naive (per pair) vs per-category (the seed) vs ours, one run.

On the same benchmark sizes and the same two models, a :class:`gpuflows.residency.ResidencyManager`
with a budget that holds one model but not both is driven through each schedule's sequence of
model uses (:func:`gpuflows.move_plan.simulate`); every move is the real ``.to(device)`` of the
real models, timed (CUDA synchronised). Printed per schedule: swaps, transfers, GB moved, seconds
and GB/s; the anchor is the seed's per-category order (ratio = its move seconds / ours). On a CUDA
device the ``ours`` order also runs with pinned and with pageable host copies (GB/s of each).

Without a GPU the device is the host: moves are bookkeeping (counts exact, seconds ~0), said so.

    python bench/two_stage_moves.py [--preset smoke|full] [--device auto]
        [--edit-model DIR] [--reward-model DIR]      # default: the tiny synthetic models

Writes ``bench/results/two-stage-moves-<device>.json``; the last line printed is the summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from gpuflows import move_plan  # noqa: E402
from gpuflows.devices import choose_device  # noqa: E402
from gpuflows.edit_bench_synth import SIZES  # noqa: E402
from gpuflows.envlock import git_info  # noqa: E402
from gpuflows.residency import ResidencyManager, nbytes_of  # noqa: E402


def run_schedule(name, sizes, models, device, capacity, pin) -> dict:
    mgr = ResidencyManager(device, capacity, pin_host=pin)
    for key, model in models.items():
        mgr.register(key, model, nbytes_of(model))
    t0 = time.perf_counter()
    swaps = move_plan.simulate(name, sizes, mgr)
    wall = time.perf_counter() - t0
    for key in list(models):  # leave both on the host for the next schedule
        mgr.evict(key)
    loads = [m for m in mgr.moves if m.direction == "load"]
    s = mgr.summary()
    return {
        "schedule": name,
        "swaps": swaps,
        "transfers": s["transfers"],
        "gb_moved": s["gb_moved"],
        "move_seconds": s["seconds"],
        "gb_per_s": s["gb_per_s"],
        "load_gb_per_s": (
            sum(m.nbytes for m in loads) / 1e9 / sum(m.seconds for m in loads)
            if loads and sum(m.seconds for m in loads) > 0
            else None
        ),
        "wall_s": wall,
        "same_device": s["same_device"],
        "pinned": pin,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="full", choices=sorted(SIZES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--edit-model")
    ap.add_argument("--reward-model")
    a = ap.parse_args(argv)

    from gpuflows.edit_models import load_edit_model
    from gpuflows.reward_models import load_reward_model
    from gpuflows.tiny_models import (
        build_tiny_edit_pipeline,
        build_tiny_reward_model,
        default_model_dir,
    )

    choice = choose_device(a.device)
    edit_dir = a.edit_model or build_tiny_edit_pipeline(default_model_dir("tiny-edit"))
    reward_dir = a.reward_model or build_tiny_reward_model(default_model_dir("tiny-reward"))
    models = {
        "edit": load_edit_model(edit_dir, device="cpu"),
        "score": load_reward_model(reward_dir, device="cpu"),
    }
    sizes = SIZES[a.preset]
    need = {k: nbytes_of(m) for k, m in models.items()}
    capacity = max(need.values()) + 1  # one model fits, both do not
    print(
        f"{sum(sizes.values())} pairs {sizes}; edit {need['edit'] / 1e9:.4f} GB, reward "
        f"{need['score'] / 1e9:.4f} GB; budget {capacity / 1e9:.4f} GB on {choice.device} "
        f"({choice.name})"
    )
    cuda = choice.kind == "cuda"
    rows = []
    for name in move_plan.SCHEDULES:
        r = run_schedule(name, sizes, models, choice.device, capacity, cuda)
        planned = move_plan.swaps(name, sizes, need["edit"], need["score"], capacity)
        assert r["swaps"] == planned, (name, r["swaps"], planned)
        rows.append(r)
        print(
            f"{name:>12}: {r['swaps']:4d} swaps, {r['transfers']:4d} transfers, "
            f"{r['gb_moved']:.3f} GB in {r['move_seconds']:.4f} s"
            + (f" ({r['gb_per_s']:.2f} GB/s)" if r["gb_per_s"] else "")
        )
    pin_cmp = None
    if cuda:
        pin_cmp = {
            "pinned": run_schedule("ours", sizes, models, choice.device, capacity, True),
            "pageable": run_schedule("ours", sizes, models, choice.device, capacity, False),
        }
        print(
            f"host->device load, ours: pinned {pin_cmp['pinned']['load_gb_per_s']:.2f} GB/s, "
            f"pageable {pin_cmp['pageable']['load_gb_per_s']:.2f} GB/s"
        )
    by = {r["schedule"]: r for r in rows}
    ours, anchor = by["ours"], by["per_category"]
    ratio_swaps = anchor["swaps"] / ours["swaps"] if ours["swaps"] else None
    ratio_s = anchor["move_seconds"] / ours["move_seconds"] if ours["move_seconds"] > 0 else None
    tag = "cpu" if not cuda else choice.name.lower().replace("nvidia ", "").split()[0]
    info = git_info(REPO_ROOT)
    result = {
        "name": "two-stage-moves",
        "device": choice.name,
        "git_commit": (info.commit or "unknown")[:7] + ("-dirty" if info.dirty else ""),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            "pairs": sizes,
            "models": {"edit": str(edit_dir), "reward": str(reward_dir)},
            "need_bytes": need,
            "capacity_bytes": capacity,
        },
        "figures": {r["schedule"]: r for r in rows},
        "pinned_vs_pageable": pin_cmp,
        "anchor": {"name": "per-category order (seed 004)", "swaps": anchor["swaps"]},
        "ratio": {"swaps": ratio_swaps, "move_seconds": ratio_s},
        "ratio_note": "anchor / ours",
        "notes": (
            ["no GPU: device == host, moves are bookkeeping (counts exact, seconds ~0)"]
            if not cuda
            else []
        ),
    }
    out = REPO_ROOT / "bench" / "results" / f"two-stage-moves-{tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    print(
        f"two_stage_moves: swaps naive {by['naive']['swaps']}, per-category {anchor['swaps']}, "
        f"ours {ours['swaps']} ({ratio_swaps and round(ratio_swaps, 1)}x fewer than the seed); "
        f"move seconds naive {by['naive']['move_seconds']:.3f}, per-category "
        f"{anchor['move_seconds']:.3f}, ours {ours['move_seconds']:.3f} on {choice.device}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
