"""bench/rqa_gpu.py runs: its CPU smoke (a tiny slice) writes the result and its summary line."""

from __future__ import annotations

import json

from bench import rqa_gpu


def test_cpu_quick_smoke(tmp_path, capsys):
    out = tmp_path / "rqa-gpu.json"
    argv = ["--device", "cpu", "--quick", "--budget-s", "0", "--backends", "numba", "torch", "cupy"]
    res = rqa_gpu.main([*argv, "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["name"] == "rqa-gpu" and saved["git_commit"] and saved["workload"]["quick"]
    assert set(saved["backends"]) == {"numba", "torch"} and "CUDA" in saved["skipped"]["cupy"]
    # --budget-s 0: one unit of 18 timed per backend, so the full figure is a projection
    assert all(r["projected"] and r["units_timed"] == 1 for r in saved["backends"].values())
    assert "numba_full_projected_s" in saved["figures"] and saved["exact"] is True
    assert saved["exactness"]["numba_vs_torch"] == {"units": 1, "identical": True}
    assert saved["ratio"] is None and saved["goal"]["met"] is None  # a smoke claims nothing
    assert "CUDA_AUTO_BACKEND stays 'torch'" in saved["auto_note"] and res["faster"]
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("rqa-gpu: ") and "projected" in last and "quick smoke" in last
