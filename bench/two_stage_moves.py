"""Model moves of two-stage-eval: naive (per pair) vs per-category (the seed) vs ours, one run.

On the same benchmark sizes and the same two models, a :class:`gpuflows.core.memory.residency.ResidencyManager`
with a budget that holds one model but not both is driven through each schedule's sequence of
model uses (:func:`gpuflows.pipelines.two_stage_eval.move_plan.simulate`); every move is the real ``.to(device)`` of the
models, timed (CUDA synchronised). Every run (schedule x variant) starts from fresh, equal model
objects, so no run reads host memory pinned by another.

Variants: on a CUDA device every schedule runs twice, "pinned" (host copies page-locked when the
models are registered, a step timed on its own and never inside a load or offload; offloads copy
back into those buffers) and "pageable" (plain host memory); GB/s of loads, offloads and swaps for
each. Without a GPU the device is the host: one "same-device" run, moves are bookkeeping (counts
exact, seconds ~0), and the pinned variant is skipped with its reason written down.

Sizes: ``tiny`` (default): the tiny synthetic models of :mod:`gpuflows.models.tiny` (or
``--edit-model`` / ``--reward-model`` folders), loaded afresh for every run. ``realistic``: random
weights in the shapes of InstructPix2Pix (SD 1.5 UNet with 8 input channels, VAE, CLIP ViT-L/14
text encoder; float16, ~2.13 GB) and Qwen2-VL-2B-Instruct (bfloat16, ~4.42 GB), built from configs
with no downloads; every run copies a template built once. With ``--preset full`` the naive order
moves ~3.5 TB per variant (540 swaps of ~6.5 GB): minutes per variant even pinned; ``--preset
smoke`` (10 pairs, 20 naive swaps) fits a short device check.

Transfers are the schedule's own (the initial load, then an offload and a load per swap), equal to
:func:`gpuflows.pipelines.two_stage_eval.move_plan.transfers`: the models are dropped at the end, not evicted. Figures carry
their unit in the key (``_bytes``, ``_s``, ``_gbps`` = GB/s with GB = 1e9 bytes; the JSON's
"units" says so); the anchor is the seed's per-category order, ratio = anchor / ours.

    python bench/two_stage_moves.py [--preset smoke|full] [--device auto] [--size tiny|realistic]
        [--edit-model DIR] [--reward-model DIR] [--out FILE]

Writes ``bench/results/two-stage-moves-<device>[-realistic][-smoke].json``; the last line printed
is the summary.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.record import provenance, write_result  # noqa: E402
from bench.two_stage_models import (  # noqa: E402
    REALISTIC_PARAMS,
    build_realistic,
    copy_factory,
    tiny_factory,
)
from gpuflows.core.hardware.devices import choose_device  # noqa: E402
from gpuflows.core.memory.model_size import nbytes_of  # noqa: E402
from gpuflows.core.memory.residency import MoveRecord, ResidencyManager, gb_per_s  # noqa: E402
from gpuflows.pipelines.two_stage_eval import move_plan  # noqa: E402
from gpuflows.pipelines.two_stage_eval.synth import SIZES  # noqa: E402

ANCHOR = "per_category"
#: variant name -> ResidencyManager(pin_host=...)
VARIANTS = {"pinned": True, "pageable": False, "same-device": False}
UNITS = {
    "*_bytes": "bytes",
    "*_s": "seconds",
    "*_gbps": "GB/s, GB = 1e9 bytes (bytes / seconds of the records named)",
    "swaps, transfers, loads, offloads, pinned_transfers, pin_steps": "count",
    "ratio.*": "anchor / ours, dimensionless (> 1: ours moves less)",
    "pinned_vs_pageable.*_ratio": "pinned / pageable, dimensionless",
}
# -- one run -------------------------------------------------------------------------------------


def _swap_records(moves: list[MoveRecord]) -> list[MoveRecord]:
    """The transfers of swaps: offloads followed by a load, and that load."""
    out: list[MoveRecord] = []
    pending: list[MoveRecord] = []
    for m in moves:
        if m.direction == "offload":
            pending.append(m)
        elif pending:
            out += [*pending, m]
            pending = []
    return out


def _figures(prefix: str, records: list[MoveRecord]) -> dict[str, Any]:
    return {
        f"{prefix}_bytes": sum(r.nbytes for r in records),
        f"{prefix}_s": sum(r.seconds for r in records),
        f"{prefix}_gbps": gb_per_s(records),
    }


def run_schedule(
    name: str,
    sizes: dict[str, int],
    make_models: Callable[[], dict[str, Any]],
    device: str,
    capacity: int,
    variant: str,
) -> dict[str, Any]:
    """One schedule on fresh models under one host-memory variant; its figures (units in keys)."""
    models = make_models()
    mgr = ResidencyManager(device, capacity, pin_host=VARIANTS[variant])
    for key, model in models.items():
        mgr.register(key, model, nbytes_of(model))
    t0 = time.perf_counter()
    swaps = move_plan.simulate(name, sizes, mgr)
    wall = time.perf_counter() - t0
    moves, pins = list(mgr.moves), list(mgr.pins)
    row = {
        "schedule": name,
        "variant": variant,
        "swaps": swaps,
        "transfers": len(moves),
        "loads": sum(m.direction == "load" for m in moves),
        "offloads": sum(m.direction == "offload" for m in moves),
        **_figures("moved", moves),
        **_figures("load", [m for m in moves if m.direction == "load"]),
        **_figures("offload", [m for m in moves if m.direction == "offload"]),
        **_figures("swap", _swap_records(moves)),
        "pinned_transfers": sum(m.pinned for m in moves),
        "pin_steps": len(pins),
        **_figures("pin", pins),
        "wall_s": wall,
        "same_device": bool(moves) and all(m.same_device for m in moves),
    }
    del models, mgr, moves, pins  # dropped, not evicted: no clean-up transfer; VRAM freed
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
    return row


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _total_gbps(rows: list[dict[str, Any]], prefix: str) -> float | None:
    secs = sum(r[f"{prefix}_s"] for r in rows)
    return sum(r[f"{prefix}_bytes"] for r in rows) / 1e9 / secs if secs > 0 else None


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="full", choices=sorted(SIZES))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", default="tiny", choices=["tiny", "realistic"])
    ap.add_argument("--edit-model", help="diffusers folder (tiny size only)")
    ap.add_argument("--reward-model", help="transformers folder (tiny size only)")
    ap.add_argument("--out", help="JSON path (default bench/results/two-stage-moves-<tag>.json)")
    a = ap.parse_args(argv)
    if a.size == "realistic" and (a.edit_model or a.reward_model):
        ap.error("--edit-model/--reward-model are for --size tiny; realistic builds its own")

    import torch

    choice = choose_device(a.device)
    cuda = choice.kind == "cuda"
    if a.size == "tiny":
        from gpuflows.models.tiny import (
            build_tiny_edit_pipeline,
            build_tiny_reward_model,
            default_model_dir,
        )

        edit_dir = a.edit_model or build_tiny_edit_pipeline(default_model_dir("tiny-edit"))
        reward_dir = a.reward_model or build_tiny_reward_model(default_model_dir("tiny-reward"))
        make = tiny_factory(Path(edit_dir), Path(reward_dir))
        probe = make()
        described = {"edit": str(edit_dir), "reward": str(reward_dir)}
    else:
        t0 = time.perf_counter()
        probe = build_realistic()
        print(f"built realistic random-weight models in {time.perf_counter() - t0:.1f} s")
        make = copy_factory(probe)
        described = {
            "edit": "InstructPix2Pix shapes (timbrooks/instruct-pix2pix: unet, vae, text_encoder), "
            "random weights, float16",
            "reward": "Qwen2-VL-2B-Instruct shapes, random weights, bfloat16",
            "param_count": REALISTIC_PARAMS,
        }
    need = {k: nbytes_of(m) for k, m in probe.items()}
    if a.size == "tiny":
        del probe  # the realistic template stays: every run copies it
    sizes = SIZES[a.preset]
    capacity = max(need.values()) + 1  # one model fits, both do not
    print(
        f"{sum(sizes.values())} pairs {sizes}; {a.size} models: edit {need['edit'] / 1e9:.4f} GB, "
        f"reward {need['score'] / 1e9:.4f} GB; budget {capacity / 1e9:.4f} GB on {choice.device} "
        f"({choice.name})"
    )
    skipped: list[dict[str, str]] = []
    if cuda:
        variants = ["pinned", "pageable"]
    else:
        variants = ["same-device"]
        skipped.append(
            {
                "variant": "pinned",
                "reason": f"device {choice.device} is not CUDA: page-locked host memory needs a "
                "CUDA runtime, and with device == host no bytes cross a bus",
            }
        )
        print(f"pinned variant skipped: {skipped[0]['reason']}")

    figures: dict[str, dict[str, dict[str, Any]]] = {v: {} for v in variants}
    for variant in variants:
        for name in move_plan.SCHEDULES:
            r = run_schedule(name, sizes, make, choice.device, capacity, variant)
            planned = (
                move_plan.swaps(name, sizes, need["edit"], need["score"], capacity),
                move_plan.transfers(name, sizes, need["edit"], need["score"], capacity),
            )
            assert (r["swaps"], r["transfers"]) == planned, (name, variant, r, planned)
            if variant == "pinned":  # every transfer read or wrote page-locked memory
                assert r["pinned_transfers"] == r["transfers"], (name, r)
            else:  # fresh models: nothing pinned by an earlier run is read
                assert r["pinned_transfers"] == 0 == r["pin_steps"], (name, r)
            figures[variant][name] = r
            pin = f"; pin {r['pin_bytes'] / 1e9:.3f} GB in {r['pin_s']:.3f} s"
            print(
                f"{variant:>11} {name:>12}: {r['swaps']:4d} swaps, {r['transfers']:4d} transfers, "
                f"{r['moved_bytes'] / 1e9:.3f} GB in {r['moved_s']:.4f} s (load "
                f"{_fmt(r['load_gbps'])}, offload {_fmt(r['offload_gbps'])}, swap "
                f"{_fmt(r['swap_gbps'])} GB/s)"
                + (pin if r["pin_steps"] else "")
                + (" [device == host: bookkeeping]" if r["same_device"] else "")
            )

    pin_cmp: dict[str, Any]
    if cuda:
        pin_cmp = {"over": "all schedules, bytes / seconds of the records"}
        for prefix in ("load", "offload", "swap", "moved"):
            p, q = (_total_gbps(list(figures[v].values()), prefix) for v in variants)
            pin_cmp |= {
                f"{prefix}_gbps": {"pinned": p, "pageable": q},
                f"{prefix}_ratio": _ratio(p, q),
            }
        print(
            f"pinned vs pageable, all schedules: load {_fmt(pin_cmp['load_gbps']['pinned'])} vs "
            f"{_fmt(pin_cmp['load_gbps']['pageable'])} GB/s, offload "
            f"{_fmt(pin_cmp['offload_gbps']['pinned'])} vs "
            f"{_fmt(pin_cmp['offload_gbps']['pageable'])} GB/s"
        )
    else:
        pin_cmp = {"skipped": skipped[0]["reason"]}

    first = figures[variants[0]]
    anchor, ours, naive = first[ANCHOR], first["ours"], first["naive"]
    ratio = {
        v: {
            key: _ratio(figures[v][ANCHOR][key], figures[v]["ours"][key])
            for key in ("swaps", "transfers", "moved_bytes", "moved_s")
        }
        for v in variants
    }
    tag = "cpu" if not cuda else choice.name.lower().replace("nvidia ", "").split()[0]
    tag += "-realistic" if a.size == "realistic" else ""
    tag += "" if a.preset == "full" else f"-{a.preset}"
    result = {
        "name": "two-stage-moves",
        "device": choice.name,
        "device_string": choice.device,
        "device_kind": choice.kind,
        **provenance(),
        "units": UNITS,
        "settings": {
            "size": a.size,
            "preset": a.preset,
            "pairs": sizes,
            "models": described,
            "need_bytes": need,
            "capacity_bytes": capacity,
            "variants": variants,
            "fresh_models": "every schedule x variant run builds its own, equal model objects",
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
        },
        "figures": figures,
        "pinned_vs_pageable": pin_cmp,
        "anchor": {
            "name": "per-category order (seed 004)",
            "schedule": ANCHOR,
            "swaps": anchor["swaps"],
            "transfers": anchor["transfers"],
            "moved_s": {v: figures[v][ANCHOR]["moved_s"] for v in variants},
        },
        "ratio": ratio,
        "ratio_note": "anchor / ours, per variant: > 1 means ours moves less",
        "skipped": skipped,
        "notes": (
            ["no GPU: device == host, moves are bookkeeping (counts exact, seconds ~0)"]
            if not cuda
            else []
        ),
    }
    out = Path(a.out) if a.out else REPO_ROOT / "bench" / "results" / f"two-stage-moves-{tag}.json"
    write_result(out, result)
    print(f"wrote {out}")
    secs = "; ".join(
        f"{v} move s naive {figures[v]['naive']['moved_s']:.3f}, per-category "
        f"{figures[v][ANCHOR]['moved_s']:.3f}, ours {figures[v]['ours']['moved_s']:.3f}"
        for v in variants
    )
    rate = (
        f"load GB/s pinned {_fmt(pin_cmp['load_gbps']['pinned'])}, pageable "
        f"{_fmt(pin_cmp['load_gbps']['pageable'])}"
        if cuda
        else "pinned skipped (no CUDA)"
    )
    r_swaps = ratio[variants[0]]["swaps"]
    print(
        f"two_stage_moves: swaps naive {naive['swaps']}, per-category {anchor['swaps']}, ours "
        f"{ours['swaps']} ({_fmt(r_swaps, '.1f')}x fewer than the seed); transfers "
        f"{naive['transfers']}/{anchor['transfers']}/{ours['transfers']}; {secs}; {rate}; "
        f"{a.size} models on {choice.device}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
